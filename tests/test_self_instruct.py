"""Self-Instruct method tests: the model is faked at the LLM interface, the real engine runs.

Covers the rendered prompts (golden files), parsing of messy outputs, every filter,
the ROUGE-L filter against seeds and kept instructions, instance parsing and cleaning,
classification output-first, determinism, stopping at N, and length-limited responses.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
from pathlib import Path

import pytest
from self_instruct_fakes import ScriptedLLM, answer_text, invented_instruction, kind_of

from itkit.errors import InputError, UsageError
from itkit.records import Record
from itkit.llm.base import ChatResponse, ResponseRejected
from itkit.llm.cache import ResponseCache
from itkit.llm.engine import Engine
from itkit.llm.settings import LLMSettings
from itkit.methods.self_instruct import filters as F
from itkit.methods.self_instruct.generate import (
    STOP_BUDGET,
    STOP_FAILING,
    STOP_REACHED,
    SelfInstructConfig,
    SelfInstructGenerator,
)
from itkit.methods.self_instruct.instances import (
    CONFLICTING_OUTPUTS,
    DUPLICATE,
    EMPTY_OUTPUT,
    ENDS_WITH_COLON,
    INPUT_EQUALS_OUTPUT,
    NO_VALID_INSTANCES,
    OVER_LIMIT,
    TRUNCATED_LAST,
    Instance,
    clean_instances,
    parse_classification_instances,
    parse_generation_instances,
)
from itkit.methods.self_instruct.parse import (
    normalise_instruction,
    parse_alpaca_tasks,
    parse_instruction_list,
    parse_yes_no,
)
from itkit.methods.self_instruct.prompts import AlpacaDemo, SelfInstructPrompts
from itkit.methods.self_instruct.seeds import Seed, SeedSet, load_seeds
from itkit.templates import PromptError

GOLDEN = Path(__file__).parent / "golden" / "self_instruct"
UPDATE_GOLDEN = os.environ.get("ITKIT_UPDATE_GOLDEN") == "1"

SEED_INSTRUCTIONS = [
    "Give three tips for staying healthy during the winter months.",
    "Classify the sentiment of the given movie review as positive or negative.",
    "Write a haiku about the ocean at night.",
    "Explain the difference between weather and climate to a child.",
    "Suggest a name for a coffee shop that also sells books.",
    "Convert the given sentence into passive voice.",
    "List five fruits that are high in vitamin C.",
    "Summarize the main argument of the paragraph in one sentence.",
    "Translate the following phrase into Spanish.",
    "Find the largest number in the given list of integers.",
]


def seed_set(instructions=SEED_INSTRUCTIONS) -> SeedSet:
    return SeedSet(
        [Seed(f"seed_{i}", text, "" if i % 2 else f"input {i}", f"output {i}") for i, text in enumerate(instructions)],
        format="seed_tasks",
    )


def engine_for(llm, cache: ResponseCache | None = None, **settings) -> Engine:
    values = {"model": "fake-model", "quiet": True, "max_retries": 1, "concurrency": 4, **settings}
    return Engine(llm, LLMSettings(**values), cache)


def run(llm, seeds: SeedSet | None = None, cache=None, settings: dict | None = None, **config) -> SelfInstructGenerator:
    config.setdefault("num", 5)
    cfg = SelfInstructConfig(**config)
    engine = engine_for(llm, cache, **(settings or {}))
    prompts = SelfInstructPrompts(cfg.style, instances=cfg.wants_instances)
    generator = SelfInstructGenerator(engine, prompts, seeds or seed_set(), cfg)
    engine.execute(generator.generate_instructions, total=cfg.num)
    if cfg.wants_instances and generator.tasks:
        engine.execute(generator.generate_instances, total=len(generator.tasks))
    return generator


def scripted(responses_by_kind: dict):
    """A fake whose answer per request kind comes from a function or a fixed text (else the default fake)."""

    def answer(request):
        kind = kind_of(request.messages)
        given = responses_by_kind.get(kind)
        if given is None:
            return answer_text(request.messages)
        return given(request) if callable(given) else given

    return ScriptedLLM(answer)


def numbered(start: int, items: list[str]) -> str:
    return "\n".join(f"{start + i}. {text}" for i, text in enumerate(items))


# ---------------------------------------------------------------- golden prompts
def render_golden(prompt) -> str:
    lines = []
    for message in prompt.messages:
        lines.append(f"[{message['role']}]")
        lines.append(message["content"])
    lines.append(f"[sampling] {json.dumps(prompt.sampling.as_dict(), sort_keys=True)}")
    lines.append(f"[template] {prompt.ref}")
    return "\n".join(lines) + "\n"


def golden_prompts() -> dict[str, object]:
    si = SelfInstructPrompts("self-instruct")
    alpaca = SelfInstructPrompts("alpaca")
    tricky = "Fill in {name} and {{ place }} with $HOME, %s and ${var}:"
    return {
        "instructions.txt": si.instructions([*SEED_INSTRUCTIONS[:7], tricky]),
        "instructions_few_demos.txt": si.instructions(SEED_INSTRUCTIONS[:3]),
        "alpaca.txt": alpaca.alpaca(
            [
                AlpacaDemo(SEED_INSTRUCTIONS[0], "", "1. Dress warmly.\n2. Sleep well.\n3. Eat vegetables."),
                AlpacaDemo(SEED_INSTRUCTIONS[5], "The cat chased the {mouse}.", "The {mouse} was chased by the cat."),
                AlpacaDemo(tricky, "$x = %s", "{{ done }}"),
            ],
            20,
        ),
        "is_classification.txt": si.is_classification("Decide whether the {email} is spam or $not spam."),
        "instances_classification.txt": si.instances("Decide whether the {email} is spam or $not spam.", True, 5),
        "instances_generation.txt": si.instances("Write a limerick about {{ topic }} and %s.", False, 5),
    }


@pytest.mark.parametrize("name", sorted(golden_prompts()))
def test_rendered_prompts_match_golden_files(name):
    text = render_golden(golden_prompts()[name])
    path = GOLDEN / name
    if UPDATE_GOLDEN:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.is_file(), f"missing golden file {path} (run with ITKIT_UPDATE_GOLDEN=1 to create it)"
    assert text == path.read_text(encoding="utf-8")


def test_self_instruct_prompt_structure_and_decoding():
    prompt = SelfInstructPrompts("self-instruct").instructions(SEED_INSTRUCTIONS[:8])
    user = prompt.messages[-1]["content"]
    lines = user.splitlines()
    assert lines[1:9] == [f"{i}. {SEED_INSTRUCTIONS[i - 1]}" for i in range(1, 9)]
    assert lines[-1] == "9."  # ends at the next number: the model continues the list
    s = prompt.sampling
    assert (s.temperature, s.top_p, s.presence_penalty, s.max_tokens) == (0.7, 0.5, 2, 1024)
    assert s.stop == ("\n\n", "\n16", "16.", "16 .")  # at most 7 new items (9..15)


def test_braces_and_dollars_in_data_are_inserted_verbatim():
    prompts = SelfInstructPrompts("self-instruct")
    tricky = "Use {x}, {{ y }}, $z, ${w} and %s:"
    user = prompts.instructions([tricky]).messages[-1]["content"]
    assert "1. Use {x}, {{ y }}, $z, ${w} and %s\n2." in user  # trailing ":" dropped, nothing interpreted
    assert "Task: Use {x}, {{ y }}, $z, ${w} and %s:" in prompts.instances(tricky, False, 5).messages[-1]["content"]


def test_prompts_dir_overrides_a_template_and_bad_templates_fail_before_any_request(tmp_path):
    folder = tmp_path / "self_instruct"
    folder.mkdir()
    (folder / "instructions.yaml").write_text(
        "name: instructions\nversion: 7\nvariables: [task_list, next_number]\n"
        "sampling: {temperature: 0.3}\nmessages:\n  - role: user\n    content: \"More tasks please:\\n{{task_list}}\\n{{next_number}}.\"\n",
        encoding="utf-8",
    )
    prompts = SelfInstructPrompts("self-instruct", tmp_path)
    prompt = prompts.instructions(["Do one thing well."])
    assert prompt.ref.startswith("instructions@7#")
    assert prompt.messages == [{"role": "user", "content": "More tasks please:\n1. Do one thing well.\n2."}]
    assert prompt.sampling.temperature == 0.3 and prompt.sampling.stop == ("\n\n", "\n9", "9.", "9 .")

    (folder / "is_classification.yaml").write_text(
        "name: is_classification\nversion: 1\nvariables: [instruction]\nmessages:\n  - role: user\n    content: \"{{instruction}} {{label}}\"\n",
        encoding="utf-8",
    )
    with pytest.raises(PromptError, match="label"):
        SelfInstructPrompts("self-instruct", tmp_path)
    (folder / "is_classification.yaml").write_text(
        "name: is_classification\nversion: 1\nvariables: [instruction]\nsampling: {temprature: 0}\n"
        "messages:\n  - role: user\n    content: \"{{instruction}}\"\n",
        encoding="utf-8",
    )
    with pytest.raises(PromptError, match="temprature"):
        SelfInstructPrompts("self-instruct", tmp_path)
    # instructions only: the classification template is not needed, so not loaded
    assert SelfInstructPrompts("self-instruct", tmp_path, instances=False).classify is None


# ---------------------------------------------------------------- parsing instruction lists
def test_parse_continuation_of_the_open_item():
    parsed = parse_instruction_list("  explain how tides work.\n10. Write a story about a lost key.\n11.   Name   two\n   rivers in Asia.", 9)
    assert parsed.items == ["Explain how tides work.", "Write a story about a lost key.", "Name two rivers in Asia."]


def test_parse_numbering_variants():
    text = "9. First task is here\n10) Second task is here\n11 - Third task is here\nTask 12: Fourth task is here\n13: Fifth task is here\n**14.** Sixth task is here\n(15) Seventh task is here"
    parsed = parse_instruction_list(text, 9)
    assert parsed.items == [f"{w} task is here" for w in ("First", "Second", "Third", "Fourth", "Fifth", "Sixth", "Seventh")]


def test_parse_skips_prose_and_text_after_a_blank_line():
    text = "Sure! Here are some more tasks:\n9. Plan a picnic for six people.\n10. Describe a sunset over the sea.\n\nI hope these help! Let me know."
    parsed = parse_instruction_list(text, 9)
    assert parsed.items == ["Plan a picnic for six people.", "Describe a sunset over the sea."]
    assert parsed.skipped_prose == 2
    # a preamble before a restated first number is prose even without a colon
    parsed = parse_instruction_list("Here you go\n9. Plan a picnic for six people.", 9)
    assert parsed.items == ["Plan a picnic for six people."] and parsed.skipped_prose == 1


def test_parse_keeps_capitals_and_numbers_inside_items():
    text = "9. compute 3.14 times 2 for the NASA iPhone app\n10. rate the 5-star hotels in 2023 - and why"
    assert parse_instruction_list(text, 9).items == [
        "Compute 3.14 times 2 for the NASA iPhone app",
        "Rate the 5-star hotels in 2023 - and why",
    ]
    assert normalise_instruction("  tell\tme   a\n joke ") == "Tell me a joke"


def test_parse_truncated_list_and_item_limit():
    parsed = parse_instruction_list("9. Write a short story about\n10. Expl", 9)
    assert parsed.items == ["Write a short story about", "Expl"]  # the filters judge them
    many = numbered(9, [f"Task number {i} in a long list" for i in range(12)])
    parsed = parse_instruction_list(many, 9, max_items=7)
    assert len(parsed.items) == 7 and parsed.over_limit == 5


@pytest.mark.parametrize(
    "garbage",
    ["", "   ", "%%%% ### 1234 !!!", "{}", "Here are the tasks:", "9.\n10.\n11.", "<html><body>Service unavailable</body></html>", "Lorem ipsum dolor sit amet."],
)
def test_parse_garbage_is_rejected_with_the_raw_text(garbage):
    with pytest.raises(ResponseRejected) as info:
        parse_instruction_list(garbage, 9)
    assert info.value.raw == garbage


def test_parse_alpaca_blocks_is_as_strict_as_the_original_and_counts_rejects_by_reason():
    text = (
        " Name a famous painting by Monet.\n4. Input:\n<noinput>\n4. Output:\nWater Lilies.\n###\n"
        "5. Instruction: Sort the numbers in ascending order.\n5. Input:\n3, 1, 2\n5. Output:\n1, 2, 3\n###\n"
        "6. Instruction: Tell me a joke.\n6. Output:\nWhy did the chicken cross the road?\n###\n"  # no input
        "8. Instruction: Numbered 8 in block 7.\n8. Input:\n<noinput>\n8. Output:\nx\n###\n"  # wrong number
        "8. Instruction: Two tasks run together.\n8. Input:\na\n8. Output:\nb\n8. Output:\nc\n###\n"
        "9. Output:\nfirst\n9. Instruction: Out of order.\n9. Input:\nz\n###\n"
        "Just some prose.\n###\n"
        "11. Instruction: Empty output.\n11. Input:\n<noinput>\n11. Output:\n\n###\n"
        "12. Instruction: Describe the moon.\n12. Input:\n<noinput>\n12. Output:\nIt is grey.\n###\n"
    )
    parsed = parse_alpaca_tasks(text, 4)
    assert [(t.instruction, t.input, t.output) for t in parsed.tasks] == [
        ("Name a famous painting by Monet.", "", "Water Lilies."),
        ("Sort the numbers in ascending order.", "3, 1, 2", "1, 2, 3"),
        ("Describe the moon.", "", "It is grey."),
    ]
    assert parsed.rejected == {
        "missing_field": 1, "wrong_number": 1, "repeated_field": 1, "wrong_order": 1, "no_fields": 1,
        "empty_instruction_or_output": 1,
    }
    # the model restated the opening number itself: not prefixed twice
    again = parse_alpaca_tasks("4. Instruction: Name a colour.\n4. Input:\n<noinput>\n4. Output:\nBlue.", 4)
    assert [(t.instruction, t.input, t.output) for t in again.tasks] == [("Name a colour.", "", "Blue.")]
    # numbering variants the original rejects are rejected
    with pytest.raises(ResponseRejected) as info:
        parse_alpaca_tasks("4. Instruction: Name a colour.\nInput 4: <No Input>\nOutput 4: Blue.", 4)
    assert "missing_field" in info.value.reason


def test_parse_alpaca_drops_the_last_block_of_a_cut_off_response():
    text = "Name a colour.\n4. Input:\n<noinput>\n4. Output:\nBlue.\n###\n5. Instruction: Name a shape.\n5. Input:\n<noinput>\n5. Output:\nCir"
    parsed = parse_alpaca_tasks(text, 4, truncated=True)
    assert [t.instruction for t in parsed.tasks] == ["Name a colour."] and parsed.rejected == {"cut_off": 1}
    with pytest.raises(ResponseRejected):
        parse_alpaca_tasks("lorem ipsum ### dolor", 4)


@pytest.mark.parametrize(
    "text, expected",
    [("Yes", "yes"), ("No", "no"), (" yes.", "yes"), ("NO", "no"), ("Yes, it", "yes"), ("Answer: No", "no"), ("Is it classification? Yes", "yes")],
)
def test_parse_yes_no(text, expected):
    assert parse_yes_no(text) == expected


@pytest.mark.parametrize("text", ["Maybe", "", "Unclear: yes and no", "It depends"])
def test_parse_yes_no_reads_anything_else_as_unclear(text):
    assert parse_yes_no(text) == "unclear"  # the method reads it as No, never retried


# ---------------------------------------------------------------- filters
def test_word_count_filter_bounds():
    f = F.TextFilters()
    assert f.first_failure("Write a poem") == F.WORD_COUNT  # 3 words: dropped
    assert f.first_failure("Write a short poem") is None  # 4 words: kept
    assert f.first_failure(" ".join(["Word"] * 150)) is None
    assert f.first_failure(" ".join(["Word"] * 151)) == F.WORD_COUNT
    tuned = F.TextFilters(F.FilterConfig(min_words=5, max_words=6))
    assert tuned.first_failure("Write a short poem now") == F.WORD_COUNT
    assert tuned.first_failure("Write a short poem right now") is None
    assert tuned.first_failure("Write a short poem right now please") == F.WORD_COUNT


def test_blacklist_is_whole_word_and_case_insensitive():
    f = F.TextFilters()
    assert f.first_failure("Draw a cat sitting on a mat.") == F.BLACKLIST
    assert f.first_failure("Describe the MAPS of the old city.") == F.BLACKLIST
    assert f.first_failure("Tell me how to Go To the station.") == F.BLACKLIST  # two-word keyword
    assert f.first_failure("Explain how to withdraw money from a bank.") is None  # "draw" inside a word
    assert f.first_failure("Write a mapping between two languages.") is None
    assert f.first_failure("Describe the plot twist of a mystery novel.") == F.BLACKLIST
    assert f.blacklisted_word("Open the FILE and count its lines.") == "FILE"
    # the style's list: Alpaca adds video, audio, music, flowchart, diagram
    assert f.first_failure("Describe the music of the Baroque period.") is None
    alpaca = F.TextFilters(F.FilterConfig.for_style("alpaca"))
    for word in ("video", "audio", "music", "flowchart", "diagram"):
        assert alpaca.first_failure(f"Describe the {word} in plain words please.") == F.BLACKLIST
    extra = F.TextFilters(F.FilterConfig.for_style("self-instruct", extra_blacklist=("spreadsheet",)))
    assert extra.first_failure("Fill in the Spreadsheet with the totals.") == F.BLACKLIST
    assert F.TextFilters(F.FilterConfig(blacklist=())).first_failure("Draw a cat sitting on a mat.") is None


def test_write_a_program_prefix_and_first_character_filters():
    f = F.TextFilters()
    assert f.first_failure("Write a program that sorts a list.") == F.PREFIX
    assert f.first_failure("Write a Program that sorts a list.") == F.PREFIX  # the original compared after lower-casing
    assert f.first_failure("Write a function that sorts a list.") is None
    assert f.first_failure("Please write a program that sorts a list.") is None
    assert f.first_failure('"Quote" the famous line from Hamlet.') == F.FIRST_CHARACTER
    assert f.first_failure("- List the planets of the solar system.") == F.FIRST_CHARACTER
    assert f.first_failure("¿Qué hora es en Madrid ahora?") == F.FIRST_CHARACTER
    assert f.first_failure("Écris un poème sur la mer.") == F.FIRST_CHARACTER
    assert f.first_failure("3 ways to say hello in French.") is None
    # order: the first failing filter names the removal
    assert f.first_failure("- draw it") == F.WORD_COUNT


def test_rouge_filter_against_seeds_and_every_kept_instruction():
    """Decisions equal rouge_score's RougeScorer(["rougeL"]) F1 > 0.7, greedy in submission order."""
    rouge_scorer = pytest.importorskip("rouge_score.rouge_scorer")
    new_a = "Plan a three day trip to Rome for a family with two children."
    batch1 = [
        "Give three tips for staying healthy during the cold winter months.",  # near copy of seed 0
        new_a,
        "Plan a three day trip to Rome for a family with three children.",  # near copy of new_a (same response)
        "Describe how a rainbow forms after a summer storm.",
    ]
    batch2 = [
        "Plan a four day trip to Rome for a family with two children.",  # near copy of new_a (next round)
        "Compose a limerick about a cat who loves cheese.",
    ]
    script = iter([batch1, batch2])

    def generation(request):
        start = int(request.messages[-1]["content"].rstrip()[:-1].rsplit("\n", 1)[1])
        return numbered(start, next(script))

    gen = run(scripted({"instructions": generation}), num=3, batch_size=1, instances=False)
    kept = [t.instruction for t in gen.tasks]

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    expected: list[str] = []
    for candidate in batch1 + batch2:
        pool = SEED_INSTRUCTIONS + expected
        if max(scorer.score(p, candidate)["rougeL"].fmeasure for p in pool) <= 0.7:
            expected.append(candidate)
    assert kept == expected == [new_a, batch1[3], batch2[1]]
    assert gen.counts.filtered[F.ROUGE_L] == 3
    # kept records list their most similar instructions with the reference's scores, best first
    most = gen.tasks[0].most_similar
    assert len(most) == 10
    reference = sorted((scorer.score(s, new_a)["rougeL"].fmeasure for s in SEED_INSTRUCTIONS), reverse=True)
    assert [m["score"] for m in most] == pytest.approx(reference, abs=1e-12)
    assert [m["score"] for m in most] == sorted((m["score"] for m in most), reverse=True)
    later = gen.tasks[2].most_similar
    assert any(m["instruction"] == new_a for m in later)  # kept instructions are compared too


