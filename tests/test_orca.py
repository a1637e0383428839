"""Method tests of Orca explanation tuning, with the LLM faked at its interface."""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
from collections import Counter
from pathlib import Path

import pytest

from itkit.dataset import read_records
from itkit.errors import ConversionError, Location, UsageError
from itkit.formats import get_format
from itkit.formats.base import LoadContext
from itkit.llm.base import LLM, ChatRequest, ChatResponse, RecordFailure, TransientLLMError
from itkit.llm.engine import Engine
from itkit.llm.report import RunReport
from itkit.llm.settings import LLMSettings
from itkit.methods.orca.assign import UNIFORM, Assigner, parse_message_set, seeded_choice
from itkit.methods.orca.rewrite import (
    EMPTY_PROMPT,
    META_ORIGINAL_SYSTEM,
    META_SYSTEM_MESSAGE,
    META_TASK_TYPE,
    OrcaRewriter,
)
from itkit.methods.orca.run import run_orca
from itkit.methods.orca.system_messages import load_system_messages, parse_system_messages
from itkit.methods.orca.task_types import load_task_table, parse_task_table
from itkit.records import Record
from itkit.templates import PromptError, builtin_prompts_dir
from conftest import SHARED

GOLDEN = Path(__file__).resolve().parent / "golden" / "orca"
UPDATE_GOLDEN = os.environ.get("ITKIT_UPDATE_GOLDEN") == "1"
TIKTOKEN_DIR = SHARED / "tiktoken"  # ../shared beside the repository
MODEL = "teacher-model"

# the paper's assignment by collection (../shared/reference/methods.md)
PAPER_COLLECTIONS = {
    "cot": (6, 11, 16),
    "niv": (1, 2, 5, 7, 9, 12, 13, 14, 15),
    "t0": (1, 2, 3, 5, 7),
    "flan_multiple_choice": (3, 4, 7, 8, 10),  # FLAN's 3, 4, 7 plus 8 and 10 for multiple choice
    "flan_other": (3, 4, 7),
}


@pytest.fixture(autouse=True)
def _tiktoken_cache(monkeypatch):
    if not os.environ.get("TIKTOKEN_CACHE_DIR") and TIKTOKEN_DIR.is_dir():
        monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(TIKTOKEN_DIR))


class ScriptedLLM(LLM):
    """A fake model: ``script(request, attempt)`` gives the reply text (or raises); requests are recorded."""

    def __init__(self, script=None, jitter: float = 0.0, seed: int = 0):
        self.script = script or (lambda request, attempt: f"answer to: {request.messages[-1]['content']}")
        self.requests: list[ChatRequest] = []
        self.jitter = jitter
        self.rng = random.Random(seed)
        self._attempts: Counter = Counter()

    async def complete(self, request: ChatRequest) -> ChatResponse:
        self.requests.append(request)
        key = json.dumps(request.messages, sort_keys=True)
        attempt = self._attempts[key]
        self._attempts[key] += 1
        if self.jitter:
            await asyncio.sleep(self.rng.random() * self.jitter)  # completion order differs from submission order
        reply = self.script(request, attempt)
        if isinstance(reply, ChatResponse):
            return reply
        return ChatResponse(text=reply, finish_reason="stop", prompt_tokens=10, completion_tokens=5, model=request.model)


def make_engine(llm: LLM | None, **settings) -> Engine:
    values = {"model": MODEL, "max_retries": 2, "concurrency": 4, "quiet": True, **settings}
    return Engine(llm, LLMSettings(**values), None, backoff_base=0.001, backoff_max=0.01)


def rec(rid: str, instruction: str, output: str | None = "old answer", input: str = "", **kw) -> Record:
    return Record.single_turn(rid, instruction, output, input=input, **kw)


@pytest.fixture(scope="module")
def rewriter() -> OrcaRewriter:
    return OrcaRewriter.load(MODEL)


# ---- the 16 system messages ------------------------------------------------------------------------------
def test_builtin_system_messages_load_and_validate():
    messages = load_system_messages()
    assert messages.numbers == tuple(range(1, 17))
    assert messages.text(1) == ""
    for n in range(2, 17):
        assert messages.text(n).strip(), n
        assert messages[n].intent.strip(), n
    assert len({messages.text(n) for n in range(1, 17)}) == 16
    assert re.fullmatch(r"system_messages@1#[0-9a-f]{12}", messages.ref)
    # the intents that carry a required shape are kept
    assert "Part #:" in messages.text(15) and "Usage:" in messages.text(15)
    assert "five-year-old" in messages.text(4) and "five-year-old" in messages.text(8)
    assert "multiple-choice" in messages.text(8) and "multiple-choice" in messages.text(10)
    assert "translate" in messages.text(14)


