"""Every format: load, dump, detect, and what each one keeps of its source records."""

from __future__ import annotations

import json

import pytest
from conftest import SAMPLES, without_added_ids

from itkit.dataset import RecordReader, read_records
from itkit.errors import ConversionError, FormatDetectionError, Location, SchemaError, UsageError
from itkit.formats import FORMAT_NAMES, FORMATS, LoadContext, detect, get_format
from itkit.formats.alpaca import EMPTY_INPUT_MARKERS
from itkit.records import Record, Turn

GOOD_SAMPLES = {
    "alpaca.json": ("alpaca", 32),
    "alpaca_variants.jsonl": ("alpaca", 20),
    "dolly.jsonl": ("dolly", 35),
    "dolly.jsonl.gz": ("dolly", 35),
    "dolly.csv": ("dolly", 35),
    "dolly.parquet": ("dolly", 35),
    "sharegpt.json": ("sharegpt", 20),
    "messages.jsonl": ("messages", 20),
    "openorca.jsonl": ("openorca", 20),
    "seed_tasks.jsonl": ("seed_tasks", 20),
}
DOLLY_CATEGORIES = {
    "open_qa",
    "general_qa",
    "classification",
    "closed_qa",
    "brainstorming",
    "information_extraction",
    "summarization",
    "creative_writing",
}


def rows_of(name: str) -> list[dict]:
    path = SAMPLES / name
    if name.endswith(".json"):
        return json.loads(path.read_text(encoding="utf-8"))
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def ctx(index: int = 0) -> LoadContext:
    return LoadContext(Location("test.jsonl", line=index + 1), f"test-{index}")


def load(fmt: str, row: dict) -> Record:
    return get_format(fmt).load(row, ctx())


def by_id(records: list[Record]) -> dict[str, Record]:
    return {r.id: r for r in records}


# ------------------------------------------------------------------ the samples


def test_every_format_has_a_sample():
    assert {fmt for fmt, _ in GOOD_SAMPLES.values()} == set(FORMAT_NAMES)


@pytest.mark.parametrize("name", sorted(GOOD_SAMPLES))
def test_sample_is_detected_and_loads(name):
    fmt, count = GOOD_SAMPLES[name]
    reader = RecordReader(str(SAMPLES / name))
    records = list(reader)
    assert reader.format.name == fmt
    assert len(records) == count
    assert reader.counts.rows == reader.counts.loaded == count
    assert len({r.id for r in records}) == count, "ids must be unique"
    for record in records:
        assert isinstance(record.id, str)
        assert all(isinstance(t.content, str) for t in record.turns)
        assert record.metadata["source_format"] == fmt
        # records built with model_construct must still satisfy the model's own validation
        assert Record.model_validate(record.model_dump()) == record


def test_samples_hold_the_cases_later_steps_need():
    alpaca = read_records(str(SAMPLES / "alpaca.json"))
    outputs = [r.output for r in alpaca]
    assert "" in outputs
    assert "<No Output>" in outputs
    assert sum(o.startswith("As an AI language model") for o in outputs) >= 2
    pairs = [(r.prompt, r.output) for r in alpaca]
    assert len(set(pairs)) < len(pairs), "an exact duplicate"
    dolly = read_records(str(SAMPLES / "dolly.jsonl"))
    assert {r.category for r in dolly} == DOLLY_CATEGORIES
    assert any("[4]" in r.input for r in dolly), "Wikipedia-style citation markers in a context"
    assert any(r.output == "<No Output>" for r in dolly)


@pytest.mark.parametrize("container", ["dolly.jsonl.gz", "dolly.csv", "dolly.parquet"])
def test_container_versions_hold_the_same_records_as_dolly_jsonl(container):
    assert read_records(str(SAMPLES / container)) == read_records(str(SAMPLES / "dolly.jsonl"))