def test_every_filter_is_counted_in_order():
    candidates = [
        "Too short here",  # word_count
        "Draw a picture of a horse in the snow.",  # blacklist
        "Write a program to reverse a linked list.",  # prefix
        "* Describe your favourite season and why.",  # first_character
        "Give three tips for staying healthy during the winter months!",  # rouge_l vs seed 0
        "Describe the life cycle of a butterfly in simple words.",  # kept
    ]
    llm = scripted({"instructions": lambda r: numbered(9, candidates)})
    gen = run(llm, num=1, batch_size=1, instances=False)
    assert [t.instruction for t in gen.tasks] == [candidates[-1]]
    assert dict(gen.counts.filtered) == {F.WORD_COUNT: 1, F.BLACKLIST: 1, F.PREFIX: 1, F.FIRST_CHARACTER: 1, F.ROUGE_L: 1}
    counts = gen.summary_counts()
    assert counts["filtered"] == {"word_count": 1, "blacklist": 1, "prefix": 1, "first_character": 1, "rouge_l": 1}
    assert counts["candidates"] == 6 and counts["kept_instructions"] == 1


# ---------------------------------------------------------------- instances
def test_parse_classification_instances_output_first():
    text = "Class label: Positive\nReview: Great phone, the battery lasts two days.\nClass label: Negative\nReview: It broke.\nIt really broke.\nclass label: Neutral"
    assert parse_classification_instances(text) == [
        Instance("Review: Great phone, the battery lasts two days.", "Positive"),
        Instance("Review: It broke.\nIt really broke.", "Negative"),
        Instance("", "Neutral"),  # a label alone: the task takes no input
    ]
    with pytest.raises(ResponseRejected):
        parse_classification_instances("Positive: great phone")


