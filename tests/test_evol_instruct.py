"""Evol-Instruct method tests: the LLM is faked at its interface with scripted replies.

The engine is the real one (retries, parsing, dry run); only ``LLM.complete`` is scripted.
Requests are routed by their template (``request.template`` is ``name@version#hash``).
"""

from __future__ import annotations

import asyncio
import json
import random
import re
from collections import Counter
from pathlib import Path
from typing import Callable

import pytest

from itkit.errors import ItkitError, UsageError
from itkit.llm.base import LLM, ChatRequest, ChatResponse, FatalLLMError
from itkit.llm.engine import Engine
from itkit.llm.settings import LLMSettings
from itkit.methods.evol_instruct.elimination import (
    COPIED_MARKERS,
    DEFAULT_MARKERS,
    NO_INFORMATION_GAIN,
    RULES,
    SORRY_RESPONSE,
    STOP_WORDS,
    STOP_WORDS_RESPONSE,
    EliminationRules,
    copied_marker,
    is_identical,
    is_only_stop_words,
    is_sorry_response,
)
from itkit.methods.evol_instruct.evolve import (
    EvolConfig,
    Evolver,
    Lineage,
    run_evolution,
    skip_reason,
)
from itkit.methods.evol_instruct.operations import (
    OPERATION_NAMES,
    OPERATIONS,
    EvolPrompts,
    choose_operation,
    parse_ops,
)
from itkit.methods.evol_instruct.parsing import parse_equality, parse_evolved
from itkit.llm.base import ResponseRejected, Sampling
from itkit.records import Record
from itkit.templates import PromptError

GOLDEN = Path(__file__).parent / "golden" / "evol_instruct"
IN_DEPTH = [n for n in OPERATION_NAMES if OPERATIONS[n].evolution == "in-depth"]

# ---- the scripted fake ----------------------------------------------------------------------


def kind_of(request: ChatRequest) -> str:
    """evolve / equality / response, from the template the request was rendered from."""
    name = request.template.split("@", 1)[0]
    return "evolve" if name in OPERATIONS else name


def op_of(request: ChatRequest) -> str | None:
    name = request.template.split("@", 1)[0]
    return name if name in OPERATIONS else None


def given_prompt(request: ChatRequest) -> str:
    """The prompt under #Given Prompt# in an evolution request."""
    text = request.messages[-1]["content"]
    return text.split("#Given Prompt#:\n", 1)[1].rsplit("\n\n#", 1)[0]


def default_reply(request: ChatRequest) -> str:
    kind = kind_of(request)
    if kind == "evolve":
        return f"{given_prompt(request)} Explain it in three steps for a curious student."
    if kind == "equality":
        return "Not Equal"
    return f"A full answer to: {request.messages[-1]['content'][:40]}"


class ScriptedLLM(LLM):
    """Answers with ``reply(request)`` (a str or a ChatResponse); keeps every request."""

    def __init__(self, reply: Callable[[ChatRequest], str | ChatResponse] = default_reply, jitter: int | None = None):
        self.reply = reply
        self.history: list[ChatRequest] = []
        self._rng = random.Random(jitter) if jitter is not None else None

    async def complete(self, request: ChatRequest) -> ChatResponse:
        self.history.append(request)
        if self._rng is not None:  # finish in a scrambled order
            await asyncio.sleep(self._rng.random() * 0.003)
        answer = self.reply(request)
        if isinstance(answer, ChatResponse):
            return answer
        return ChatResponse(answer, "stop", prompt_tokens=10, completion_tokens=5, model="scripted")

    def kinds(self) -> Counter:
        return Counter(kind_of(r) for r in self.history)


def make_engine(llm: LLM | None, **settings) -> Engine:
    options = {"model": "test-model", "max_retries": 1, "quiet": True, **settings}
    return Engine(llm, LLMSettings(**options), None, backoff_base=0.0, backoff_max=0.0)


def alpaca(rid: str, instruction: str, input: str = "", output: str = "An answer.") -> Record:
    return Record.single_turn(rid, instruction, output, input=input, metadata={"source_format": "alpaca"})


RECORDS = [
    alpaca("r0", "Give three tips for staying healthy."),
    alpaca("r1", "Summarise the text.", input="The quick brown fox jumps over the lazy dog."),
    alpaca("r2", "Name a prime number."),
    alpaca("r3", "Write a haiku about autumn."),
]


def evolve(records, reply=default_reply, *, llm=None, prompts=None, **config) -> tuple:
    llm = llm or ScriptedLLM(reply)
    engine = make_engine(llm, **config.pop("settings", {}))
    cfg = EvolConfig(model="test-model", **config)
    result = run_evolution(engine, list(records), prompts or EvolPrompts.load(cfg.ops), cfg)
    return result, llm, engine


def dump(records: list[Record]) -> str:
    return "\n".join(json.dumps(r.model_dump(mode="json"), sort_keys=True) for r in records)


# ---- operations -----------------------------------------------------------------------------


