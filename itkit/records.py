"""The canonical record model: every format loads into it and dumps from it.

A :class:`Record` is a conversation: an optional system prompt and an ordered
list of user/assistant turns that alternate and start with the user. The last
user turn may carry an ``input`` (Alpaca's ``input``, Dolly's ``context``)
kept apart from the instruction, so instruction datasets round-trip without
loss. The single-turn view (``instruction``, ``input``, ``output``) and the
``history`` of earlier exchanges are derived from the turns.

``metadata`` holds everything else, under these keys (all optional):

- ``source_format``: the format the record was loaded from (``alpaca``...).
- ``source``: where it came from (file name or ``hf://`` URI), kept when
  several sources are merged.
- ``category``: a task category (Dolly's ``category``, Orca task types).
- ``provenance``: a list of rewrite steps, oldest first, each a dict with
  ``method``, ``operation``, ``round``, ``parent_id``, ``model``,
  ``template`` and ``template_hash`` as they apply.
- ``extra``: top-level fields of the source record that its format does not
  know; restored when dumping to the same format.
- ``layout``: format-specific details needed to give back the exact source
  record (role spellings, where the system prompt stood...), tagged with the
  format name; only used when dumping to that same format.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Role = Literal["user", "assistant"]

INPUT_SEPARATOR = "\n\n"
"""How an instruction and its input are joined when a format or an LLM needs one prompt."""

# metadata keys
META_SOURCE_FORMAT = "source_format"
META_SOURCE = "source"
META_CATEGORY = "category"
META_PROVENANCE = "provenance"
META_EXTRA = "extra"
META_LAYOUT = "layout"


_object_new = object.__new__
_object_setattr = object.__setattr__


def _trusted(cls: type[BaseModel], values: dict[str, Any]) -> Any:
    """What ``cls.model_construct(**values)`` builds, for values that are complete (every field) and already
    checked, without model_construct's per-call overhead: it costs several microseconds and loading makes
    three per record. Relies on pydantic v2's instance layout; tests compare the result with model_construct
    and with full validation."""
    obj = _object_new(cls)
    _object_setattr(obj, "__dict__", values)
    _object_setattr(obj, "__pydantic_fields_set__", set(values))
    _object_setattr(obj, "__pydantic_extra__", None)
    _object_setattr(obj, "__pydantic_private__", None)
    return obj


class Turn(BaseModel):
    """One message of a conversation."""

    model_config = ConfigDict(extra="forbid")

    role: Role
    content: str

    @classmethod
    def trusted(cls, role: str, content: str) -> "Turn":
        """A turn from values the caller has checked (role user/assistant, content a string); no validation."""
        return _trusted(cls, {"role": role, "content": content})


class Record(BaseModel):
    """One training example in canonical form."""

    model_config = ConfigDict(extra="forbid")

    id: str
    system: str | None = None
    turns: list[Turn] = Field(default_factory=list)
    input: str = ""
    metadata: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check_alternation(self) -> "Record":
        problem = alternation_problem([t.role for t in self.turns])
        if problem:
            raise ValueError(problem)
        return self

    # ---- construction -------------------------------------------------
    @classmethod
    def trusted(
        cls, id: str, system: str | None, turns: list[Turn], input: str, metadata: dict[str, Any]
    ) -> "Record":
        """A record from values the caller has checked (alternating turns...); no validation. For loaders."""
        return _trusted(cls, {"id": id, "system": system, "turns": turns, "input": input, "metadata": metadata})

    @classmethod
    def single_turn(
        cls,
        id: str,
        instruction: str,
        output: str | None,
        input: str = "",
        system: str | None = None,
        history: list[tuple[str, str]] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> "Record":
        """Build a record from the instruction view. ``output=None`` leaves the last turn to the user."""
        turn = Turn.trusted
        turns: list[Turn] = []
        for prompt, response in history or ():
            turns.append(turn("user", prompt))
            turns.append(turn("assistant", response))
        turns.append(turn("user", instruction))
        if output is not None:
            turns.append(turn("assistant", output))
        return cls.trusted(id, system, turns, input, metadata or {})

    # ---- the single-turn view -----------------------------------------
    @property
    def last_user_index(self) -> int | None:
        for i in range(len(self.turns) - 1, -1, -1):
            if self.turns[i].role == "user":
                return i
        return None

    @property
    def instruction(self) -> str:
        """The last user turn (without its ``input``)."""
        i = self.last_user_index
        return self.turns[i].content if i is not None else ""

    @property
    def output(self) -> str:
        """The final assistant turn, or "" when the record ends with the user."""
        if self.turns and self.turns[-1].role == "assistant":
            return self.turns[-1].content
        return ""

    @property
    def has_output(self) -> bool:
        return bool(self.turns) and self.turns[-1].role == "assistant"

    @property
    def history(self) -> list[tuple[str, str]]:
        """Earlier (user, assistant) exchanges before the last user turn."""
        end = self.last_user_index or 0
        t = self.turns
        return [(t[i].content, t[i + 1].content) for i in range(0, end - 1, 2)]

    @property
    def num_exchanges(self) -> int:
        return sum(1 for t in self.turns if t.role == "user")

    @property
    def is_multi_turn(self) -> bool:
        return self.num_exchanges > 1

    @property
    def prompt(self) -> str:
        """The last user turn with its input joined, as a model would see it."""
        return join_input(self.instruction, self.input)

    @property
    def category(self) -> str | None:
        value = self.metadata.get(META_CATEGORY)
        return value if isinstance(value, str) and value else None

    @property
    def provenance(self) -> list[dict[str, Any]]:
        steps = self.metadata.get(META_PROVENANCE)
        return [step for step in steps if isinstance(step, dict)] if isinstance(steps, list) else []

    def user_texts(self) -> list[str]:
        """Every user turn, the last one with its input joined."""
        last = self.last_user_index
        return [
            join_input(t.content, self.input) if i == last else t.content
            for i, t in enumerate(self.turns)
            if t.role == "user"
        ]

    def assistant_texts(self) -> list[str]:
        return [t.content for t in self.turns if t.role == "assistant"]

    def to_messages(self, include_system: bool = True) -> list[dict[str, str]]:
        """OpenAI-style messages; the input is joined into the last user turn."""
        out: list[dict[str, str]] = []
        if include_system and self.system:
            out.append({"role": "system", "content": self.system})
        last = self.last_user_index
        for i, t in enumerate(self.turns):
            content = join_input(t.content, self.input) if i == last else t.content
            out.append({"role": t.role, "content": content})
        return out

    # ---- derived copies ------------------------------------------------
    def with_output(self, output: str) -> "Record":
        """A copy whose final assistant turn is ``output`` (appended if the record ends with the user)."""
        turns = list(self.turns)
        if turns and turns[-1].role == "assistant":
            turns[-1] = Turn.trusted("assistant", output)
        else:
            turns.append(Turn.trusted("assistant", output))
        return self.model_copy(update={"turns": turns, "metadata": dict(self.metadata)})

    def with_provenance(self, step: dict[str, Any], **updates: Any) -> "Record":
        """A copy with ``step`` appended to the provenance (and other fields updated)."""
        metadata = dict(updates.pop("metadata", self.metadata))
        metadata[META_PROVENANCE] = [*self.provenance, step]
        return self.model_copy(update={**updates, "metadata": metadata})


def join_input(instruction: str, input: str) -> str:
    if not input:
        return instruction
    if not instruction:
        return input
    return f"{instruction}{INPUT_SEPARATOR}{input}"


def alternation_problem(roles: list[str]) -> str | None:
    """Why a list of user/assistant roles does not alternate starting with the user, or None."""
    expected = "user"
    for i, role in enumerate(roles):
        if role != expected:
            if i == 0:
                return f"the conversation starts with a '{role}' turn; it must start with the user"
            return f"turn {i + 1} is '{role}' after '{roles[i - 1]}'; user and assistant turns must alternate"
        expected = "assistant" if role == "user" else "user"
    return None