def test_parse_generation_instances_input_first():
    text = "Example 1\nSentence: The cat sat.\nOutput: The cat was sitting.\nExample 2\nInput: Dogs bark.\nOutput: Dogs are barking.\nInput: extra pair\nOutput: ignored"
    assert parse_generation_instances(text) == [
        Instance("Sentence: The cat sat.", "The cat was sitting."),
        Instance("Dogs bark.", "Dogs are barking."),  # "Input:" prefix removed, run-on pair cut
    ]
    assert parse_generation_instances("Output:\n- Apples\n- Pears") == [Instance("", "- Apples\n- Pears")]
    with pytest.raises(ResponseRejected):
        parse_generation_instances("Sure, here is an answer without any structure.")


def test_instance_cleaning_rules():
    result = clean_instances(
        [
            Instance("a", "a"),  # input equals output
            Instance("b", ""),  # empty output
            Instance("Text:", "x"),  # input ends with a colon
            Instance("c", "The answer is:"),  # output ends with a colon
            Instance("d", "D"),
            Instance("d", "D"),  # exact duplicate
            Instance("e", "E"),
            Instance("f", "F"),
            Instance("g", "G"),
            Instance("h", "H"),
            Instance("i", "I"),  # beyond five
            Instance("j", "J cut off mid"),  # truncated last
        ],
        truncated=True,
    )
    assert result.instances == [Instance(x, x.upper()) for x in "defgh"]
    assert dict(result.dropped) == {
        TRUNCATED_LAST: 1, INPUT_EQUALS_OUTPUT: 1, EMPTY_OUTPUT: 1, ENDS_WITH_COLON: 2, DUPLICATE: 1, OVER_LIMIT: 1,
    }
    assert result.task_dropped is None
    assert clean_instances([Instance("x", "y")], truncated=False).instances == [Instance("x", "y")]