@pytest.mark.parametrize(
    "body, message",
    [
        ("- just a list\n", "must be a YAML mapping"),
        ("name: x\nversion: 1\nmessages: []\n", "field 'messages'"),
        ("name: x\nversion: 1\nmessages:\n  - {number: 1, intent: a}\n", "field 'messages.0.text'"),
        ("name: x\nversion: 1\nmessages:\n  - {number: 1, intent: a, text: '', colour: red}\n", "messages.0.colour"),
        (
            "name: x\nversion: 1\nmessages:\n  - {number: 1, intent: a, text: ''}\n  - {number: 1, intent: b, text: b}\n",
            "#1 is defined twice",
        ),
        (
            "name: x\nversion: 1\nmessages:\n  - {number: 1, intent: a, text: ''}\n  - {number: 3, intent: b, text: b}\n",
            "numbered 1..2 without gaps (found 1, 3)",
        ),
        ("name: x\nversion: 1\nmessages: [\n", "line 4: not valid YAML"),
    ],
)
def test_system_messages_file_errors_name_the_file_and_field(body, message):
    with pytest.raises(PromptError) as err:
        parse_system_messages(body.encode(), "custom/orca/system_messages.yaml")
    assert "custom/orca/system_messages.yaml" in str(err.value)
    assert message in str(err.value)


def test_prompts_dir_overrides_the_system_messages(tmp_path):
    builtin = (builtin_prompts_dir() / "orca" / "system_messages.yaml").read_text(encoding="utf-8")
    (tmp_path / "orca").mkdir()
    changed = builtin.replace("You are a teacher.", "You are a patient teacher.")
    (tmp_path / "orca" / "system_messages.yaml").write_text(changed, encoding="utf-8")
    messages = load_system_messages(tmp_path)
    assert messages.path == str(tmp_path / "orca" / "system_messages.yaml")
    assert messages.text(13).startswith("You are a patient teacher.")
    assert messages.hash != load_system_messages().hash
    # the other files still come from the built-in folder
    r = OrcaRewriter.load(MODEL, prompts_dir=tmp_path, assign=UNIFORM, system_messages="13")
    item = r.plan(rec("a", "Explain rainbows."))
    assert item.messages[0] == {"role": "system", "content": messages.text(13)}


# ---- the task-type table --------------------------------------------------------------------------------
def test_builtin_table_keeps_the_papers_collections_and_uses_every_message():
    table = load_task_table(tuple(range(1, 17)))
    for name, numbers in PAPER_COLLECTIONS.items():
        assert table.messages_for(name) == numbers
    assert table.messages_for("multiple_choice") == (3, 4, 7, 8, 10)
    assert table.messages_for("cot") == (6, 11, 16)
    assert 14 in table.messages_for("translation")
    used = {n for numbers in table.types.values() for n in numbers}
    assert used == set(range(1, 17))
    assert table.default_type in table.types


def _table_yaml(**overrides: str) -> str:
    parts = {
        "types": "types:\n  general: {messages: [1, 2]}\n  multiple_choice: {messages: [2]}\n",
        "default": "default_type: general\n",
        "collections": "collections:\n  flan: {type: general, multiple_choice_type: multiple_choice}\n",
        "categories": "categories:\n  open_qa: general\n",
        "rules": "rules:\n  - {name: mc, type: multiple_choice, patterns: ['options:']}\n",
    }
    parts.update(overrides)
    return "name: t\nversion: 1\n" + "".join(parts.values())


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({}, None),
        ({"types": "types:\n  general: {messages: [1, 17]}\n  multiple_choice: {messages: [2]}\n"}, "types.general.messages': no system message #17"),
        ({"default": "default_type: nothing\n"}, "field 'default_type': unknown task type 'nothing'"),
        ({"categories": "categories:\n  open_qa: qa\n"}, "field 'categories.open_qa': unknown task type 'qa'"),
        ({"rules": "rules:\n  - {name: mc, type: multiple_choice, patterns: ['(unclosed']}\n"}, "rules.0.patterns.0' (rule 'mc'): bad regular expression"),
        ({"rules": "rules:\n  - {name: mc, type: multiple_choice, patterns: ['a']}\n  - {name: mc, type: general, patterns: ['b']}\n"}, "rule 'mc' is defined twice"),
        ({"rules": "rules:\n  - {name: mc, type: multiple_choice, field: output, patterns: ['a']}\n"}, "field 'rules.0.field'"),
        ({"rules": "rules: []\n"}, "no rule has type 'multiple_choice'"),
        ({"collections": "collections:\n  flan: {type: general, extra: 1}\n"}, "collections.flan.extra"),
    ],
)
def test_task_table_validation(overrides, message):
    raw = _table_yaml(**overrides).encode()
    if message is None:
        table = parse_task_table(raw, "t.yaml", (1, 2))
        assert table.messages_for("general") == (1, 2)
        return
    with pytest.raises(PromptError) as err:
        parse_task_table(raw, "t.yaml", (1, 2))
    assert message in str(err.value)
    assert str(err.value).startswith("t.yaml: ")


