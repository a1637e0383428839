"""The canonical record model: every format loads into it and dumps from it.

A :class:`Record` is a conversation: an optional system prompt and an ordered
list of user/assistant turns that alternate and start with the user. The last
user turn may carry an ``input`` (Alpaca's ``input``, Dolly's ``context``)
kept apart from the instruction, so instruction datasets round-trip without
loss. The single-turn view (``instruction``, ``input``, ``output``) and the
``history`` of earlier exchanges are derived from the turns.

Tool use (function calling), in OpenAI's shape: an assistant turn may carry
``tool_calls`` (``[{"id", "type": "function", "function": {"name",
"arguments"}}]``, with or without text); it is followed by one ``tool`` turn
per call (``tool_call_id`` names the call it answers), then by the assistant
again. The record's ``tools`` holds the function schemas offered to the model
(``[{"type": "function", "function": {"name", "description", "parameters"}}]``).
An assistant turn may carry a training ``weight``: 0 (not trained on) or 1.

``metadata`` holds everything else, under these keys (all optional):

- ``source_format``: the format the record was loaded from (``alpaca``...).
- ``source``: where it came from (file name or ``hf://`` URI), kept when
  several sources are merged.
- ``category``: a task category (Dolly's ``category``, Orca task types).
- ``provenance``: a list of rewrite steps, oldest first, each a dict with
  ``method``, ``operation``, ``round``, ``parent_id``, ``model``,
  ``template`` and ``template_hash`` as they apply.
- ``scores``: judge scores by scorer name, each a float (``{"quality": 4.5, "complexity": 2.0}``),
  written by ``itkit score`` (:mod:`itkit.methods.score`), read by ``filter --min-score`` and
  ``export --lft-select``; a re-score replaces the value of its name.
- ``score_reasons``: the judge's one-line reason by scorer name, when it gave one. Which model and
  prompt gave each score is in ``provenance`` (a step with ``method: "score"``, ``scorer``,
  ``score``, ``model``, ``template``, ``template_hash``).
- ``extra``: top-level fields of the source record that its format does not
  know; restored when dumping to the same format.
- ``scores``: judge scores by scorer name (``{"quality": 4.5, "complexity": 3.0}``, floats), written
  by ``itkit score`` and read by ``itkit export --lft-select quality|deita``.
- ``layout``: format-specific details needed to give back the exact source
  record (role spellings, where the system prompt stood...), tagged with the
  format name; only used when dumping to that same format.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Role = Literal["user", "assistant", "tool"]

INPUT_SEPARATOR = "\n\n"
"""How an instruction and its input are joined when a format or an LLM needs one prompt."""

# metadata keys
META_SOURCE_FORMAT = "source_format"
META_SOURCE = "source"
META_CATEGORY = "category"
META_PROVENANCE = "provenance"
META_EXTRA = "extra"
META_SCORES = "scores"
"""Judge scores by scorer name (floats)."""
META_SCORE_REASONS = "score_reasons"
"""The judges' one-line reasons by scorer name."""
META_LAYOUT = "layout"


_object_new = object.__new__
_object_setattr = object.__setattr__


def _trusted(cls: type[BaseModel], values: dict[str, Any], fields_set: set[str] | None = None) -> Any:
    """What ``cls.model_construct(**values)`` builds, for values that are complete (every field) and already
    checked, without model_construct's per-call overhead: it costs several microseconds and loading makes
    three per record. Relies on pydantic v2's instance layout; tests compare the result with model_construct
    and with full validation."""
    obj = _object_new(cls)
    _object_setattr(obj, "__dict__", values)
    _object_setattr(obj, "__pydantic_fields_set__", set(values) if fields_set is None else fields_set)
    _object_setattr(obj, "__pydantic_extra__", None)
    _object_setattr(obj, "__pydantic_private__", None)
    return obj


_TURN_REQUIRED = frozenset({"role", "content"})