def test_same_input_with_different_outputs_drops_the_task():
    conflict = clean_instances([Instance("2+2", "4"), Instance("3+3", "6"), Instance("2+2", "5")])
    assert conflict.instances == [] and conflict.task_dropped == CONFLICTING_OUTPUTS
    # empty inputs may have different outputs (a task without input)
    free = clean_instances([Instance("", "A poem"), Instance("", "Another poem")])
    assert free.instances == [Instance("", "A poem"), Instance("", "Another poem")]
    empty = clean_instances([Instance("x", "")])
    assert empty.instances == [] and empty.task_dropped == NO_VALID_INSTANCES


def test_classification_tasks_get_output_first_instances():
    instructions = ["Classify the tone of the given email as formal or informal.", "Describe a walk through an autumn forest."]
    llm = scripted({"instructions": lambda r: numbered(9, instructions)})
    gen = run(llm, num=2, batch_size=1)
    assert [t.is_classification for t in gen.tasks] == [True, False]
    templates = {r.template.split("@")[0] for r in llm.requests}
    assert templates == {"instructions", "is_classification", "instances_classification", "instances_generation"}
    clf_request = next(r for r in llm.requests if r.template.startswith("is_classification"))
    assert (clf_request.sampling.temperature, clf_request.sampling.max_tokens) == (0, 3)
    inst_request = next(r for r in llm.requests if r.template.startswith("instances_classification"))
    assert inst_request.messages[-1]["content"].endswith(f"Task: {instructions[0]}")
    assert inst_request.sampling.temperature == 0 and inst_request.sampling.stop == ("Example 6", "Task:")
    records = gen.records("fake-model")
    clf = [r for r in records if r.instruction == instructions[0]]
    assert [(r.output, r.input) for r in clf] == [("Positive", "Sentence: I love it."), ("Negative", "Sentence: I hate it.")]
    gen_records = [r for r in records if r.instruction == instructions[1]]
    assert [(r.input, r.output) for r in gen_records] == [("first input", "first output"), ("second input", "second output")]
    step1, step2 = clf[0].provenance
    assert step1["method"] == "self-instruct" and step1["operation"] == "generate-instruction" and step1["style"] == "self-instruct"
    assert step1["round"] == 1 and step1["prompt"] == 1 and step1["model"] == "fake-model" and len(step1["parent_ids"]) == 8
    assert step1["template"].startswith("instructions@1#") and step1["template"].endswith(step1["template_hash"])
    assert step2["operation"] == "generate-instances" and step2["parent_id"] == "self-instruct-1"
    assert step2["template"].startswith("instances_classification@") and step2["is_classification"] is True
    assert [r.id for r in records] == ["self-instruct-1-1", "self-instruct-1-2", "self-instruct-2-1", "self-instruct-2-2"]
    grouped = gen.records("fake-model", group_instances=True)
    assert [r.id for r in grouped] == ["self-instruct-1", "self-instruct-2"]
    assert grouped[0].metadata["instances"] == [{"input": "Sentence: I love it.", "output": "Positive"}, {"input": "Sentence: I hate it.", "output": "Negative"}]
    assert grouped[0].metadata["is_classification"] is True


