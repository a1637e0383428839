"""Records with tool calls through the cleaning and rewriting steps: the filters judge only text, dedup compares the
calls, simplify leaves a final call untouched and shows the rewriter the tool results, Evol-Instruct and Orca
keep such records out of their rewrites (with a reason) rather than mangle them."""

from __future__ import annotations

import json

import pytest

from itkit.dedup.texts import response_length, text_getter
from itkit.filters import build_rules, check_record
from itkit.methods.evol_instruct.evolve import SKIP_TOOLS, skip_kind, skip_reason
from itkit.methods.orca.rewrite import TOOL_RECORD, OrcaRewriter
from itkit.records import Record, Turn
from itkit.simplify import needs_simplifying, prompt_variables

CALL = {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}


def tool_record(final: str = "It is 18 degrees and sunny in Paris today.", last_call: bool = False) -> Record:
    turns = [
        Turn(role="user", content="What is the weather in Paris right now?"),
        Turn(role="assistant", content="", tool_calls=[CALL]),
        Turn(role="tool", content="n/a", tool_call_id="c1"),
        Turn(role="assistant", content=final),
    ]
    if last_call:
        turns += [Turn(role="user", content="And in Rome, please?"), Turn(role="assistant", content="", tool_calls=[CALL])]
    return Record(id="t", turns=turns)


def test_default_filter_rules_keep_a_sound_tool_record():
    rules = build_rules(["empty", "placeholder", "refusal", "alternation", "length", "non_text"], min_response=2)
    assert check_record(tool_record(), rules) is None  # the empty call turn and the "n/a" result are not text
    assert check_record(tool_record(last_call=True), rules) is None
    assert check_record(tool_record(final="N/A"), rules[1:2])[0] == "placeholder"


def test_dedup_compares_the_tool_calls_too():
    other = CALL | {"function": {"name": "get_time", "arguments": '{"city": "Paris"}'}}
    a = tool_record()
    b = a.model_copy(update={"turns": [a.turns[0], a.turns[1].replace(tool_calls=[other]), *a.turns[2:]]})
    for on in ("response", "conversation"):
        get = text_getter(on)
        assert get(a) != get(b) and "get_weather" in get(a)
    assert response_length(a) > len(a.turns[-1].content)
    assert text_getter("auto")(a) == "What is the weather in Paris right now?"


def test_simplify_leaves_a_final_call_alone_and_sees_the_results():
    assert not needs_simplifying(tool_record(last_call=True))
    record = tool_record()
    assert needs_simplifying(record)
    variables = prompt_variables(record)
    assert "Tool result: n/a" in variables["conversation"]
    assert 'Assistant calls get_weather({"city": "Paris"})' in variables["conversation"]
    assert variables["response"] == record.output
    simplified = record.with_output("18 degrees, sunny.")
    assert simplified.turns[1].tool_calls == [CALL] and simplified.turns[:3] == record.turns[:3]


def test_evol_instruct_and_orca_keep_tool_records_out_with_a_reason():
    reason = skip_reason(tool_record())
    assert reason is not None and skip_kind(reason) == SKIP_TOOLS
    item = OrcaRewriter.load("m").plan(tool_record())
    assert item.skip_reason == TOOL_RECORD and item.messages == ()


@pytest.mark.parametrize("weight", [0, 1])
def test_weights_survive_copies_and_json(weight):
    record = tool_record()
    weighted = record.model_copy(update={"turns": [*record.turns[:3], record.turns[3].replace(weight=weight)]})
    again = Record.model_validate(json.loads(weighted.model_dump_json()))
    assert again == weighted and again.turns[3].trained == bool(weight)
    with pytest.raises(ValueError, match="only assistant turns are weighted"):
        Turn(role="user", content="x", weight=0)