@pytest.mark.parametrize(
    "name", ["alpaca.json", "dolly.jsonl", "sharegpt.json", "messages.jsonl", "openorca.jsonl", "seed_tasks.jsonl"]
)
def test_same_format_dump_gives_back_every_sample_row(name):
    fmt = get_format(GOOD_SAMPLES[name][0])
    dumped = [fmt.dump(r) for r in read_records(str(SAMPLES / name))]
    assert without_added_ids(dumped, rows_of(name)) == rows_of(name)
    # a row without an id gets one, from the file name and row, and it is written
    assert all(row["id"] == original.get("id", f"{name.split('.')[0]}-{i}") for i, (row, original) in enumerate(zip(dumped, rows_of(name))))


def test_alpaca_variants_give_back_every_row_with_empty_input_markers_normalised():
    fmt = get_format("alpaca")
    expected = []
    for row in rows_of("alpaca_variants.jsonl"):
        if row.get("input", "").strip().lower() in EMPTY_INPUT_MARKERS:
            row = {**row, "input": ""}
        expected.append(row)
    dumped = [fmt.dump(r) for r in read_records(str(SAMPLES / "alpaca_variants.jsonl"))]
    assert without_added_ids(dumped, expected) == expected


# ------------------------------------------------------------------ alpaca


@pytest.mark.parametrize("marker", ["<noinput>", "No input", "<no input>", "noinput", " <NOINPUT> "])
def test_alpaca_empty_input_markers_become_empty(marker):
    record = load("alpaca", {"instruction": "Name a colour.", "input": marker, "output": "Blue."})
    assert record.input == ""
    assert record.prompt == "Name a colour."


def test_alpaca_variants_system_history_and_response_key():
    records = read_records(str(SAMPLES / "alpaca_variants.jsonl"))
    tutor = records[0]
    assert tutor.system == "You are a patient maths tutor. Show your working."
    assert (tutor.instruction, tutor.input) == ("Solve for x.", "3x + 7 = 22")
    assert tutor.prompt == "Solve for x.\n\n3x + 7 = 22"

    poem = records[6]
    assert poem.is_multi_turn and poem.num_exchanges == 3
    assert poem.history == [
        ("Write one sentence about rain in spring.", "Spring rain wakes the garden and fills the puddles on the path."),
        ("Make it shorter.", "Spring rain wakes the garden."),
    ]
    assert [t.role for t in poem.turns] == ["user", "assistant"] * 3
    assert poem.instruction == "Now make it rhyme."

    recursion = records[8]
    assert recursion.output.startswith("Recursion is when a function")
    assert get_format("alpaca").dump(recursion)["response"] == recursion.output
    assert "output" not in get_format("alpaca").dump(recursion)

    templated = records[11]
    assert templated.metadata["extra"]["text"].startswith("Below is an instruction")
    assert get_format("alpaca").dump(templated)["text"] == templated.metadata["extra"]["text"]

    assert records[12].id == "variant-13"
    assert records[13].system == ""  # an empty system prompt is kept, not dropped


def test_alpaca_row_with_both_output_and_response_keeps_both():
    row = {"instruction": "a", "input": "", "output": "b", "response": "c"}
    record = load("alpaca", row)
    assert record.output == "b"
    assert get_format("alpaca").dump(record) == {"id": "test-0", **row}


def test_alpaca_integer_id_becomes_a_string():
    record = load("alpaca", {"id": 7, "instruction": "a", "output": "b"})
    assert record.id == "7"
    assert get_format("alpaca").dump(record)["id"] == "7"


def test_alpaca_without_id_gets_a_generated_id_that_is_written():
    record = load("alpaca", {"instruction": "a", "input": "", "output": "b"})
    assert record.id == "test-0"
    # written, so that every later command and pipe keeps the id of the first source's row
    assert get_format("alpaca").dump(record)["id"] == "test-0"


# ------------------------------------------------------------------ dolly


