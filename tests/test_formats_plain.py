"""alpaca.plain_row: a plain row's shortcut gives exactly what loading and dumping its record gives."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from itkit.dedup.files import PLAIN_ON
from itkit.dedup.texts import response_length, text_getter
from itkit.errors import Location
from itkit.formats import alpaca
from itkit.formats.base import LoadContext
from itkit.io.sinks import dumps_line
from itkit.records import join_input

TEXT = st.one_of(st.text(max_size=30), st.sampled_from(["", " ", "<noinput>", "No Input", "\u00bfqu\u00e9?", "a\nb"]))
KEYS = st.sampled_from(["id", "instruction", "input", "output", "response", "system", "history", "extra"])
VALUE = st.one_of(TEXT, st.integers(-5, 5), st.booleans(), st.none(), st.just([["p", "r"]]), st.just({"k": 1}))


def loaded(row: dict, default_id: str):
    return alpaca.load(row, LoadContext(Location("f.jsonl", line=1), default_id))


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(
        st.dictionaries(KEYS, VALUE, max_size=6),
        st.fixed_dictionaries(  # mostly plain rows
            {"instruction": TEXT, "output": TEXT},
            optional={"input": TEXT, "id": st.one_of(TEXT, st.integers(-3, 3), st.booleans())},
        ),
    ),
    st.permutations(["instruction", "output", "input", "id"]),
)
def test_plain_row_is_load_then_dump(row, order):
    row = {k: row[k] for k in order if k in row} | {k: v for k, v in row.items() if k not in order}
    found = alpaca.plain_row(row, "f-0")
    if found is None:
        return
    record = loaded(row, "f-0")
    out, instruction, text_input, output = found
    assert out == alpaca.dump(record)
    assert dumps_line(out) == dumps_line(alpaca.dump(record))  # the same keys in the same order
    for on in PLAIN_ON:
        assert text_getter(on)(record) == join_input(instruction, text_input)
    assert response_length(record) == len(output)


def test_plain_and_not_plain_rows():
    assert alpaca.plain_row({"instruction": "a", "output": "b"}, "f-3")[0] == {"id": "f-3", "instruction": "a", "output": "b"}
    assert alpaca.plain_row({"output": "b", "id": 7, "input": "", "instruction": "a"}, "f-3")[0] == {
        "id": "7", "instruction": "a", "input": "", "output": "b",
    }
    for row in [
        {"instruction": "a", "output": "b", "input": "<noinput>"},  # the marker is normalised away
        {"instruction": "a", "output": "b", "input": None},
        {"instruction": "a", "output": "b", "id": True},
        {"instruction": "a", "output": "b", "system": "s"},
        {"instruction": "a", "response": "b"},
        {"instruction": "a", "output": "b", "extra": 1},
    ]:
        assert alpaca.plain_row(row, "f-0") is None, row