def test_tasks_whose_instances_are_all_cleaned_away_are_dropped_and_counted():
    instructions = ["Describe a walk through an autumn forest.", "Explain why the sea tastes of salt."]
    llm = scripted({
        "instructions": lambda r: numbered(9, instructions),
        "gen_instances": lambda r: "Example 1\nInput: same\nOutput: same" if "forest" in r.messages[-1]["content"] else "Output: Because of minerals.",
    })
    gen = run(llm, num=2, batch_size=1)
    records = gen.records("m")
    assert [r.instruction for r in records] == [instructions[1]]
    counts = gen.summary_counts()
    assert counts["tasks"] == {"with_instances": 1, "dropped": {NO_VALID_INSTANCES: 1}, "failed": 0}
    assert counts["instances"] == {"parsed": 2, "kept": 1, "dropped": {INPUT_EQUALS_OUTPUT: 1}}


# ---------------------------------------------------------------- the generation loop
def test_stops_once_n_instructions_are_kept():
    llm = ScriptedLLM()  # 5 fresh instructions per prompt
    gen = run(llm, num=7, batch_size=1, instances=False)
    assert len(gen.tasks) == 7
    assert gen.counts.stopped == STOP_REACHED
    assert gen.counts.prompts == 2 and len(llm.requests) == 2  # 5 + 2 of 5: no third prompt
    assert gen.counts.unused == 3
    assert [t.id for t in gen.tasks] == [f"self-instruct-{i}" for i in range(1, 8)]