def test_dolly_context_and_category():
    records = by_id(read_records(str(SAMPLES / "dolly.jsonl")))
    lighthouse = records["dolly-14"]
    assert lighthouse.category == "closed_qa"
    assert lighthouse.instruction == "When was the lighthouse automated?"
    assert lighthouse.input.startswith("The Hollow Point lighthouse")
    assert lighthouse.output == "The lighthouse was automated in 1983."
    assert lighthouse.prompt == f"{lighthouse.instruction}\n\n{lighthouse.input}"
    assert get_format("dolly").dump(lighthouse)["id"] == "dolly-14"


def test_dolly_dump_of_a_record_from_another_format_has_every_dolly_field():
    record = load("alpaca", {"instruction": "Name a colour.", "input": "Think of the sky.", "output": "Blue."})
    assert get_format("dolly").dump(record) == {
        "id": "test-0",
        "instruction": "Name a colour.",
        "context": "Think of the sky.",
        "response": "Blue.",
        "category": "",
    }


# ------------------------------------------------------------------ sharegpt


def test_sharegpt_role_aliases_system_and_extras():
    records = by_id(read_records(str(SAMPLES / "sharegpt.json")))
    for rid in ("sg-006", "sg-007", "sg-008", "sg-020"):  # chatgpt, bing, bard, "Human"/"GPT"
        assert [t.role for t in records[rid].turns] == ["user", "assistant"]
    inline = records["sg-004"]
    assert inline.system == "You are a helpful travel agent. Keep answers under 80 words."
    assert inline.num_exchanges == 2 and inline.turns[0].role == "user"
    assert records["sg-005"].system == "You are a careful assistant who cites uncertainty."
    assert records["sg-009"].metadata["extra"] == {"model": "gpt-4", "lang": "en"}
    assert records["sg-010"].num_exchanges == 3
    assert not records["sg-016"].has_output, "a conversation may end with the user"
    assert records["sg-016"].output == ""


def test_sharegpt_dump_restores_role_spellings_inline_system_and_turn_keys():
    fmt = get_format("sharegpt")
    records = by_id(read_records(str(SAMPLES / "sharegpt.json")))
    assert [m["from"] for m in fmt.dump(records["sg-020"])["conversations"]] == ["Human", "GPT"]
    assert [m["from"] for m in fmt.dump(records["sg-007"])["conversations"]] == ["user", "bing"]
    assert fmt.dump(records["sg-004"])["conversations"][0] == {
        "from": "system",
        "value": "You are a helpful travel agent. Keep answers under 80 words.",
    }
    assert "system" not in fmt.dump(records["sg-004"])
    assert [m.get("markdown") for m in fmt.dump(records["sg-019"])["conversations"]] == [False, True]


def test_sharegpt_from_another_format_uses_canonical_tags_and_top_level_system():
    record = load(
        "alpaca",
        {"system": "Be brief.", "instruction": "Add.", "input": "2 3", "output": "5", "history": [["Hi", "Hello"]]},
    )
    assert get_format("sharegpt").dump(record) == {
        "id": "test-0",
        "system": "Be brief.",
        "conversations": [
            {"from": "human", "value": "Hi"},
            {"from": "gpt", "value": "Hello"},
            {"from": "human", "value": "Add.\n\n2 3"},
            {"from": "gpt", "value": "5"},
        ],
    }


def test_sharegpt_refuses_a_system_prompt_given_twice():
    row = {"system": "A", "conversations": [{"from": "system", "value": "B"}, {"from": "human", "value": "hi"}]}
    with pytest.raises(SchemaError) as info:
        load("sharegpt", row)
    assert info.value.field == "system"