# ---- task-type detection ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "instruction, input, expected, rule",
    [
        ("Translate 'good morning' into French.", "", "translation", "translate"),
        ("How do you say 'thank you' in Japanese?", "", "translation", "translate"),
        ("Summarize the following article in two sentences.", "Long text.", "summarization", "summarize"),
        ("Write a headline for this article.", "Stocks rose.", "summarization", "summarize"),
        ("Classify each animal as a mammal or a bird: cow, robin.", "", "classification", "classify"),
        ("Is the sentiment of this review positive or negative?", "I loved it", "classification", "classify"),
        ("Determine whether the statement is true.", "Water boils at 50C.", "classification", "classify"),
        ("Extract all dates from the text.", "Born 1990, moved 2001.", "extraction", "extract"),
        ("List the people mentioned in the passage.", "Ann met Bo.", "extraction", "extract"),
        ("Which planet is largest?\nA) Mars\nB) Jupiter\nC) Venus", "", "multiple_choice", "answer-options"),
        ("Pick the best answer.\nOptions:\n- yes\n- no", "", "multiple_choice", "answer-options"),
        ("Is the sky blue? (A) yes (B) no", "", "multiple_choice", "answer-options"),
        ("Q: Is 17 prime? Let's think step by step.", "", "cot", "explicit-reasoning"),
        ("Which is heavier? Explain your reasoning.\nA) 1kg of iron\nB) 2kg of feathers", "", "cot", "explicit-reasoning"),
        ("Sam had 9 pens and gave away 4. How many pens are left?", "", "cot", "math-word-problem"),
        ("Weng earns $12 an hour. Yesterday she worked 50 minutes. How much did she earn?", "", "cot", "math-word-problem"),
        ("A jacket costs $80 and is reduced by 25%. What is the final price?", "", "cot", "math-word-problem"),
        ("Solve this riddle: what has keys but cannot open locks?", "", "cot", "reasoning-puzzle"),
        ("Who won the 1998 World Cup?", "", "open_qa", "question"),
        ("Design a chess puzzle for beginners.", "", "generation", "write-something"),
        ("What is 12 * 7?", "", "cot", "arithmetic-or-proof"),
        ("When was the bridge finished, according to the passage?", "It opened in 1937.", "closed_qa", "question-on-passage"),
        ("Who founded the company?", "Acme was founded by Jo Lee in 1950.", "closed_qa", "question-with-input"),
        ("Write a short poem about the sea.", "", "generation", "write-something"),
        ("Give me five ideas for a birthday party.", "", "generation", "write-something"),
        ("Who wrote Pride and Prejudice?", "", "open_qa", "question"),
        ("Why is the sky blue", "", "open_qa", "question"),
        ("Rainbows.", "", "general", None),
    ],
)
def test_task_type_detection_by_rules(rewriter, instruction, input, expected, rule):
    found = rewriter.table.detect(rec("x", instruction, input=input))
    assert found.name == expected
    assert found.found_by == (f"rule:{rule}" if rule else "default")


@pytest.mark.parametrize(
    "category, expected",
    [
        ("open_qa", "open_qa"),
        ("general_qa", "open_qa"),
        ("closed_qa", "closed_qa"),
        ("classification", "classification"),
        ("information_extraction", "extraction"),
        ("summarization", "summarization"),
        ("brainstorming", "generation"),
        ("creative_writing", "generation"),
        ("Creative Writing", "generation"),
        ("translation", "translation"),
        ("niv", "niv"),
        ("t0", "t0"),
        ("cot", "cot"),
        ("flan", "flan_other"),
    ],
)
def test_category_field_decides_before_the_rules(rewriter, category, expected):
    record = rec("x", "Translate this, step by step: hello", metadata={"category": category})
    found = rewriter.table.detect(record)
    assert (found.name, found.found_by) == (expected, f"category:{category}")