def test_six_operations_five_in_depth_one_in_breadth():
    assert set(OPERATION_NAMES) == {
        "add_constraints", "deepening", "concretizing", "increase_reasoning", "complicate_input", "in_breadth",
    }
    assert Counter(op.evolution for op in OPERATIONS.values()) == {"in-depth": 5, "in-breadth": 1}


def test_parse_ops_names_groups_and_errors():
    assert parse_ops(None) == OPERATION_NAMES
    assert parse_ops("") == OPERATION_NAMES
    assert parse_ops("in-breadth, add-constraints") == ("add_constraints", "in_breadth")
    assert parse_ops("in-depth") == tuple(IN_DEPTH)
    assert parse_ops("deepening,deepening") == ("deepening",)
    with pytest.raises(UsageError, match="unknown operation 'widen'"):
        parse_ops("deepening,widen")
    with pytest.raises(UsageError, match="at least one"):
        parse_ops(" , ")


def test_operation_choice_is_a_function_of_seed_record_and_round():
    first = [choose_operation(OPERATION_NAMES, 7, f"id{i}", 1) for i in range(50)]
    assert first == [choose_operation(OPERATION_NAMES, 7, f"id{i}", 1) for i in range(50)]
    assert first != [choose_operation(OPERATION_NAMES, 8, f"id{i}", 1) for i in range(50)]
    assert first != [choose_operation(OPERATION_NAMES, 7, f"id{i}", 2) for i in range(50)]
    # global random state plays no part
    random.seed(1)
    a = choose_operation(OPERATION_NAMES, 7, "x", 3)
    random.seed(2)
    assert choose_operation(OPERATION_NAMES, 7, "x", 3) == a


def test_operation_choice_is_uniform_and_respects_restriction():
    counts = Counter(choose_operation(OPERATION_NAMES, 0, f"rec-{i}", r) for i in range(1500) for r in (1, 2, 3, 4))
    assert set(counts) == set(OPERATION_NAMES)
    for n in counts.values():  # 1000 expected each; 5 sigma is about 150
        assert 850 < n < 1150, counts
    assert {choose_operation(("deepening", "in_breadth"), 0, f"r{i}", 1) for i in range(100)} == {"deepening", "in_breadth"}


# ---- templates: golden renders, rules of the prompts -------------------------------------------

TRICKY_PROMPT = 'Fill {name} in {{prompt}} with $x and %s; keep ${HOME} and {{ }} as they are.\n\n| a | b |\n|---|---|\n| 1 | {2} |'


def rendered(messages: list[dict]) -> str:
    return "".join(f"=== {m['role']}\n{m['content']}\n" for m in messages)


GOLDEN_CASES = {
    **{op: lambda p, op=op: p.evolution_messages(op, TRICKY_PROMPT) for op in OPERATION_NAMES},
    "equality": lambda p: p.equality_messages(TRICKY_PROMPT, TRICKY_PROMPT + " Use {{two}} steps."),
    "response": lambda p: p.response_messages(TRICKY_PROMPT, system="You are {{terse}}. $PATH"),
}


@pytest.mark.parametrize("name", sorted(GOLDEN_CASES))
def test_rendered_prompt_matches_golden_file(name):
    text = rendered(GOLDEN_CASES[name](EvolPrompts.load()))
    assert text == (GOLDEN / f"{name}.txt").read_text(encoding="utf-8")
    # the data is inserted verbatim: braces, $ and %s are never interpreted
    assert "{{prompt}}" in text and "${HOME}" in text and "%s" in text and "{2}" in text


@pytest.mark.parametrize("op", IN_DEPTH)
def test_in_depth_prompts_state_the_papers_rules(op):
    text = EvolPrompts.load().evolution_messages(op, "Do X.")[-1]["content"]
    assert "10 to 20 words" in text
    assert "tables, code" in text  # keep the non-text parts
    assert "understand it and answer it" in text  # reasonable, answerable by humans
    for marker in ("#Given Prompt#", "#Rewritten Prompt#", "given prompt", "rewritten prompt"):
        assert f'"{marker}"' in text  # the rewrite must not mention them
    assert text.rstrip().endswith("#Given Prompt#:\nDo X.\n\n#Rewritten Prompt#:")


def test_complicate_input_shows_every_structured_input_form():
    text = EvolPrompts.load().evolution_messages("complicate_input", "Do X.")[-1]["content"]
    assert "```python" in text and "| city" in text and '{"order_id"' in text and "<book" in text
    assert "CREATE TABLE" in text


def test_in_breadth_prompt_asks_for_a_rarer_prompt_of_similar_length():
    text = EvolPrompts.load().evolution_messages("in_breadth", "Do X.")[-1]["content"]
    assert "same domain" in text and "rarer" in text and "length and difficulty" in text
    assert text.rstrip().endswith("#Created Prompt#:")


def test_every_operation_template_declares_markers_and_headers():
    prompts = EvolPrompts.load()
    for op in OPERATION_NAMES:
        assert prompts.markers(op) and prompts.answer_headers(op)
    assert prompts.equality.sampling.given() == {"temperature": 0}