@pytest.mark.parametrize(
    "conversations, field, reason",
    [
        ([{"from": "human", "value": "a"}, {"from": "narrator", "value": "b"}], "conversations[1].from", "unknown role 'narrator'"),
        ([{"from": "gpt", "value": "a"}], "conversations", "starts with a 'assistant' turn"),
        ([{"from": "human", "value": "a"}, {"from": "human", "value": "b"}], "conversations", "must alternate"),
        ([{"from": "human", "value": "a"}, {"from": "system", "value": "b"}], "conversations[1].from", "system turn may only come first"),
        ([{"from": "human", "value": None}], "conversations[0].value", "is missing"),
        ([{"from": "human", "value": 5}], "conversations[0].value", "must be a string, got integer"),
        ([{"value": "a"}], "conversations[0].from", "is missing"),
        (["hello"], "conversations[0]", "must be an object"),
        ([], "conversations", "is empty"),
        ([{"from": "system", "value": "s"}], "conversations", "holds only a system turn"),
    ],
)
def test_sharegpt_problems_are_reported_with_their_field(conversations, field, reason):
    with pytest.raises(SchemaError) as info:
        load("sharegpt", {"id": "x", "conversations": conversations})
    assert info.value.field == field
    assert reason in info.value.reason
    assert "test.jsonl, line 1" in str(info.value)


# ------------------------------------------------------------------ messages


def test_messages_system_multi_turn_and_message_keys():
    fmt = get_format("messages")
    records = read_records(str(SAMPLES / "messages.jsonl"))
    python = records[2]
    assert python.system == "You are an expert Python programmer. Answer concisely."
    assert python.num_exchanges == 2
    assert python.to_messages()[0] == {"role": "system", "content": python.system}
    weighted = records[17]
    assert fmt.dump(weighted)["messages"] == rows_of("messages.jsonl")[17]["messages"]
    assert records[10].id == "msg-011"


def test_messages_from_sharegpt_use_only_system_user_assistant_roles():
    fmt = get_format("messages")
    for record in read_records(str(SAMPLES / "sharegpt.json")):
        roles = [m["role"] for m in fmt.dump(record)["messages"]]
        assert set(roles) <= {"system", "user", "assistant"}
        assert roles[0] in ("system", "user")


def test_messages_system_turn_must_come_first():
    with pytest.raises(SchemaError) as info:
        load("messages", {"messages": [{"role": "user", "content": "a"}, {"role": "system", "content": "b"}]})
    assert info.value.field == "messages[1].role"


# ------------------------------------------------------------------ openorca


def test_openorca_submix_category_and_system_prompt():
    records = by_id(read_records(str(SAMPLES / "openorca.jsonl")))
    assert {r.category for r in records.values()} == {"niv", "t0", "cot", "flan"}
    assert records["niv.103"].system == ""
    assert records["cot.301"].system.startswith("You are an assistant that completes the task faithfully")
    assert records["cot.301"].instruction == "A shop sells pens at 3 for 2 euros. How much do 12 pens cost?"
    assert get_format("openorca").dump(records["cot.301"])["id"] == "cot.301"


def test_openorca_dump_joins_the_input_into_the_question():
    record = load("dolly", {"instruction": "Summarise.", "context": "Long text.", "response": "Short.", "category": "summarization"})
    assert get_format("openorca").dump(record) == {
        "id": "test-0",
        "system_prompt": "",
        "question": "Summarise.\n\nLong text.",
        "response": "Short.",
        "metadata": {"category": "summarization"},  # Dolly's category travels as itkit metadata
    }


# ------------------------------------------------------------------ seed tasks


def test_seed_tasks_instances_name_and_classification():
    fmt = get_format("seed_tasks")
    records = by_id(read_records(str(SAMPLES / "seed_tasks.jsonl")))
    sentiment = records["seed_task_1"]
    assert sentiment.metadata["task_name"] == "sentiment_label"
    assert sentiment.metadata["is_classification"] is True
    assert (sentiment.input, sentiment.output) == ("The train was late again and nobody told us why.", "Negative")
    assert len(sentiment.metadata["instances"]) == 3
    assert fmt.dump(sentiment)["instances"] == rows_of("seed_tasks.jsonl")[1]["instances"]
    assert sum(r.metadata["is_classification"] for r in records.values()) == 7