def test_machine_demos_join_the_prompts_once_the_pool_has_some():
    llm = ScriptedLLM(lambda r: answer_text(r.messages, per_prompt=1))
    gen = run(llm, num=4, batch_size=1, instances=False)
    prompts = [r.messages[-1]["content"] for r in llm.requests]
    kept = [t.instruction for t in gen.tasks]
    assert not any(k in prompts[0] for k in kept)
    assert sum(k in prompts[1] for k in kept[:1]) == 1  # pool of 1: 1 machine demo + 7 seeds
    assert sum(k in prompts[2] for k in kept[:2]) == 2
    assert sum(k in prompts[3] for k in kept[:3]) == 2  # never more than 2
    for request in llm.requests:
        assert request.messages[-1]["content"].rstrip().endswith("\n9.")  # always 8 demos
    parent_ids = gen.tasks[3].demo_ids
    assert len(parent_ids) == 8 and sum(i.startswith("self-instruct-") for i in parent_ids) == 2


def test_few_seeds_give_shorter_prompts():
    seeds = seed_set(SEED_INSTRUCTIONS[:3])
    llm = ScriptedLLM(lambda r: answer_text(r.messages, per_prompt=2))
    gen = run(llm, seeds=seeds, num=2, batch_size=1, instances=False)
    first = llm.requests[0]
    assert first.messages[-1]["content"].rstrip().endswith("\n4.")
    assert first.sampling.stop == ("\n\n", "\n11", "11.", "11 .")
    assert len(gen.tasks) == 2


def test_same_seed_same_output_whatever_the_completion_order():
    def slow_llm():
        jitter = random.Random()

        class Slow(ScriptedLLM):
            async def complete(self, request):
                await asyncio.sleep(jitter.random() * 0.01)
                return await super().complete(request)

        return Slow()

    first = run(slow_llm(), num=12, batch_size=4, seed=3)
    second = run(slow_llm(), num=12, batch_size=4, seed=3)
    dump = lambda g: [r.model_dump() for r in g.records("m")]  # noqa: E731
    assert dump(first) == dump(second)
    other = run(ScriptedLLM(), num=12, batch_size=4, seed=4)
    assert [t.instruction for t in other.tasks] != [t.instruction for t in first.tasks]


def test_generation_prompts_of_a_round_are_in_flight_together():
    state = {"now": 0, "peak": 0}

    class Counting(ScriptedLLM):
        async def complete(self, request):
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
            await asyncio.sleep(0.01)
            state["now"] -= 1
            return await super().complete(request)

    llm = Counting(lambda r: answer_text(r.messages, per_prompt=1))
    gen = run(llm, num=8, batch_size=4, instances=False, settings={"concurrency": 8})
    assert len(gen.tasks) == 8 and gen.counts.rounds == 2
    assert state["peak"] == 4


def test_identical_prompts_still_get_their_own_cache_entries(tmp_path):
    """With one seed every prompt is identical; each is its own sample (cache variant = prompt index)."""
    seeds = seed_set(SEED_INSTRUCTIONS[:1])
    calls = []

    def answer(request):
        calls.append(1)
        return numbered(2, [invented_instruction(random.Random(len(calls)))])

    cache = ResponseCache.open(tmp_path)
    gen = run(ScriptedLLM(answer), seeds=seeds, cache=cache, num=3, batch_size=3, machine_demos=0, instances=False)
    assert len({t.instruction for t in gen.tasks}) == 3
    again = run(ScriptedLLM(lambda r: pytest.fail("sent a request")), seeds=seeds, cache=cache, num=3, batch_size=3, machine_demos=0, instances=False)
    assert [t.instruction for t in again.tasks] == [t.instruction for t in gen.tasks]


def test_a_response_cut_off_by_the_length_limit_is_discarded_and_counted():
    def answer(request):
        if kind_of(request.messages) == "instructions" and request.messages[-1]["content"].count("self-instruct") == 0 and not calls:
            calls.append(1)
            return ChatResponse(numbered(9, ["Plan a picnic for six friends in the park."]), "length", 10, 1024)
        return answer_text(request.messages)

    calls: list[int] = []
    llm = ScriptedLLM(answer)
    gen = run(llm, num=3, batch_size=1, instances=False)
    assert gen.counts.cut_off == 1 and gen.counts.failed_prompts == 0
    assert "Plan a picnic for six friends in the park." not in [t.instruction for t in gen.tasks]
    assert len(gen.tasks) == 3 and len(llm.requests) == 2  # not retried: discarded as the original does


def test_cut_off_instances_lose_their_last_instance_and_short_yes_answers_are_accepted():
    def answer(request):
        kind = kind_of(request.messages)
        if kind == "instructions":
            return numbered(9, ["Describe a walk through an autumn forest."])
        if kind == "classify":
            return ChatResponse("No, this", "length", 10, 3)
        return ChatResponse("Example 1\nInput: a\nOutput: b\nExample 2\nInput: c\nOutput: d is cut", "length", 10, 1024)

    gen = run(ScriptedLLM(answer), num=1, batch_size=1)
    assert gen.tasks[0].is_classification is False
    assert gen.tasks[0].instances == [Instance("a", "b")]
    assert gen.counts.instances_dropped == {TRUNCATED_LAST: 1}


def test_garbage_is_retried_then_recorded_and_generation_gives_up_after_failed_rounds():
    llm = ScriptedLLM(lambda r: "%%%% ??? ####")
    gen = run(llm, num=5, batch_size=2, failed_rounds_to_stop=2, settings={"max_retries": 1})
    assert gen.tasks == [] and gen.counts.stopped == STOP_FAILING
    assert gen.counts.failed_prompts == 4 and len(llm.requests) == 8  # 2 rounds x 2 prompts x 2 attempts
    assert [f.extra["prompt"] for f in gen.failures] == [1, 2, 3, 4]
    assert all(f.raw == "%%%% ??? ####" and "no numbered list" in f.reason for f in gen.failures)
    assert gen.failures[0].extra == {"stage": "instruction generation", "round": 1, "prompt": 1}
    assert all(f.input is None for f in gen.failures)  # no input record, and no id made up for one