def override(tmp_path: Path, name: str, text: str) -> Path:
    folder = tmp_path / name / "evol_instruct"
    folder.mkdir(parents=True)
    (folder / "deepening.yaml").write_text(text)
    return folder.parent


def test_prompts_dir_overrides_a_template(tmp_path):
    root = override(
        tmp_path, "good",
        "name: deepening\nversion: 9\nvariables: [prompt]\n"
        "data: {answer_headers: ['#New#'], markers: ['#Old#']}\n"
        "messages:\n  - role: user\n    content: 'Deeper: {{prompt}}'\n",
    )
    prompts = EvolPrompts.load(("deepening",), root)
    assert prompts.operations["deepening"].ref.startswith("deepening@9#")
    assert prompts.evolution_messages("deepening", "Q") == [{"role": "user", "content": "Deeper: Q"}]
    assert prompts.markers("deepening") == ("#Old#",)
    assert prompts.equality.path.endswith("prompts/evol_instruct/equality.yaml")  # the others stay built-in


@pytest.mark.parametrize(
    "text, message",
    [
        ("variables: [text]\ndata: {answer_headers: ['h'], markers: ['m']}\nmessages:\n  - role: user\n    content: '{{text}}'\n",
         "one variable, 'prompt'"),
        ("variables: [prompt]\ndata: {answer_headers: ['h']}\nmessages:\n  - role: user\n    content: '{{prompt}}'\n",
         "data.markers"),
        ("variables: [prompt]\nsampling: {temp: 1}\ndata: {answer_headers: ['h'], markers: ['m']}\n"
         "messages:\n  - role: user\n    content: '{{prompt}}'\n", "unknown sampling parameter"),
        ("variables: [prompt]\ndata: {answer_headers: ['h'], markers: ['m']}\nmessages:\n  - role: user\n    content: '{{prompt}} {{extra}}'\n",
         "undeclared variables: extra"),
    ],
)
def test_bad_template_overrides_fail_when_loading(tmp_path, text, message):
    root = override(tmp_path, "bad", "name: deepening\nversion: 9\n" + text)
    with pytest.raises(ItkitError, match=message):
        EvolPrompts.load(("deepening",), root)


# ---- parsing messy outputs ---------------------------------------------------------------------

H = ("#Rewritten Prompt#", "Rewritten Prompt")


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("#Rewritten Prompt#:\nWrite a poem about cats.", "Write a poem about cats."),
        ("#Rewritten Prompt#: Write a poem.", "Write a poem."),
        ("**Rewritten Prompt:** \"Write a poem.\"", "Write a poem."),
        ("### Rewritten Prompt\nWrite a poem.", "Write a poem."),
        ("The rewritten prompt:\n\nWrite a poem.\n", "Write a poem."),
        ("#Given Prompt#: Write.\n#Rewritten Prompt#: Write a sonnet.", "Write a sonnet."),
        ("Sure! Here's the rewritten prompt:\nWrite a sonnet.", "Write a sonnet."),
        ("\u201cWrite a sonnet.\u201d", "Write a sonnet."),
        ("  Write a poem.\r\n", "Write a poem."),
        # kept as they are
        ('"Hi" means hello. Translate "bye".', '"Hi" means hello. Translate "bye".'),
        ("Translate the following:\nGood morning", "Translate the following:\nGood morning"),
        ("Explain how the rewritten prompt idea works", "Explain how the rewritten prompt idea works"),
    ],
)
def test_parse_evolved_strips_headers_preambles_and_quotes(raw, expected):
    assert parse_evolved(raw, H) == expected


@pytest.mark.parametrize("raw", ["", "   ", "#Rewritten Prompt#:", '""', "**Rewritten Prompt:**\n"])
def test_parse_evolved_rejects_an_empty_rewrite_with_its_raw_text(raw):
    with pytest.raises(ResponseRejected) as info:
        parse_evolved(raw, H)
    assert info.value.raw == raw


def test_parse_evolved_uses_the_in_breadth_header():
    assert parse_evolved("#Created Prompt#:\nName a rare bird.", ("#Created Prompt#",)) == "Name a rare bird."


@pytest.mark.parametrize(
    "raw, equal",
    [
        ("Equal", True), ("equal.", True), ("**Equal**", True), ("They are equal.", True),
        ("Not Equal", False), ("NOT EQUAL", False), ("not_equal", False), ("Unequal", False),
        ("Judgement: Not Equal. The second adds a constraint.", False), ("'Not  Equal'", False),
    ],
)
def test_parse_equality_reads_the_verdict(raw, equal):
    assert parse_equality(raw) is equal


@pytest.mark.parametrize("raw", ["Yes", "Equality holds", "I cannot tell", ""])
def test_parse_equality_rejects_anything_else(raw):
    with pytest.raises(ResponseRejected):
        parse_equality(raw)


# ---- the four elimination rules as pure functions -------------------------------------------------