def test_unknown_category_falls_through_to_id_prefix_and_rules(rewriter):
    assert rewriter.table.detect(rec("x", "Translate: hi", metadata={"category": "misc"})).found_by == "rule:translate"
    found = rewriter.table.detect(rec("t0.5", "Translate: hi", metadata={"category": "misc"}))
    assert (found.name, found.found_by) == ("t0", "id-prefix:t0")


@pytest.mark.parametrize(
    "rid, question, expected",
    [
        ("niv.242684", "Definition: translate to French.", "niv"),
        ("t0.1003", "Pick one:\nA) x\nB) y", "t0"),
        ("cot.86217", "Write a poem", "cot"),
        ("flan.1875913", "Choose the best:\nOptions:\n- yes\n- no", "flan_multiple_choice"),
        ("flan.2070240", "Write a tweet about cats.", "flan_other"),
        ("FLAN.7", "Summarize.", "flan_other"),
        ("other.7", "Summarize this text.", "summarization"),
    ],
)
def test_openorca_id_prefix_gives_the_collection(rewriter, rid, question, expected):
    found = rewriter.table.detect(rec(rid, question))
    assert found.name == expected


def test_math_word_problems_are_chain_of_thought(rewriter):
    """Every GSM8K-shaped problem of data_samples/ (a number, a question about a quantity) is `cot`: step by step."""
    records = read_records(str(Path(__file__).resolve().parent.parent / "data_samples" / "gsm8k_style.jsonl"))
    assert len(records) == 50
    found = Counter(rewriter.table.detect(r).found_by for r in records)
    assert found == {"rule:math-word-problem": 50}
    assert {rewriter.plan(r).assignment.number for r in records} == {6, 11, 16}


@pytest.mark.skipif(not (SHARED / "realdata").is_dir(), reason="../shared/realdata is absent")
def test_real_seed_tasks_math_problems_are_chain_of_thought(rewriter):
    records = read_records(str(SHARED / "realdata" / "self_instruct_seed_tasks.jsonl"))
    math = [r for r in records if re.search(r"\bmath\b", r.instruction, re.I) and r.input.strip()]
    assert len(math) >= 3
    assert all(rewriter.table.detect(r).name == "cot" for r in math)


def test_openorca_rows_assign_by_their_submix(rewriter):
    fmt = get_format("openorca")
    rows = [
        {"id": "niv.1", "system_prompt": "", "question": "Definition: ...", "response": "x"},
        {"id": "flan.2", "system_prompt": "", "question": "Options:\n- a\n- b", "response": "x"},
        {"id": "cot.3", "system_prompt": "", "question": "Is 3 > 2?", "response": "x"},
    ]
    records = [fmt.load(row, LoadContext(Location("t"), f"t-{i}")) for i, row in enumerate(rows)]
    items = [rewriter.plan(r) for r in records]
    assert [i.assignment.task_type for i in items] == ["niv", "flan_multiple_choice", "cot"]
    assert [i.assignment.found_by for i in items] == ["category:niv", "category:flan", "category:cot"]
    for item in items:
        assert item.assignment.number in PAPER_COLLECTIONS[item.assignment.task_type]


# ---- assignment ------------------------------------------------------------------------------------------
def _many(n: int, instruction: str = "Translate this into Spanish.") -> list[Record]:
    return [rec(f"r{i}", instruction) for i in range(n)]


def test_by_type_draws_only_from_the_types_messages_and_uses_all_of_them(rewriter):
    numbers = Counter(rewriter.plan(r).assignment.number for r in _many(400))
    assert set(numbers) == {5, 7, 12, 14}
    assert min(numbers.values()) > 60  # roughly uniform within the type (expected 100 each)


def test_uniform_draws_from_all_sixteen():
    r = OrcaRewriter.load(MODEL, assign=UNIFORM)
    numbers = Counter(r.plan(x).assignment.number for x in _many(3200))
    assert set(numbers) == set(range(1, 17))
    assert min(numbers.values()) > 140 and max(numbers.values()) < 260  # expected 200 each
    assert r.plan(rec("a", "Translate it.")).assignment.task_type == "translation"  # still detected for metadata