def test_an_unclear_classification_answer_means_no_and_is_counted():
    llm = scripted({"instructions": lambda r: numbered(9, ["Describe a walk through an autumn forest."]), "classify": "Perhaps"})
    gen = run(llm, num=1, batch_size=1)
    assert gen.tasks[0].is_classification is False and gen.tasks[0].classification_answer == "unclear"
    assert llm.kinds().count("classify") == 1  # not retried: the original reads anything but Yes as No
    assert "gen_instances" in llm.kinds()  # so the task is generated input-first
    assert gen.summary_counts()["classification"] == {"yes": 0, "no": 1, "unclear_read_as_no": 1}


def test_garbage_instance_answers_fail_the_task_with_its_raw_text():
    llm = scripted({"instructions": lambda r: numbered(9, ["Describe a walk through an autumn forest."]), "gen_instances": "%%%"})
    gen = run(llm, num=1, batch_size=1)
    assert gen.records("m") == []
    assert gen.counts.tasks_failed == 1
    failure = gen.failures[0]
    assert failure.raw == "%%%" and "no 'Example' or 'Output:'" in failure.reason
    assert failure.extra == {
        "stage": "instance generation", "task": "self-instruct-1", "instruction": "Describe a walk through an autumn forest."
    }


def test_prompt_budget_stops_generation():
    llm = ScriptedLLM(lambda r: numbered(9, ["Way too short"]))
    gen = run(llm, num=3, batch_size=2, max_prompts=5, instances=False)
    assert gen.tasks == [] and gen.counts.stopped == STOP_BUDGET
    assert gen.counts.prompts == 5 and len(llm.requests) == 5
    assert gen.counts.filtered[F.WORD_COUNT] == 5


def test_alpaca_style_counts_rejected_blocks_in_the_summary():
    def reply(request):
        good = answer_text(request.messages, per_prompt=2)
        return good + "\n###\n9. Instruction: Misnumbered block.\n9. Input:\n<noinput>\n9. Output:\nx"

    gen = run(ScriptedLLM(reply), num=2, style="alpaca", batch_size=1)
    summary = gen.summary_counts()
    assert summary["rejected_blocks"]["wrong_number"] == 1
    assert set(summary["rejected_blocks"]) == {"cut_off", "wrong_number", "missing_field", "repeated_field",
                                               "wrong_order", "no_fields", "empty_instruction_or_output"}


def test_alpaca_style():
    llm = ScriptedLLM(lambda r: answer_text(r.messages, per_prompt=6))
    gen = run(llm, num=8, style="alpaca", batch_size=1)
    assert len(gen.tasks) == 8 and len(llm.requests) == 2
    assert set(llm.kinds()) == {"alpaca"}  # no classification or instance requests
    request = llm.requests[0]
    s = request.sampling
    assert (s.temperature, s.top_p, s.max_tokens, s.stop) == (1.0, 1.0, 3072, ("\n20", "20."))
    user = request.messages[-1]["content"]
    assert user.count("###") == 4 and user.rstrip().endswith("###\n4. Instruction:")
    assert user.count("<noinput>") >= 1 or user.count(". Input:\ninput") == 3
    records = gen.records("m")
    assert len(records) == 8
    assert all(r.output for r in records)
    assert sum(1 for r in records if r.input == "") >= 3  # "<noinput>" became an empty input
    assert records[0].provenance[0]["style"] == "alpaca"
    assert len(records[0].provenance[0]["parent_ids"]) == 3
    assert all(i.startswith("seed_") for r in records for i in r.provenance[0]["parent_ids"])  # no machine demos


def test_instructions_only_records_have_no_output():
    llm = ScriptedLLM()
    gen = run(llm, num=3, batch_size=1, instances=False)
    assert set(llm.kinds()) == {"instructions"}
    records = gen.records("m")
    assert [r.has_output for r in records] == [False, False, False]
    assert all(len(r.provenance) == 1 for r in records)


def test_dry_run_plans_a_whole_run_and_sends_nothing():
    cfg = SelfInstructConfig(num=30)
    engine = Engine(None, LLMSettings(model="gpt-4o-mini", dry_run=True, quiet=True))
    gen = SelfInstructGenerator(engine, SelfInstructPrompts("self-instruct"), seed_set(), cfg)
    engine.execute(gen.plan)
    plan = engine.plan
    assert plan.requests == 15 + 30 + 30  # ceil(30 / 2) generation prompts, then classify + instances per task
    assert plan.prompt_tokens > 0 and plan.completion_tokens > 0
    kinds = [kind_of(r.messages) for r in plan.samples]
    assert kinds == ["instructions", "classify", "gen_instances"]
    assert gen.tasks == []


def test_config_is_validated():
    with pytest.raises(UsageError, match="--num"):
        SelfInstructConfig(num=0)
    with pytest.raises(UsageError, match="--style"):
        SelfInstructConfig(num=1, style="evol")
    with pytest.raises(UsageError, match="--rouge-threshold"):
        SelfInstructConfig(num=1, filters=F.FilterConfig(rouge_threshold=1.5))
    with pytest.raises(UsageError, match="--num-tasks"):
        SelfInstructConfig(num=1, style="alpaca", num_tasks=3)
    assert SelfInstructConfig(num=10).prompt_budget() == 40 + 8