def test_rule_sorry_needs_the_word_and_fewer_than_80_words():
    assert is_sorry_response("Sorry, I can't help with that.")
    assert is_sorry_response("I am SORRY but no.")
    assert not is_sorry_response("I can't help with that.")
    long = "Sorry for the wait. " + "word " * 76  # 80 words
    assert len(long.split()) == 80 and not is_sorry_response(long)
    assert is_sorry_response("Sorry for the wait. " + "word " * 75)  # 79 words
    assert is_sorry_response("sorry " * 5, max_words=6) and not is_sorry_response("sorry " * 5, max_words=5)


@pytest.mark.parametrize(
    "response", ["It is what it is.", "...", "?!", "Don't.", "I'm not.", "\u2014 the \u2014", "Yours, ours; theirs!", " "]
)
def test_rule_stop_words_fires_on_punctuation_and_stop_words(response):
    assert is_only_stop_words(response)


@pytest.mark.parametrize("response", ["It is 42.", "Paris.", "The answer is yes.", "I don't know Kant."])
def test_rule_stop_words_keeps_a_response_with_content(response):
    assert not is_only_stop_words(response)


def test_stop_word_list_is_data_with_the_common_words():
    assert {"the", "a", "is", "it", "not", "don't", "what"} <= STOP_WORDS and "answer" not in STOP_WORDS
    assert is_only_stop_words("zebra", stop_words=frozenset({"zebra"}))


def test_rule_markers_is_case_insensitive_and_extensible():
    assert copied_marker("Use the GIVEN PROMPT as a base.") == "given prompt"
    assert copied_marker("#Rewritten Prompt# Write a poem.") == "#Rewritten Prompt#"
    assert copied_marker("In this created prompt, list birds.") == "created prompt"
    assert copied_marker("Write a poem.") is None
    assert copied_marker("see #Old# here", ("#old#",)) == "#old#"
    assert set(DEFAULT_MARKERS) >= {"given prompt", "rewritten prompt", "#Rewritten Prompt#", "created prompt"}


def test_identical_ignores_case_and_whitespace_only():
    assert is_identical("Write a  poem.", "write a poem.\n")
    assert not is_identical("Write a poem.", "Write a long poem.")


def test_rules_bundle_names_the_rule_and_looks_at_the_right_text():
    rules = EliminationRules()
    assert rules.instruction_rule("a", "Sorry note: write one to a neighbour.") is None  # sorry in the instruction is fine
    assert rules.instruction_rule("a", "Per the given prompt, do b.")[0] == COPIED_MARKERS
    assert rules.instruction_rule("Do b.", " do  B. ")[0] == NO_INFORMATION_GAIN
    assert rules.response_rule("Sorry, no.")[0] == SORRY_RESPONSE
    assert rules.response_rule("It is.")[0] == STOP_WORDS_RESPONSE
    assert rules.response_rule("Paris is the capital.") is None
    assert EliminationRules(sorry_max_words=2).response_rule("Sorry, not possible today.") is None
    assert RULES == (NO_INFORMATION_GAIN, SORRY_RESPONSE, STOP_WORDS_RESPONSE, COPIED_MARKERS)


# ---- the driver with a scripted model ----------------------------------------------------------------


def test_one_round_evolves_answers_and_records_lineage():
    result, llm, _ = evolve(RECORDS[:2], seed=3)
    assert llm.kinds() == {"evolve": 2, "equality": 2, "response": 2}
    out = result.records("final")
    assert [r.id for r in out] == ["r0-evol-r1", "r1-evol-r1"]
    r1 = out[1]
    # the input is joined into the evolved prompt; the record is single-turn with the new response
    assert r1.instruction.startswith("Summarise the text.\n\nThe quick brown fox") and r1.input == ""
    assert r1.output.startswith("A full answer to: Summarise the text.")
    (step,) = r1.provenance
    op = choose_operation(OPERATION_NAMES, 3, "r1", 1)
    prompts = EvolPrompts.load()
    assert step == {
        "method": "evol-instruct",
        "operation": op,
        "evolution": OPERATIONS[op].evolution,
        "round": 1,
        "parent_id": "r1",
        "model": "test-model",
        "template": prompts.operations[op].ref,
        "template_hash": prompts.operations[op].hash,
        "equality_template": prompts.equality.ref,
        "response_template": prompts.response.ref,
    }
    assert r1.metadata["source_format"] == "alpaca"
    # the equality check compares parent and rewrite; the response request is the rewrite itself
    eq = [r for r in llm.history if kind_of(r) == "equality" and "Summarise" in r.messages[-1]["content"]][0]
    assert "Summarise the text.\n\nThe quick brown fox" in eq.messages[-1]["content"]
    assert "three steps for a curious student" in eq.messages[-1]["content"]
    resp = [r for r in llm.history if kind_of(r) == "response" and "Summarise" in r.messages[-1]["content"]][0]
    assert resp.messages == ({"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": r1.instruction})


def test_chosen_operation_template_is_the_one_sent():
    result, llm, _ = evolve(RECORDS, seed=11)
    for request in llm.history:
        if kind_of(request) == "evolve":
            rid = next(r.id for r in RECORDS if r.prompt == given_prompt(request))
            assert op_of(request) == choose_operation(OPERATION_NAMES, 11, rid, 1)