def test_fixed_set_restricts_the_choice():
    r = OrcaRewriter.load(MODEL, assign=UNIFORM, system_messages="2,5,7")
    assert {r.plan(x).assignment.number for x in _many(200)} == {2, 5, 7}


def test_by_type_with_a_set_intersects_and_falls_back_when_disjoint():
    r = OrcaRewriter.load(MODEL, system_messages="2,5,12")
    translation = {r.plan(x).assignment for x in _many(100)}
    assert {a.number for a in translation} == {5, 12} and not any(a.fallback for a in translation)
    mc = [r.plan(x).assignment for x in _many(100, "Pick one:\nA) red\nB) blue")]  # (3, 4, 7, 8, 10) & (2, 5, 12) is empty
    assert {a.number for a in mc} == {2, 5, 12}
    assert all(a.fallback and a.pool == (2, 5, 12) for a in mc)


@pytest.mark.parametrize(
    "text, expected",
    [("2,5,7", (2, 5, 7)), (" 7, 2 ,2", (2, 7)), ("1-4,9", (1, 2, 3, 4, 9)), ("16", (16,))],
)
def test_parse_message_set(text, expected):
    assert parse_message_set(text, range(1, 17)) == expected


@pytest.mark.parametrize(
    "text, message",
    [
        ("2,x", "'x' is not a message number"),
        ("5-2", "'5-2' is not a message number"),
        ("0", "no system message #0; they are numbered 1..16"),
        ("2,17", "no system message #17"),
        (" , ", "give at least one message number"),
    ],
)
def test_parse_message_set_errors(text, message):
    with pytest.raises(UsageError) as err:
        parse_message_set(text, range(1, 17))
    assert message in str(err.value)
    assert str(err.value).startswith("--system-messages: ")


def test_assign_mode_must_be_known(rewriter):
    with pytest.raises(UsageError, match="--assign must be one of by-type, uniform"):
        Assigner(rewriter.table, tuple(range(1, 17)), mode="random")


def test_assignment_depends_only_on_seed_and_record_id():
    a = OrcaRewriter.load(MODEL, assign=UNIFORM, seed=7)
    b = OrcaRewriter.load(MODEL, assign=UNIFORM, seed=7)
    c = OrcaRewriter.load(MODEL, assign=UNIFORM, seed=8)
    records = _many(300)
    first = [a.plan(r).assignment.number for r in records]
    # same seed, reversed order, other records around: the same message for each id
    again = {r.id: b.plan(r).assignment.number for r in reversed(records + _many(50, "Write a song."))}
    assert first == [again[r.id] for r in records]
    other = [c.plan(r).assignment.number for r in records]
    assert sum(x != y for x, y in zip(first, other)) > 200  # another seed, another draw
    # stable across Python runs and versions: pinned values
    assert [seeded_choice(tuple(range(1, 17)), 0, f"r{i}") for i in range(8)] == PINNED_DRAWS


PINNED_DRAWS = [16, 3, 8, 10, 3, 14, 3, 16]


# ---- rendering -----------------------------------------------------------------------------------------
def _golden_plan(rewriter: OrcaRewriter) -> list[dict]:
    out = []
    for record in read_records(str(GOLDEN / "records.jsonl"), "alpaca"):
        item = rewriter.plan(record)
        a = item.assignment
        out.append(
            {
                "id": record.id,
                "system_message": a.number,
                "task_type": a.task_type,
                "found_by": a.found_by,
                "messages": list(item.messages),
            }
        )
    return out