class Turn(BaseModel):
    """One message of a conversation."""

    model_config = ConfigDict(extra="forbid")

    role: Role
    content: str
    tool_calls: list[dict[str, Any]] | None = None
    """Assistant turns only: the calls the model makes, OpenAI shape (``arguments`` a JSON string)."""
    tool_call_id: str | None = None
    """Tool turns only: the id of the call this result answers."""
    weight: Literal[0, 1] | None = None
    """Assistant turns only: 0 keeps the turn as context without training on it; None or 1 trains on it."""

    @model_validator(mode="after")
    def _check_fields(self) -> "Turn":
        problem = turn_problem(self.role, self.tool_calls, self.tool_call_id, self.weight)
        if problem:
            raise ValueError(problem)
        return self

    @classmethod
    def trusted(
        cls,
        role: str,
        content: str,
        tool_calls: list[dict[str, Any]] | None = None,
        tool_call_id: str | None = None,
        weight: int | None = None,
    ) -> "Turn":
        """A turn from values the caller has checked (role user/assistant/tool, content a string); no validation."""
        values = {"role": role, "content": content, "tool_calls": tool_calls, "tool_call_id": tool_call_id, "weight": weight}
        return _trusted(cls, values, {k for k, v in values.items() if v is not None or k in _TURN_REQUIRED})

    @property
    def calls_tools(self) -> bool:
        return bool(self.tool_calls)

    @property
    def text_with_calls(self) -> str:
        """The content, then each tool call as ``name(arguments)`` on its own line (what dedup compares)."""
        calls = [f"{c['function']['name']}({c['function']['arguments']})" for c in self.tool_calls or ()]
        return "\n".join([self.content, *calls]) if calls else self.content

    @property
    def trained(self) -> bool:
        """An assistant turn the model is trained on (weight not 0)."""
        return self.role == "assistant" and self.weight != 0

    def replace(self, **updates: Any) -> "Turn":
        """A copy with some fields changed (no validation)."""
        values = dict(self.__dict__)
        values.update(updates)
        return _trusted(Turn, values, {k for k, v in values.items() if v is not None or k in _TURN_REQUIRED})


class Record(BaseModel):
    """One training example in canonical form."""

    model_config = ConfigDict(extra="forbid")

    id: str
    system: str | None = None
    turns: list[Turn] = Field(default_factory=list)
    input: str = ""
    tools: list[dict[str, Any]] | None = None
    """The tool (function) schemas offered to the model, OpenAI shape; None when the record offers none."""
    metadata: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check_alternation(self) -> "Record":
        problem = conversation_problem(self.turns)
        if problem:
            raise ValueError(problem)
        return self

    # ---- construction -------------------------------------------------
    @classmethod
    def trusted(
        cls,
        id: str,
        system: str | None,
        turns: list[Turn],
        input: str,
        metadata: dict[str, Any],
        tools: list[dict[str, Any]] | None = None,
    ) -> "Record":
        """A record from values the caller has checked (alternating turns...); no validation. For loaders."""
        return _trusted(
            cls, {"id": id, "system": system, "turns": turns, "input": input, "tools": tools, "metadata": metadata}
        )

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
        if not self.uses_tools:
            return [(t[i].content, t[i + 1].content) for i in range(0, end - 1, 2)]
        pairs: list[tuple[str, str]] = []
        for i in range(end):
            if t[i].role == "user":
                pairs.append((t[i].content, ""))
            elif t[i].role == "assistant" and pairs:
                pairs[-1] = (pairs[-1][0], t[i].content)
        return pairs

    @property
    def uses_tools(self) -> bool:
        """The record offers tools, or a turn calls one or returns a result."""
        return bool(self.tools) or any(t.role == "tool" or t.tool_calls for t in self.turns)

    @property
    def has_weights(self) -> bool:
        """Some assistant turn carries a training weight."""
        return any(t.weight is not None for t in self.turns)

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
        """The text of every assistant turn (tool calls are not text)."""
        return [t.content for t in self.turns if t.role == "assistant"]

    def to_messages(self, include_system: bool = True) -> list[dict[str, Any]]:
        """OpenAI-style messages; the input is joined into the last user turn.

        Plain turns are exactly ``{role, content}``; an assistant turn that calls
        tools adds ``tool_calls``, a tool result adds ``tool_call_id`` (when known).
        Training weights are not part of the messages (see :attr:`Turn.weight`).
        """
        out: list[dict[str, Any]] = []
        if include_system and self.system:
            out.append({"role": "system", "content": self.system})
        last = self.last_user_index
        for i, t in enumerate(self.turns):
            content = join_input(t.content, self.input) if i == last else t.content
            message: dict[str, Any] = {"role": t.role, "content": content}
            if t.tool_calls:
                message["tool_calls"] = [dict(call) for call in t.tool_calls]
            if t.tool_call_id is not None:
                message["tool_call_id"] = t.tool_call_id
            out.append(message)
        return out

    # ---- derived copies ------------------------------------------------
    def with_output(self, output: str) -> "Record":
        """A copy whose final assistant turn is ``output`` (appended if the record ends with the user)."""
        turns = list(self.turns)
        if turns and turns[-1].role == "assistant":
            turns[-1] = turns[-1].replace(content=output)
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