def test_ops_restriction_is_obeyed():
    result, llm, _ = evolve(RECORDS, ops=("in_breadth",), rounds=2)
    assert {op_of(r) for r in llm.history if kind_of(r) == "evolve"} == {"in_breadth"}
    assert set(result.counts()["by_operation"]) == {"in_breadth"}


TAG = re.compile(r"<(\w+)>|\[(\w+):\d+\]")


def scripted(by_round: dict[tuple[str, int], dict]) -> Callable[[ChatRequest], str]:
    """Replies per (root id, round): {"evolve": text, "equality": text, "response": text}; defaults otherwise.

    Records are tagged ``<root>``; a rewrite is tagged ``[root:round]``. The round of an evolution
    request is the number of evolution requests seen for its root (lineages run their rounds in order).
    """
    seen: Counter = Counter()

    def reply(request: ChatRequest) -> str:
        kind = kind_of(request)
        if kind == "evolve":
            parent = given_prompt(request)
            match = TAG.search(parent)
            root = match.group(1) or match.group(2)
            seen[root] += 1
            k = seen[root]
            return by_round.get((root, k), {}).get("evolve", f"{parent} Harder [{root}:{k}]")
        tags = re.findall(r"\[(\w+):(\d+)\]", request.messages[-1]["content"])
        if tags:
            root, k = tags[-1]  # the rewrite's own tag comes last
            answers = by_round.get((root, int(k)), {})
            if kind in answers:
                return answers[kind]
        return default_reply(request)

    return reply


def tagged(rid: str, text: str) -> Record:
    return alpaca(rid, f"{text} <{rid}>")


def test_sorry_rule_looks_at_the_response_not_the_instruction():
    records = [tagged("a", "Write an apology"), tagged("b", "Write an apology")]
    reply = scripted({
        ("a", 1): {"evolve": "Write a sorry note to a neighbour about the noise [a:1]",
                   "response": "Dear neighbour, I am writing to apologise for the noise last night."},
        ("b", 1): {"evolve": "Write a note to a neighbour about the noise [b:1]",
                   "response": "Sorry, I cannot help with that."},
    })
    result, _, _ = evolve(records, reply)
    a, b = result.lineages
    assert a.evolved and a.attempts[0].status == "survived"  # "sorry" in the instruction: kept
    assert not b.evolved and b.attempts[0].rule == SORRY_RESPONSE
    assert b.attempts[0].response == "Sorry, I cannot help with that."


def test_sorry_in_a_long_response_survives():
    long = "Sorry to hear that. " + "Here is a detailed plan with many steps. " * 12
    reply = scripted({("a", 1): {"response": long}})
    result, _, _ = evolve([tagged("a", "Plan a trip")], reply)
    assert result.lineages[0].evolved


def test_stop_word_rule_fires_on_a_real_response():
    reply = scripted({("a", 1): {"response": "It is what it is..."}, ("b", 1): {"response": "?!"}})
    result, _, _ = evolve([tagged("a", "Describe fate"), tagged("b", "Ask")], reply)
    assert [l.attempts[0].rule for l in result.lineages] == [STOP_WORDS_RESPONSE, STOP_WORDS_RESPONSE]
    assert result.counts()["eliminated_by_rule"][STOP_WORDS_RESPONSE] == 2


MARKER_REPLIES = {
    ("a", 1): {"evolve": "#Rewritten Prompt#:\nRewrite the given prompt so it rhymes [a:1]"},
    ("b", 1): {"evolve": "#Rewritten Prompt#:\nWrite a rhyming couplet about rain [b:1]"},
    ("c", 1): {"evolve": "Write a rhyming couplet about snow [c:1]"},
}


def test_marker_rule_judges_the_reply_as_written_by_default():
    """Rule 4 as in the paper: a reply opening with "#Rewritten Prompt#:" copies a marker and fails."""
    records = [tagged(x, "Write a couplet") for x in "abc"]
    result, llm, _ = evolve(records, scripted(MARKER_REPLIES))
    a, b, c = result.lineages
    assert a.attempts[0].rule == COPIED_MARKERS
    assert b.attempts[0].rule == COPIED_MARKERS and "#Rewritten Prompt#" in b.attempts[0].detail
    assert not b.evolved and c.evolved
    assert llm.kinds() == {"evolve": 3, "equality": 1, "response": 1}  # a and b cost no further request
    assert "salvaged_labels" not in result.counts()["evolutions"]


def test_salvage_labels_strips_the_label_and_counts_it_apart():
    records = [tagged(x, "Write a couplet") for x in "abc"]
    result, llm, _ = evolve(records, scripted(MARKER_REPLIES), salvage_labels=True)
    a, b, c = result.lineages
    assert a.attempts[0].rule == COPIED_MARKERS and "given prompt" in a.attempts[0].detail  # a marker inside stays
    assert b.evolved and b.current.instruction == "Write a rhyming couplet about rain [b:1]"  # header stripped
    assert b.current.provenance[-1]["salvaged_label"] is True
    assert "salvaged_label" not in c.current.provenance[-1]
    assert result.counts()["evolutions"]["salvaged_labels"] == 2  # a's and b's replies had the label
    assert llm.kinds() == {"evolve": 3, "equality": 2, "response": 2}


