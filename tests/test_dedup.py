"""The dedup library: normalisation, exact groups, stage order, keep policy, text selection."""

from __future__ import annotations

import pytest

from itkit.dedup import (
    DedupOptions,
    Deduplicator,
    ExactGroups,
    dedup_texts,
    normalize_text,
    text_getter,
)
from itkit.dedup.texts import response_length
from itkit.errors import UsageError
from itkit.records import Record


@pytest.mark.parametrize(
    "a, b",
    [
        ("Hello World", "  hello\u00a0WORLD "),
        ("Straße", "STRASSE"),
        ("\ufb01nd the \uff21\uff22\uff23", "find the abc"),  # ligature and full-width letters (NFKC)
        ("tabs\tand\nnewlines", "tabs and newlines"),
        ("e\u0301t\u00e9", "\u00e9t\u00e9"),  # combining accent vs precomposed
    ],
)
def test_normalisation_makes_these_equal(a, b):
    assert normalize_text(a) == normalize_text(b)


@pytest.mark.parametrize("a, b", [("Hello, world", "Hello world"), ("a b", "ab"), ("1.5", "15")])
def test_normalisation_keeps_these_apart(a, b):
    assert normalize_text(a) != normalize_text(b)


def test_exact_groups_number_distinct_texts_in_first_seen_order():
    groups = ExactGroups()
    assert [groups.add(t) for t in ["A b", "c", "a  B", "C", "d"]] == [(0, True), (1, True), (0, False), (1, False), (2, True)]
    assert len(groups) == 3


def test_exact_stage_keeps_the_first_and_reports_it():
    decisions = dedup_texts(["One two", "three", "ONE  two", "one two!"])
    assert decisions.keep.tolist() == [True, True, False, True]
    assert [(r.stage, r.index, r.kept_index, r.score) for r in decisions.removals] == [("exact", 2, 0, 1.0)]
    assert decisions.removed == {"exact": 1} and decisions.kept == 3


def test_keep_longest_prefers_the_longest_response_then_the_first():
    texts = ["same", "Same", "SAME", "other", "other"]
    decisions = dedup_texts(texts, DedupOptions(keep="longest"), response_lengths=[5, 9, 9, 1, 1])
    assert decisions.keep.tolist() == [False, True, False, True, False]
    assert {(r.index, r.kept_index) for r in decisions.removals} == {(0, 1), (2, 1), (4, 3)}


def test_stages_run_in_order_each_on_the_survivors():
    base = "Describe the water cycle in four short steps for a class of ten year old pupils, with one example each"
    texts = [
        base,  # 0 kept
        base.upper(),  # 1 exact copy of 0
        base.replace("four", "five") + ".",  # 2 near copy of 0
        "Write a poem about the sea.",  # 3 kept
        "Write a short poem about the sea.",  # 4 ROUGE-L copy of 3 (bigram Jaccard only 4/7)
        "List three prime numbers.",  # 5 kept
    ]
    decisions = dedup_texts(texts, DedupOptions(near=0.8, rouge=0.7))
    got = [(r.stage, r.index, r.kept_index) for r in decisions.removals]
    assert got == [("exact", 1, 0), ("near", 2, 0), ("rouge", 4, 3)]
    assert decisions.removed == {"exact": 1, "near": 1, "rouge": 1}
    assert decisions.keep.tolist() == [True, False, False, True, False, True]
    near = decisions.removals[1]
    assert 0.8 <= near.score < 1.0
    rouge = decisions.removals[2]
    assert rouge.score == pytest.approx(12 / 13)
    # without the exact stage, the near stage finds the exact copy too
    no_exact = dedup_texts(texts, DedupOptions(exact=False, near=0.8))
    assert [(r.stage, r.index, r.kept_index, r.score) for r in no_exact.removals[:1]] == [("near", 1, 0, 1.0)]


def test_greedy_stages_follow_the_keep_policy():
    texts = ["write a poem about the sea", "please write a poem about the sea now"]
    first = dedup_texts(texts, DedupOptions(exact=False, rouge=0.7))
    assert first.keep.tolist() == [True, False]
    longest = dedup_texts(texts, DedupOptions(exact=False, rouge=0.7, keep="longest"), response_lengths=[1, 50])
    assert longest.keep.tolist() == [False, True]
    assert longest.removals[0].kept_index == 1


def test_empty_input_and_incremental_use():
    assert dedup_texts([], DedupOptions(near=0.8, rouge=0.7)).kept == 0
    with Deduplicator(DedupOptions(near=0.8)) as dedup:
        assert [dedup.add(t) for t in ["a b c", "A B C", "x"]] == [0, 1, 2]
        assert dedup.finish().keep.tolist() == [True, False, True]


@pytest.mark.parametrize(
    "options, message",
    [
        (DedupOptions(exact=False), "no stage to run"),
        (DedupOptions(near=1.5), "Jaccard threshold"),
        (DedupOptions(near=0.0), "Jaccard threshold"),
        (DedupOptions(rouge=-0.1), "ROUGE-L threshold"),
        (DedupOptions(keep="shortest"), "--keep"),
        (DedupOptions(near=0.8, num_perm=1), "--num-perm"),
        (DedupOptions(near=0.8, ngram=0), "--ngram"),
    ],
)
def test_bad_options_are_usage_errors(options, message):
    with pytest.raises(UsageError, match=message):
        options.validate()


def test_compared_texts():
    single = Record.single_turn("s", "Summarise this.", "Short.", input="Long text.", system="Be brief.")
    multi = Record.single_turn(
        "m", "And now?", "Now this.", history=[("First question", "First answer")], system="Sys"
    )
    assert text_getter("instruction")(single) == "Summarise this.\n\nLong text."
    assert text_getter("auto")(single) == text_getter("prompt")(single) == "Summarise this.\n\nLong text."
    assert text_getter("response")(single) == "Short."
    assert text_getter("conversation")(single) == "Be brief.\n\nSummarise this.\n\nLong text.\n\nShort."
    assert text_getter("instruction")(multi) == "And now?"
    assert text_getter("auto")(multi) == text_getter("prompt")(multi) == "First question\n\nAnd now?"
    assert text_getter("response")(multi) == "First answer\n\nNow this."
    assert response_length(multi) == len("First answer") + len("Now this.")
    with pytest.raises(UsageError):
        text_getter("everything")