def turn_problem(role: str, tool_calls: Any, tool_call_id: Any, weight: Any) -> str | None:
    """Why a turn's tool-call and weight fields do not fit its role, or None."""
    if tool_calls is not None and role != "assistant":
        return f"a '{role}' turn has tool_calls; only assistant turns call tools"
    if tool_calls is not None:
        problem = tool_calls_problem(tool_calls)
        if problem:
            return problem
    if tool_call_id is not None and role != "tool":
        return f"a '{role}' turn has a tool_call_id; only tool turns answer a call"
    if weight is not None:
        if role != "assistant":
            return f"a '{role}' turn has a weight; only assistant turns are weighted"
        if isinstance(weight, bool) or weight not in (0, 1):
            return f"weight must be 0 or 1, got {weight!r}"
    return None


def tool_calls_problem(calls: Any) -> str | None:
    """Why a value is not a list of OpenAI tool calls, or None."""
    if not isinstance(calls, list) or not calls:
        return "tool_calls must be a non-empty list of calls"
    for i, call in enumerate(calls):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str) or not function["name"]:
            return f"tool_calls[{i}] must be {{\"type\": \"function\", \"function\": {{\"name\", \"arguments\"}}}}"
        if not isinstance(function.get("arguments"), str):
            return f"tool_calls[{i}].function.arguments must be a JSON string"
    return None


def conversation_problem(turns: list[Turn]) -> str | None:
    """Why turns do not form a conversation, or None.

    Without tools: user and assistant alternate, starting with the user. With
    tools: an assistant turn that calls tools is followed by its tool results
    (one or more ``tool`` turns), and those by the assistant again.
    """
    if not any(t.role == "tool" or t.tool_calls for t in turns):
        return alternation_problem([t.role for t in turns])
    previous: Turn | None = None
    for i, turn in enumerate(turns):
        if previous is None:
            if turn.role != "user":
                return f"the conversation starts with a '{turn.role}' turn; it must start with the user"
        elif previous.role == "assistant" and previous.tool_calls:
            if turn.role != "tool":
                return f"turn {i + 1} is '{turn.role}' after an assistant turn that calls tools; the tool results must follow"
        elif turn.role == "tool":
            if previous.role != "tool":
                return f"turn {i + 1} is a tool result after '{previous.role}'; it must follow an assistant turn that calls tools"
        elif previous.role in ("user", "tool"):
            if turn.role != "assistant":
                return f"turn {i + 1} is '{turn.role}' after '{previous.role}'; the assistant must answer"
        elif turn.role != "user":  # previous: an assistant turn without calls
            return f"turn {i + 1} is '{turn.role}' after 'assistant'; user and assistant turns must alternate"
        previous = turn
    return None


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