def test_rendered_requests_match_the_golden_file(rewriter):
    got = _golden_plan(rewriter)
    path = GOLDEN / "requests.json"
    if UPDATE_GOLDEN:
        path.write_text(json.dumps(got, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    assert got == json.loads(path.read_text(encoding="utf-8"))


def test_rendering_keeps_braces_dollars_and_template_syntax_verbatim(rewriter):
    nasty = "Fill {name} with ${x}, {{ question }}, {{system_message}}, %s, %(a)s, {0} and $$ and \\n}"
    context = "{{question}} ${HOME} {} %d {{{ }}}"
    history = [("prior {{question}} $1", "reply {system_message} %s")]
    record = rec("n1", nasty, input=context, history=history, system="{{system_message}} $sys")
    r = OrcaRewriter.load(MODEL, assign=UNIFORM, system_messages="7")
    item = r.plan(record)
    assert item.messages == (
        {"role": "system", "content": r.system_messages.text(7)},
        {"role": "user", "content": history[0][0]},
        {"role": "assistant", "content": history[0][1]},
        {"role": "user", "content": f"{nasty}\n\n{context}"},
    )


def test_empty_message_one_sends_no_system_message_and_keeps_none():
    r = OrcaRewriter.load(MODEL, assign=UNIFORM, system_messages="1")
    item = r.plan(rec("e", "Name a colour.", system="Old system"))
    assert item.messages == ({"role": "user", "content": "Name a colour."},)
    out = r.rewritten(item, "Blue.")
    assert out.system is None
    assert out.metadata[META_SYSTEM_MESSAGE] == 1
    assert out.metadata[META_ORIGINAL_SYSTEM] == "Old system"


def _respond_override(folder: Path, body: str) -> Path:
    (folder / "orca").mkdir(parents=True)
    (folder / "orca" / "respond.yaml").write_text(body, encoding="utf-8")
    return folder


def test_request_template_override_is_checked(tmp_path):
    no_system = _respond_override(
        tmp_path / "a",
        "name: respond\nversion: 2\nvariables: [question]\nmessages:\n  - {role: user, content: '{{question}}'}\n",
    )
    with pytest.raises(PromptError, match="must declare the variables system_message and question"):
        OrcaRewriter.load(MODEL, prompts_dir=no_system)
    system_last = _respond_override(
        tmp_path / "b",
        "name: respond\nversion: 3\nvariables: [system_message, question]\nmessages:\n"
        "  - {role: user, content: '{{question}}'}\n  - {role: system, content: '{{system_message}}'}\n",
    )
    with pytest.raises(PromptError, match="must end with a user message"):
        OrcaRewriter.load(MODEL, prompts_dir=system_last)
    unknown_sampling = _respond_override(
        tmp_path / "c",
        "name: respond\nversion: 4\nvariables: [system_message, question]\nsampling: {warmth: 1}\nmessages:\n"
        "  - {role: system, content: '{{system_message}}'}\n  - {role: user, content: '{{question}}'}\n",
    )
    with pytest.raises(PromptError, match="respond.yaml: field 'sampling': unknown sampling parameter.s. warmth"):
        OrcaRewriter.load(MODEL, prompts_dir=unknown_sampling)
    good = _respond_override(
        tmp_path / "d",
        "name: respond\nversion: 5\nvariables: [system_message, question]\nsampling: {temperature: 0.3}\nmessages:\n"
        "  - {role: system, content: 'Be brief. {{system_message}}'}\n  - {role: user, content: 'Q: {{question}}'}\n",
    )
    r = OrcaRewriter.load(MODEL, prompts_dir=good, assign=UNIFORM, system_messages="5")
    assert r.sampling.temperature == 0.3
    assert r.plan(rec("a", "Hi {x}")).messages[-1] == {"role": "user", "content": "Q: Hi {x}"}
    assert r.template.ref.startswith("respond@5#")


# ---- regenerating through the engine -------------------------------------------------------------------
def test_rewrite_sets_response_system_metadata_and_provenance():
    llm = ScriptedLLM(lambda request, attempt: "  Dolphins are mammals because they breathe air.  ")
    r = OrcaRewriter.load(MODEL, seed=3)
    record = rec("alp-3", "Which is a mammal?\nA) Shark\nB) Dolphin", metadata={"provenance": [{"method": "earlier"}]})
    item = r.plan(record)
    engine = make_engine(llm)
    [outcome] = engine.run([item], lambda it: r.rewrite(engine, it))
    out = outcome.value
    a = item.assignment
    assert a.task_type == "multiple_choice" and a.number in (3, 4, 7, 8, 10)
    assert out.output == "Dolphins are mammals because they breathe air."
    assert out.system == r.system_messages.text(a.number)
    assert out.instruction == record.instruction
    assert out.metadata[META_SYSTEM_MESSAGE] == a.number
    assert out.metadata[META_TASK_TYPE] == "multiple_choice"
    assert out.provenance[0] == {"method": "earlier"}
    step = out.provenance[-1]
    assert step == {
        "method": "orca",
        "operation": f"system message #{a.number}",
        "parent_id": "alp-3",
        "model": MODEL,
        "template": r.template.ref,
        "template_hash": r.template.hash,
        "system_messages": r.system_messages.ref,
        "task_types": r.table.ref,
        "task_type": "multiple_choice",
        "assigned_by": "by-type (rule:answer-options)",
    }
    [request] = llm.requests
    assert list(request.messages) == list(item.messages)
    assert request.template == r.template.ref


def test_multi_turn_regenerates_only_the_final_response():
    llm = ScriptedLLM(lambda request, attempt: "Paris is the capital of France.")
    r = OrcaRewriter.load(MODEL, assign=UNIFORM, system_messages="16")
    record = Record.single_turn(
        "mt", "And of France?", "paris", history=[("Capital of Italy?", "Rome."), ("And Spain?", "Madrid.")]
    )
    engine = make_engine(llm)
    [outcome] = engine.run([r.plan(record)], lambda it: r.rewrite(engine, it))
    out = outcome.value
    assert [t.content for t in out.turns] == [
        "Capital of Italy?", "Rome.", "And Spain?", "Madrid.", "And of France?", "Paris is the capital of France.",
    ]
    assert [m["role"] for m in llm.requests[0].messages] == ["system", "user", "assistant", "user", "assistant", "user"]
    # a conversation that ends with the user gets its answer appended
    open_ended = Record.single_turn("oe", "Tell me a joke.", None)
    [outcome] = engine.run([r.plan(open_ended)], lambda it: r.rewrite(engine, it))
    assert [t.role for t in outcome.value.turns] == ["user", "assistant"]


def test_garbage_answer_is_retried_then_recorded_with_its_raw_text():
    replies = {0: "...", 1: "  ?!  "}
    llm = ScriptedLLM(lambda request, attempt: replies.get(attempt, "A real answer."))
    r = OrcaRewriter.load(MODEL)
    engine = make_engine(llm, max_retries=2)
    [ok] = engine.run([r.plan(rec("g", "Why is ice slippery?"))], lambda it: r.rewrite(engine, it))
    assert ok.value.output == "A real answer." and len(llm.requests) == 3

    always = ScriptedLLM(lambda request, attempt: "!!!")
    engine = make_engine(always, max_retries=1)
    [bad] = engine.run([r.plan(rec("g", "Why is ice slippery?"))], lambda it: r.rewrite(engine, it))
    assert isinstance(bad.failure, RecordFailure)
    assert "no letters or digits" in bad.failure.reason and bad.failure.raw == "!!!"


# ---- run_orca: files, accounting, determinism -------------------------------------------------------------
def _write_alpaca(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return str(path)


ROWS = [
    {"id": f"a{i}", "instruction": text, "input": "", "output": "old"}
    for i, text in enumerate(
        [
            "Translate 'cat' into German.",
            "Summarize: {{ x }} and ${y}.",
            "What is 3 + 4?",
            "Write a limerick about %s.",
            "Who painted the Mona Lisa?",
            "FAIL this one",
            "Pick one:\nA) up\nB) down",
            "Name a prime number.",
        ]
    )
]


def _run(tmp_path: Path, llm: LLM, name: str = "out.jsonl", rows=ROWS, to: str | None = None, **settings):
    src = _write_alpaca(tmp_path / "in.jsonl", rows)
    output = str(tmp_path / name)
    engine = make_engine(llm, **settings)
    r = OrcaRewriter.load(MODEL, seed=settings.get("seed"))
    report = RunReport("orca", output, engine.settings)
    result = run_orca(src, output, engine=engine, rewriter=r, report=report, to_format=to)
    return result, output


def _script(request, attempt):
    question = request.messages[-1]["content"]
    if question.startswith("FAIL"):
        return ""  # rejected as empty every time
    return f"Explained: {question}"


def test_run_writes_in_input_order_accounts_for_every_record_and_is_deterministic(tmp_path):
    result, output = _run(tmp_path, ScriptedLLM(_script, jitter=0.02, seed=1), "one.jsonl", concurrency=8)
    assert (result.read, result.written, result.failed) == (8, 7, 1)
    rows = [json.loads(line) for line in Path(output).read_text(encoding="utf-8").splitlines()]
    assert [row["id"] for row in rows] == ["a0", "a1", "a2", "a3", "a4", "a6", "a7"]
    messages = load_system_messages()
    for row in rows:  # each answer belongs to its own record, each carries its system message
        assert row["output"] == f"Explained: {row['instruction']}"
        assert row.get("system", "") in {messages.text(n) for n in messages.numbers}
    failures = [json.loads(line) for line in Path(f"{output}.failures.jsonl").read_text().splitlines()]
    assert failures == [  # the input row verbatim, with why and where it failed
        {
            **ROWS[5],
            "_itkit_failure": {
                "reason": "empty response (gave up after 3 attempts)",
                "source": str(tmp_path / "in.jsonl"),
                "line": 6,
                "response": "",
                "orca_system_message": failures[0]["_itkit_failure"]["orca_system_message"],
                "task_type": "general",
            },
        }
    ]
    summary = json.loads(Path(f"{output}.summary.json").read_text())
    assert summary["counts"] == {"read": 8, "rejected_input": 0, "written": 7, "failed": 1}
    assert sum(summary["orca"]["system_messages"].values()) == 8
    # completion order differs (other jitter seed), the file does not
    _result, again = _run(tmp_path, ScriptedLLM(_script, jitter=0.02, seed=2), "two.jsonl", concurrency=8)
    assert Path(output).read_bytes() == Path(again).read_bytes()


def test_run_to_openorca_writes_its_layout_with_ids(tmp_path):
    rows = [{k: v for k, v in row.items() if k != "id"} for row in ROWS[:3]]  # ids made up at load time
    result, output = _run(tmp_path, ScriptedLLM(_script), rows=rows, to="openorca")
    assert result.target_format == "openorca" and result.written == 3
    out = [json.loads(line) for line in Path(output).read_text(encoding="utf-8").splitlines()]
    # OpenOrca's four fields, plus itkit's metadata (provenance travels with every output record)
    assert [list(row) for row in out] == [["id", "system_prompt", "question", "response", "metadata"]] * 3
    assert all(row["metadata"]["provenance"][-1]["method"] == "orca" for row in out)
    assert [row["id"] for row in out] == ["in-0", "in-1", "in-2"]
    messages = load_system_messages()
    for row, source in zip(out, rows):
        assert row["question"] == source["instruction"]
        assert row["response"] == f"Explained: {source['instruction']}"
        assert row["system_prompt"] in {messages.text(n) for n in messages.numbers}


def test_output_format_that_cannot_hold_the_system_message_fails_before_any_request(tmp_path):
    dolly = [{"instruction": "Summarize.", "context": "Some text.", "response": "x", "category": "summarization"}]
    src = tmp_path / "d.jsonl"
    src.write_text(json.dumps(dolly[0]) + "\n", encoding="utf-8")
    llm = ScriptedLLM()
    engine = make_engine(llm)
    r = OrcaRewriter.load(MODEL, assign=UNIFORM, system_messages="2")
    output = tmp_path / "o.jsonl"
    with pytest.raises(ConversionError) as err:
        run_orca(str(src), str(output), engine=engine, rewriter=r, report=RunReport("orca", str(output), engine.settings))
    assert "record 'd-0'" in str(err.value) and "dolly cannot hold" in str(err.value) and "--to" in str(err.value)
    assert llm.requests == [] and not output.exists()


def test_empty_prompt_is_not_sent_and_is_recorded(tmp_path):
    rows = [{"id": "e1", "instruction": "", "input": "", "output": "x"}, ROWS[0]]
    llm = ScriptedLLM(_script)
    result, output = _run(tmp_path, llm, rows=rows)
    assert (result.written, result.failed) == (1, 1)
    assert len(llm.requests) == 1
    [failure] = [json.loads(line) for line in Path(f"{output}.failures.jsonl").read_text().splitlines()]
    assert failure["id"] == "e1" and failure["_itkit_failure"]["reason"] == EMPTY_PROMPT


def test_limit_processes_the_first_records_only(tmp_path):
    llm = ScriptedLLM(_script)
    result, output = _run(tmp_path, llm, limit=3)
    assert result.read == 3 and len(llm.requests) == 3
    assert len(Path(output).read_text().splitlines()) == 3


def test_dry_run_sends_nothing_and_estimates(tmp_path):
    result, output = _run(tmp_path, None, dry_run=True)  # type: ignore[arg-type]
    assert result.dry_run and result.planned == 8
    assert not Path(output).exists()


def test_fatal_error_stops_the_run_and_writes_nothing(tmp_path):
    from itkit.llm.base import FatalLLMError

    def script(request, attempt):
        raise FatalLLMError("invalid API key")

    with pytest.raises(FatalLLMError):
        _run(tmp_path, ScriptedLLM(script))
    assert not (tmp_path / "out.jsonl").exists()


def test_transient_errors_are_retried(tmp_path):
    def script(request, attempt):
        if attempt == 0:
            raise TransientLLMError("HTTP 503", status=503)
        return _script(request, attempt)

    result, _output = _run(tmp_path, ScriptedLLM(script))
    assert (result.written, result.failed) == (7, 1)