@pytest.mark.parametrize(
    "row, field",
    [
        ({"id": "s", "instruction": "a", "instances": []}, "instances"),
        ({"id": "s", "instruction": "a", "instances": [{"input": ""}]}, "instances[0].output"),
        ({"id": "s", "instruction": "a", "instances": [{"input": 1, "output": "b"}]}, "instances[0].input"),
        ({"id": "s", "instruction": "a", "instances": ["x"]}, "instances[0]"),
        ({"id": "s", "instruction": "a", "instances": [{"output": "b"}], "is_classification": "maybe"}, "is_classification"),
        ({"id": "s", "instruction": "a", "instances": "b"}, "instances"),
    ],
)
def test_seed_task_problems_name_the_field(row, field):
    with pytest.raises(SchemaError) as info:
        load("seed_tasks", row)
    assert info.value.field == field


# ------------------------------------------------------------------ conversions that would lose data


@pytest.mark.parametrize("target", ["dolly", "openorca", "seed_tasks"])
def test_single_turn_formats_refuse_multi_turn_records(target):
    record = read_records(str(SAMPLES / "sharegpt.json"))[0]
    with pytest.raises(ConversionError) as info:
        get_format(target).dump(record)
    assert info.value.field == "turns"
    assert "2 exchanges" in info.value.reason


@pytest.mark.parametrize("target", ["dolly", "seed_tasks"])
def test_formats_without_a_system_prompt_refuse_one(target):
    record = load("alpaca", {"system": "Be brief.", "instruction": "a", "output": "b"})
    with pytest.raises(ConversionError) as info:
        get_format(target).dump(record)
    assert info.value.field == "system"


@pytest.mark.parametrize("target", ["alpaca", "sharegpt", "messages"])
def test_multi_turn_formats_hold_every_sample_conversation(target):
    fmt = get_format(target)
    for record in read_records(str(SAMPLES / "sharegpt.json")):
        row = fmt.dump(record)
        expected = record.to_messages()
        if target == "alpaca" and not record.has_output:
            # Alpaca always has an output: a conversation ending with the user gets an empty one
            assert row["output"] == ""
            expected.append({"role": "assistant", "content": ""})
        assert fmt.load(row, ctx()).to_messages() == expected


# ------------------------------------------------------------------ the canonical record


def test_record_views_of_a_multi_turn_record():
    record = Record.single_turn(
        "r1", "Add.", "5", input="2 3", system="Be brief.", history=[("Hi", "Hello"), ("Ready?", "Yes")]
    )
    assert record.instruction == "Add."
    assert record.input == "2 3"
    assert record.output == "5"
    assert record.prompt == "Add.\n\n2 3"
    assert record.history == [("Hi", "Hello"), ("Ready?", "Yes")]
    assert record.user_texts() == ["Hi", "Ready?", "Add.\n\n2 3"]
    assert record.assistant_texts() == ["Hello", "Yes", "5"]
    assert record.to_messages()[0] == {"role": "system", "content": "Be brief."}
    assert record.to_messages(include_system=False)[-2] == {"role": "user", "content": "Add.\n\n2 3"}
    rewritten = record.with_output("6").with_provenance({"method": "simplify", "parent_id": "r1"})
    assert rewritten.output == "6" and record.output == "5"
    assert rewritten.provenance == [{"method": "simplify", "parent_id": "r1"}]
    assert record.provenance == []


def test_trusted_construction_builds_what_pydantic_builds():
    """The loaders' fast constructors give the same models as model_construct and as full validation."""
    turns = [Turn.trusted("user", "Hi"), Turn.trusted("assistant", "Hello")]
    fast = Record.trusted("r1", "Be kind.", turns, "ctx", {"category": "open_qa"})
    built = Record.model_construct(
        id="r1",
        system="Be kind.",
        turns=[Turn.model_construct(role="user", content="Hi"), Turn.model_construct(role="assistant", content="Hello")],
        input="ctx",
        metadata={"category": "open_qa"},
    )
    validated = Record.model_validate(built.model_dump())
    assert fast == built == validated
    assert fast.model_dump() == validated.model_dump()
    assert fast.model_dump_json() == validated.model_dump_json()
    assert fast.model_fields_set == validated.model_fields_set
    assert turns[0].model_fields_set == {"role", "content"}
    copy = fast.with_output("Hey").with_provenance({"method": "simplify"})
    assert copy.output == "Hey" and fast.output == "Hello"
    assert Record.model_validate(copy.model_dump()) == copy
    assert fast.model_copy(deep=True) == fast