def test_in_breadth_markers_from_the_template_are_checked():
    reply = lambda req: "Invent a new created prompt about rare birds" if kind_of(req) == "evolve" else default_reply(req)
    result, _, _ = evolve([alpaca("x", "Name a bird.")], reply, ops=("in_breadth",))
    assert result.lineages[0].attempts[0].rule == COPIED_MARKERS


def test_no_information_gain_by_the_model_and_by_identity():
    reply = scripted({("a", 1): {"equality": "Equal"}, ("b", 1): {"evolve": "Write a limerick <b>"}})
    result, llm, _ = evolve([tagged("a", "Write a limerick"), tagged("b", "Write a limerick")], reply)
    a, b = result.lineages
    assert a.attempts[0].rule == NO_INFORMATION_GAIN and "judged it equal" in a.attempts[0].detail
    assert b.attempts[0].rule == NO_INFORMATION_GAIN and "identical" in b.attempts[0].detail
    assert llm.kinds() == {"evolve": 2, "equality": 1}  # no response for eliminated rewrites


def test_rewrites_and_responses_use_the_released_codes_sampling_by_default():
    result, llm, _ = evolve(RECORDS[:1])
    for request in llm.history:
        kind = kind_of(request)
        if kind == "equality":
            assert request.sampling.temperature == 0
            continue
        assert (request.sampling.temperature, request.sampling.top_p, request.sampling.max_tokens) == (1.0, 0.95, 2048)
        assert request.messages[0] == {"role": "system", "content": "You are a helpful assistant."}


def test_equality_check_runs_at_temperature_zero_even_when_the_user_sets_one():
    result, llm, _ = evolve(RECORDS[:1], sampling=Sampling(temperature=0.9))
    by_kind = {kind_of(r): r.sampling for r in llm.history}
    assert by_kind["equality"].temperature == 0
    assert by_kind["evolve"].temperature == 0.9 and by_kind["response"].temperature == 0.9


def test_failed_evolution_keeps_the_parent_in_the_pool():
    reply = scripted({("a", 1): {"equality": "Equal"}, ("a", 2): {"response": "Sorry, no."}})
    result, llm, _ = evolve([tagged("a", "Explain tides")], reply, rounds=4, seed=5)
    (lineage,) = result.lineages
    assert [a.status for a in lineage.attempts] == ["eliminated", "eliminated", "survived", "survived"]
    # rounds 1 and 2 failed: round 3 evolved the source itself, round 4 evolved round 3's survivor
    assert [a.parent_id for a in lineage.attempts] == ["a", "a", "a", "a-evol-r3"]
    assert [m.id for m in lineage.members] == ["a", "a-evol-r3", "a-evol-r4"]
    final = result.records("final")
    assert [r.id for r in final] == ["a-evol-r4"]
    steps = final[0].provenance
    assert [(s["round"], s["parent_id"]) for s in steps] == [(3, "a"), (4, "a-evol-r3")]
    ops = [choose_operation(OPERATION_NAMES, 5, "a", k) for k in (3, 4)]
    assert [s["operation"] for s in steps] == ops
    assert [r.id for r in result.records("all")] == ["a", "a-evol-r3", "a-evol-r4"]
    assert [r.id for r in result.records("all", only_evolved=True)] == ["a-evol-r3", "a-evol-r4"]


def test_a_record_whose_evolutions_all_fail_stays_unchanged_in_the_final_pool():
    reply = lambda req: "Equal" if kind_of(req) == "equality" else default_reply(req)
    result, _, _ = evolve(RECORDS[:2], reply, rounds=2)
    assert result.records("final") == RECORDS[:2]
    assert result.records("final", only_evolved=True) == []
    assert result.counts()["records"] == {"read": 2, "evolved": 0, "unchanged": 2, "failed": 0, "skipped": 0}