# ---------------------------------------------------------------- seeds
def test_seeds_from_any_instruction_format(tmp_path):
    path = tmp_path / "alpaca.json"
    path.write_text(json.dumps([
        {"instruction": "Name a river in Africa.", "input": "", "output": "The Nile."},
        {"instruction": "", "input": "orphan input", "output": "x"},
        {"instruction": "Sort the letters.", "input": "c a b", "output": "a b c"},
    ]), encoding="utf-8")
    seeds = load_seeds(str(path))
    assert seeds.format == "alpaca" and seeds.skipped_empty == 1
    assert [(s.instruction, s.input, s.output) for s in seeds.seeds] == [
        ("Name a river in Africa.", "", "The Nile."), ("Sort the letters.", "c a b", "a b c"),
    ]
    empty = tmp_path / "empty.jsonl"
    empty.write_text(json.dumps({"instruction": "", "output": "x"}) + "\n", encoding="utf-8")
    with pytest.raises(InputError, match="no seed task"):
        load_seeds(str(empty))


def test_real_seed_tasks_load_as_is(realdata):
    seeds = load_seeds(str(realdata / "self_instruct_seed_tasks.jsonl"))
    assert seeds.format == "seed_tasks" and len(seeds.seeds) == 175
    flags = [s.is_classification for s in seeds.seeds]
    assert None not in flags and sum(flags) == 26  # the paper's 26 classification seeds
    prompt = SelfInstructPrompts("self-instruct").instructions([s.instruction for s in seeds.seeds[:8]])
    assert all("\n" not in line for line in prompt.messages[-1]["content"].splitlines())


# ---------------------------------------------------------------- random 5, prepare_for_finetuning
def test_the_kept_instances_are_a_seeded_random_sample_not_the_first_five():
    import random as _random

    many = [Instance(f"in {i}", f"out {i}") for i in range(9)]
    a = clean_instances(many, rng=_random.Random("instances:42:self-instruct-1")).instances
    b = clean_instances(many, rng=_random.Random("instances:42:self-instruct-1")).instances
    c = clean_instances(many, rng=_random.Random("instances:42:self-instruct-2")).instances
    assert a == b and len(a) == 5 and a != many[:5] and set(a) <= set(many)
    assert a != c


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Sentence: The cat sat.", "The cat sat."),
        ("Sentence: one\n\ntwo", "one\ntwo"),
        ("Question: Why?\nContext: Because.", "Question: Why?\nContext: Because."),  # two field names: kept
        ("no field name here", "no field name here"),
    ],
)
def test_strip_field_name_as_the_original(text, expected):
    from itkit.methods.self_instruct.finetune import strip_field_name

    assert strip_field_name(text) == expected


def test_prepare_for_finetuning_adds_seeds_strips_half_the_prefixes_and_dedups():
    from itkit.methods.self_instruct.finetune import PARTS, parse_parts, prepare_for_finetuning
    from itkit.methods.self_instruct.seeds import Seed

    generated = [Record.single_turn(f"g-{i}", "Label the sentence.", "pos", input=f"Sentence: text {i}") for i in range(200)]
    generated.append(Record.single_turn("g-dup", "Label the sentence.", "pos", input="Sentence: text 0"))
    seeds = [Seed("seed_1", "Add the numbers.", "1, 2", "3", instances=(("1, 2", "3"), ("2, 2", "4")))]
    out, counts = prepare_for_finetuning(generated, seeds, PARTS, seed=42, model="m")
    assert counts.seed_instances_added == 2 and [r.id for r in out[-2:]] == ["seed_1-1", "seed_1-2"]
    assert out[-1].provenance[0] == {"method": "self-instruct", "operation": "seed-instance", "parent_id": "seed_1", "model": "m"}
    assert 70 < counts.prefixes_stripped < 130  # about half of the 201 inputs with one field name
    stripped = [r for r in out if not r.input.startswith("Sentence:") and r.id.startswith("g-")]
    assert all(r.metadata["original_input"].startswith("Sentence: ") for r in stripped)
    # g-dup equals g-0 exactly unless only one of them lost its prefix; either way no exact pair is left twice
    keys = [(r.instruction, r.input, r.output) for r in out]
    assert len(keys) == len(set(keys)) and len(out) + counts.duplicates_removed == 203
    again, _ = prepare_for_finetuning(generated, seeds, PARTS, seed=42, model="m")
    assert again == out  # seeded
    none, counts = prepare_for_finetuning(generated, seeds, parse_parts("none"), seed=42, model="m")
    assert none == generated and counts.as_dict()["parts"] == []
    assert parse_parts("dedup, seeds") == ("seeds", "dedup") and parse_parts("all") == PARTS
    with pytest.raises(UsageError):
        parse_parts("shuffle")


def test_classification_and_instance_prompts_have_the_originals_shape_and_decoding():
    prompts = SelfInstructPrompts("self-instruct")
    classify = prompts.is_classification("Name a colour.")
    demos = classify.messages[-1]["content"]
    assert demos.count("Is it classification? Yes") == 12 and demos.count("Is it classification? No") == 19
    assert demos.rstrip().endswith("Task: Name a colour.\nIs it classification?")
    s = classify.sampling
    assert (s.temperature, s.max_tokens, s.stop) == (0, 3, ("\n", "Task"))
    gen = prompts.instances("Name a colour.", classification=False, max_instances=5)
    clf = prompts.instances("Name a colour.", classification=True, max_instances=5)
    assert gen.messages[-1]["content"].count("\nTask: ") == 11 + 1  # 11 demos, then the task itself
    assert clf.messages[-1]["content"].count("\nTask: ") == 16 + 1
    assert "def two_sum" in gen.messages[-1]["content"] and "Paragraph: " in gen.messages[-1]["content"]
    for prompt, max_tokens in ((gen, 350), (clf, 300)):  # as generate_instances.py: 300 when classification
        s = prompt.sampling
        assert (s.temperature, s.presence_penalty, s.max_tokens, s.stop) == (0, 1.5, max_tokens, ("Example 6", "Task:"))