def test_record_refuses_turns_that_do_not_alternate():
    with pytest.raises(ValueError, match="must alternate"):
        Record(id="x", turns=[Turn(role="user", content="a"), Turn(role="user", content="b")])
    with pytest.raises(ValueError, match="must start with the user"):
        Record(id="x", turns=[Turn(role="assistant", content="a")])


# ------------------------------------------------------------------ detection


@pytest.mark.parametrize(
    "row, expected",
    [
        ({"instruction": "a", "input": "", "output": "b"}, "alpaca"),
        ({"instruction": "a", "response": "b"}, "alpaca"),
        ({"instruction": "a", "context": "", "response": "b", "category": "open_qa"}, "dolly"),
        ({"id": "1", "conversations": [{"from": "human", "value": "a"}]}, "sharegpt"),
        ({"messages": [{"role": "user", "content": "a"}]}, "messages"),
        ({"id": "t0.1", "system_prompt": "", "question": "a", "response": "b"}, "openorca"),
        ({"id": "s", "name": "n", "instruction": "a", "instances": [{"input": "", "output": "b"}], "is_classification": False}, "seed_tasks"),
    ],
)
def test_detect_each_format_from_one_record(row, expected):
    assert detect([(row, Location("f.jsonl", line=1))], "f.jsonl").name == expected
    assert FORMATS[expected].matches(row)


def test_detect_reports_no_match_ambiguity_mixing_and_emptiness():
    loc = lambda n: Location("f.jsonl", line=n)  # noqa: E731
    with pytest.raises(FormatDetectionError, match=r"f.jsonl, line 1: matches no known format \(keys: completion, prompt\)"):
        detect([({"prompt": "a", "completion": "b"}, loc(1))], "f.jsonl")
    both = {"conversations": [], "messages": []}
    with pytest.raises(FormatDetectionError, match="is ambiguous: its records match messages, sharegpt; pass --from"):
        detect([(both, loc(1))], "f.jsonl")
    alpaca = {"instruction": "a", "input": "", "output": "b"}
    dolly = {"instruction": "a", "context": "", "response": "b"}
    with pytest.raises(FormatDetectionError, match="mixes formats .line 1 looks like alpaca, line 2 looks like dolly"):
        detect([(alpaca, loc(1)), (dolly, loc(2))], "f.jsonl")
    with pytest.raises(FormatDetectionError, match="holds no records"):
        detect([], "f.jsonl")


def test_detection_ignores_a_row_missing_fields_and_load_names_the_field(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"instruction": "a", "input": ""}\n{"instruction": "b", "input": "", "output": "c"}\n')
    reader = RecordReader(str(path))
    assert reader.format.name == "alpaca"
    with pytest.raises(SchemaError, match=r"d.jsonl, line 1: field 'output': is missing"):
        list(reader)


def test_forced_format_wins_over_detection(tmp_path):
    path = tmp_path / "both.jsonl"
    path.write_text(json.dumps({"conversations": [{"from": "human", "value": "hi"}], "messages": [{"role": "user", "content": "yo"}]}) + "\n")
    assert read_records(str(path), "sharegpt")[0].instruction == "hi"
    assert read_records(str(path), "messages")[0].instruction == "yo"


def test_unknown_format_name_is_a_usage_error():
    with pytest.raises(UsageError, match="unknown format 'orca'; choose one of: alpaca, dolly"):
        get_format("orca")