def test_counts_per_rule_per_operation_and_per_round():
    reply = scripted({
        ("a", 1): {"equality": "Equal"},
        ("b", 1): {"response": "Sorry."},
        ("c", 1): {"response": "..."},
        ("d", 1): {"evolve": "As the rewritten prompt says, do it [d:1]"},
    })
    records = [tagged(x, "Describe the sea") for x in "abcde"]
    result, _, _ = evolve(records, reply, seed=2, rounds=2)
    counts = result.counts()
    assert counts["eliminated_by_rule"] == {
        NO_INFORMATION_GAIN: 1, SORRY_RESPONSE: 1, STOP_WORDS_RESPONSE: 1, COPIED_MARKERS: 1,
    }
    assert counts["by_round"][0] == {"round": 1, "attempted": 5, "survived": 1, "eliminated": 4, "failed": 0}
    assert counts["by_round"][1] == {"round": 2, "attempted": 5, "survived": 5, "eliminated": 0, "failed": 0}
    assert counts["evolutions"] == {"attempted": 10, "survived": 6, "eliminated": 4, "failed": 0}
    for rule, root in ((NO_INFORMATION_GAIN, "a"), (SORRY_RESPONSE, "b"), (STOP_WORDS_RESPONSE, "c"), (COPIED_MARKERS, "d")):
        op = choose_operation(OPERATION_NAMES, 2, root, 1)
        assert counts["by_operation"][op]["by_rule"][rule] >= 1
    assert sum(v["attempted"] for v in counts["by_operation"].values()) == 10
    assert sum(sum(v["by_rule"].values()) for v in counts["by_operation"].values()) == 4
    assert counts["records"] == {"read": 5, "evolved": 5, "unchanged": 0, "failed": 0, "skipped": 0}


def test_a_failed_request_keeps_the_parent_in_the_pool_and_records_the_failure():
    base = scripted({})

    def reply(request):
        if kind_of(request) == "equality" and "[b:2]" in request.messages[-1]["content"]:
            return "I would rather not say."
        return base(request)

    result, llm, engine = evolve([tagged("a", "Sing"), tagged("b", "Dance")], reply, rounds=3)
    a, b = result.lineages
    assert a.failures == [] and len(a.members) == 4
    (failure,) = b.failures
    assert failure.round == 2 and failure.stage == "equality"
    assert failure.raw == "I would rather not say." and "neither 'Equal' nor 'Not Equal'" in failure.detail
    assert "gave up after 2 attempts" in failure.detail
    # round 3 evolves b's round-1 survivor, the parent that stayed in the pool
    assert [x.status for x in b.attempts] == ["survived", "failed", "survived"]
    assert b.attempts[2].parent_id == "b-evol-r1"
    assert [r.id for r in result.records("final")] == ["a-evol-r3", "b-evol-r3"]
    assert [r.id for r in result.records("all")] == [
        "a", "a-evol-r1", "a-evol-r2", "a-evol-r3", "b", "b-evol-r1", "b-evol-r3",
    ]
    counts = result.counts()
    assert counts["records"] == {"read": 2, "evolved": 2, "unchanged": 0, "skipped": 0, "failed": 1}
    assert counts["failed_by_stage"]["equality"] == 1
    assert counts["by_round"][1]["failed"] == 1
    assert engine.stats.retries == 1


def test_garbage_rewrites_are_retried_then_fail():
    reply = lambda req: "#Rewritten Prompt#:" if kind_of(req) == "evolve" else default_reply(req)
    result, llm, _ = evolve(RECORDS[:2], reply, ops=tuple(IN_DEPTH), salvage_labels=True)
    assert all(l.failures[0].stage == "evolve" for l in result.lineages)
    assert all(l.failures[0].raw == "#Rewritten Prompt#:" for l in result.lineages)
    assert llm.kinds() == {"evolve": 4}  # 1 try + 1 retry each
    assert result.records("final") == RECORDS[:2]  # the parents stay, and are written


def test_fatal_errors_stop_the_run():
    def reply(request):
        raise FatalLLMError("invalid API key")

    with pytest.raises(FatalLLMError):
        evolve(RECORDS[:2], reply)


def test_multi_turn_and_empty_records_are_skipped_with_a_reason():
    chat = Record.single_turn("chat", "And now?", "Done.", history=[("Hi", "Hello!")])
    empty = alpaca("empty", "  ")
    assert "multi-turn conversation (2 user turns)" in skip_reason(chat)
    result, llm, _ = evolve([chat, empty, RECORDS[0]], rounds=2)
    assert [l.skipped is not None for l in result.lineages] == [True, True, False]
    assert [r.id for r in result.records("all")] == ["r0", "r0-evol-r1", "r0-evol-r2"]
    assert result.counts()["records"]["skipped"] == 2
    assert result.counts()["skipped_reasons"] == {"multi-turn conversation": 1, "empty instruction": 1}
    assert all("And now?" not in r.messages[-1]["content"] for r in llm.history)


def test_system_prompt_is_kept_and_sent_with_the_response_request():
    rec = Record.single_turn("s", "Name a colour.", "Blue.", system="Answer in French.")
    result, llm, _ = evolve([rec])
    (out,) = result.records("final")
    assert out.system == "Answer in French."
    resp = [r for r in llm.history if kind_of(r) == "response"][0]
    assert resp.messages[0] == {"role": "system", "content": "Answer in French."}
    evo = [r for r in llm.history if kind_of(r) == "evolve"][0]
    assert evo.messages[0] == {"role": "system", "content": "You are a helpful assistant."}  # not the record's


def test_evolved_records_drop_unknown_source_fields_and_generated_id_flag():
    rec = alpaca("data-0", "Count to three.")
    rec.metadata.update({"extra": {"difficulty": "easy"}, "id_generated": True})
    result, _, _ = evolve([rec])
    (out,) = result.records("final")
    assert "extra" not in out.metadata and "id_generated" not in out.metadata


def test_results_do_not_depend_on_completion_order():
    records = [alpaca(f"k{i}", f"Task number {i}: describe item {i}.") for i in range(12)]
    outputs = []
    for jitter, concurrency in ((1, 1), (2, 8), (3, 16)):
        llm = ScriptedLLM(default_reply, jitter=jitter)
        result, _, _ = evolve(records, llm=llm, rounds=3, seed=4, settings={"concurrency": concurrency})
        outputs.append((dump(result.records("all")), json.dumps(result.counts(), sort_keys=True)))
    assert outputs[0] == outputs[1] == outputs[2]


def test_seed_changes_the_operations():
    a, _, _ = evolve(RECORDS, seed=1, rounds=2)
    b, _, _ = evolve(RECORDS, seed=2, rounds=2)
    ops = lambda res: [x.operation for l in res.lineages for x in l.attempts]
    assert ops(a) != ops(b)


def test_dry_run_plans_every_round_and_sends_nothing():
    llm = ScriptedLLM()
    engine = make_engine(llm, dry_run=True)
    engine._counter = type("Words", (), {"count": staticmethod(lambda t: len(t.split())),
                                          "count_messages": staticmethod(lambda ms: sum(len(m["content"].split()) for m in ms))})()
    cfg = EvolConfig(rounds=3, model="test-model")
    result = run_evolution(engine, RECORDS[:2], EvolPrompts.load(), cfg)
    assert llm.history == []
    assert engine.plan.requests == 2 * 3 * 3
    assert [s.template.split("@")[0] for s in engine.plan.samples] == [
        choose_operation(OPERATION_NAMES, 0, "r0", 1), "equality", "response",
    ]
    assert "[dry run: stands for the round 1 rewrite" in engine.plan.samples[1].messages[-1]["content"]
    assert result.counts()["evolutions"]["planned"] == 6


def test_lineage_kept_rules():
    src = alpaca("z", "Q")
    lin = Lineage(src)
    assert lin.kept("final") == [src] and lin.kept("all", only_evolved=True) == []
    lin.skipped = "multi-turn"
    assert lin.kept("final") == [] and lin.kept("all") == []


def test_evolver_works_on_a_bare_engine_object():
    """The driver needs only ``complete`` (and optionally ``advance``): any engine-like object works."""

    class Bare:
        async def complete(self, messages, *, template="", sampling=None, parse=None, **_):
            response = ChatResponse(default_reply(ChatRequest("m", tuple(messages), template=template)), "stop")
            return parse(response) if parse else response

    evolver = Evolver(Bare(), EvolPrompts.load(), EvolConfig(rounds=2, model="m"))
    lineage = asyncio.run(evolver.evolve(RECORDS[2]))
    assert [m.id for m in lineage.members] == ["r2", "r2-evol-r1", "r2-evol-r2"]


def test_a_parent_kept_after_a_failed_round_gets_a_fresh_rewrite_not_the_cached_one(tmp_path):
    from itkit.llm.cache import ResponseCache

    rewrites = iter(f"Explain tides with {n} examples." for n in range(1, 10))
    reply = lambda req: next(rewrites) if kind_of(req) == "evolve" else ("Equal" if kind_of(req) == "equality" else "ok")
    llm = ScriptedLLM(reply)
    engine = Engine(llm, LLMSettings(model="m", quiet=True), ResponseCache.open(str(tmp_path)))
    cfg = EvolConfig(rounds=3, ops=("deepening",), model="m")
    result = run_evolution(engine, [alpaca("t", "Explain tides.")], EvolPrompts.load(cfg.ops), cfg)
    engine.close()
    # the same parent and operation three times: three requests, three different rewrites
    assert [a.instruction for a in result.lineages[0].attempts] == [
        "Explain tides with 1 examples.", "Explain tides with 2 examples.", "Explain tides with 3 examples.",
    ]
    assert llm.kinds()["evolve"] == 3


# ---- robustness: any text in, a value or a typed rejection out ------------------------------------

from hypothesis import given, settings, strategies as st  # noqa: E402

PIECES = list("ab #*:\"'\n\u201c\u201d{}$%") + ["Rewritten Prompt", "#Rewritten Prompt#:", "Here is the rewritten prompt:"]
MESSY = st.lists(st.sampled_from(PIECES), max_size=25).map("".join)


@settings(max_examples=300, deadline=None)
@given(st.one_of(MESSY, st.text(max_size=60)))
def test_parse_evolved_never_crashes_and_never_returns_empty(text):
    try:
        out = parse_evolved(text, H)
    except ResponseRejected as exc:
        assert exc.raw == text
    else:
        assert out and out == out.strip()


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_parse_equality_and_rules_never_crash(text):
    try:
        assert parse_equality(text) in (True, False)
    except ResponseRejected:
        pass
    broken = EliminationRules().response_rule(text)
    assert broken is None or broken[0] in (SORRY_RESPONSE, STOP_WORDS_RESPONSE)
