"""The Evol-Instruct round driver: evolve, eliminate, answer, for M rounds.

Each input record starts a *lineage* whose pool member is the record itself.
In round k (1..M) the member gets one operation (seeded, see
:func:`~itkit.methods.evol_instruct.operations.choose_operation`) and:

1. the model rewrites it with the operation's template (the member's prompt:
   its instruction with the input joined);
2. rule 4 (copied markers) and rule 1 for an exact copy are checked for free;
3. the model judges the rewrite against its parent ("Equal" fails: rule 1);
4. the model answers the rewrite (the record's system prompt, if any, first);
5. rules 2 and 3 are checked on that response.

A rewrite that passes becomes the lineage's new member, with the id
``<input id>-evol-r<k>`` and a provenance step (method, operation, round,
parent id, model, templates). A rewrite that fails leaves the parent in the
pool for the next round. Checks run in this order so that a rewrite failing
a free check costs no further request; the summary counts each failed
evolution under the first rule it broke.

A request that still fails after the engine's retries (unparseable, empty,
cut off, server errors) is not an elimination, but it leaves the pool the same
way: the parent stays and goes on to the next round, and the failure (stage,
reason, raw response) goes to the failures file. The record is written like any
other. Lineages are independent, so they run concurrently and their results do
not depend on completion order.

In a dry run nothing is sent: each request is recorded for the estimate and
the lineage goes on as if the rewrite survived, with a stand-in about
:data:`EXPECTED_ADDED_WORDS` words longer than its parent, so every round is
counted.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

from itkit.formats.base import META_ID_GENERATED
from itkit.llm.base import ChatResponse, RecordFailure, Sampling
from itkit.llm.errors import DryRunRequest
from itkit.methods.evol_instruct.elimination import NO_INFORMATION_GAIN, RULES, EliminationRules
from itkit.methods.evol_instruct.operations import (
    METHOD,
    OPERATION_NAMES,
    OPERATIONS,
    EvolPrompts,
    choose_operation,
    sampling_of,
)
from itkit.methods.evol_instruct.parsing import parse_equality, read_rewrite
from itkit.records import META_EXTRA, META_PROVENANCE, Record

DEFAULT_ROUNDS = 1
"""One round, as the released WizardLM code runs; the paper runs 4 (``--rounds 4 --keep all``)."""
ID_SUFFIX = "-evol-r{round}"
EXPECTED_ADDED_WORDS = 20
"""Dry run: how much longer a rewrite is assumed to be (the prompts ask for 10 to 20 more words)."""
EQUALITY_EXPECTED_TOKENS = 3
"""Dry run: the length of an "Equal" / "Not Equal" answer."""
TOKENS_PER_WORD = 1.4
"""Dry run: a rough token count per English word."""

Keep = Literal["final", "all"]
Status = Literal["survived", "eliminated", "failed", "planned"]
STAGES = ("evolve", "equality", "response")


@dataclass(frozen=True)
class EvolConfig:
    rounds: int = DEFAULT_ROUNDS
    ops: tuple[str, ...] = OPERATION_NAMES
    seed: int = 0
    """Chooses the operations (with the record id and the round); not sent to the model."""
    rules: EliminationRules = field(default_factory=EliminationRules)
    model: str = ""
    """Recorded in provenance."""
    sampling: Sampling | None = None
    """The user's sampling for the rewrite and response requests (over the templates'); never for the equality check."""
    salvage_labels: bool = False
    """Strip a label ("#Rewritten Prompt#:"), a preamble or quotes from a reply before rule 4 (not the paper's way)."""

    def __post_init__(self) -> None:
        if self.rounds < 1:
            raise ValueError("rounds must be at least 1")
        unknown = [op for op in self.ops if op not in OPERATIONS]
        if unknown or not self.ops:
            raise ValueError(f"unknown or no operations: {unknown}")


@dataclass
class Attempt:
    """One evolution try of one lineage in one round."""

    round: int
    operation: str
    parent_id: str
    status: Status
    rule: str | None = None
    detail: str = ""
    instruction: str | None = None
    response: str | None = None
    stage: str | None = None
    """For a failed attempt: the request that failed (evolve, equality, response)."""
    raw: str = ""
    salvaged: bool = False
    """``--salvage-labels`` stripped a label, preamble or quotes from the reply."""

    def as_dict(self) -> dict[str, Any]:
        row: dict[str, Any] = {
            "round": self.round,
            "operation": self.operation,
            "parent_id": self.parent_id,
            "status": self.status,
        }
        for key in ("rule", "stage", "instruction", "response"):
            value = getattr(self, key)
            if value is not None:
                row[key] = value
        if self.detail:
            row["detail"] = self.detail
        if self.salvaged:
            row["salvaged_label"] = True
        return row


@dataclass
class Lineage:
    """An input record and what became of it, round by round."""

    source: Record
    members: list[Record] = field(default_factory=list)
    """The source, then each surviving evolution in round order."""
    attempts: list[Attempt] = field(default_factory=list)
    skipped: str | None = None
    """Why the record was not evolved at all (multi-turn, empty prompt)."""

    def __post_init__(self) -> None:
        if not self.members:
            self.members = [self.source]

    @property
    def current(self) -> Record:
        return self.members[-1]

    @property
    def failures(self) -> list[Attempt]:
        """The attempts whose request failed (the parent stayed in the pool each time)."""
        return [a for a in self.attempts if a.status == "failed"]

    @property
    def evolved(self) -> bool:
        return len(self.members) > 1

    def kept(self, keep: Keep, only_evolved: bool = False) -> list[Record]:
        """The records this lineage contributes to the output.

        ``final``: the pool member after the last round (the source when every
        evolution was eliminated or its request failed), nothing for a skipped
        record. ``all``: the source and every surviving evolution, round by
        round. ``only_evolved`` leaves the source out.
        """
        if self.skipped is not None:
            return []
        if keep == "final":
            members = [self.current]
        else:
            members = list(self.members)
        if only_evolved:
            members = [m for m in members if m is not self.source]
        return members


SKIP_MULTI_TURN = "multi-turn conversation"
SKIP_EMPTY = "empty instruction"
SKIP_TOOLS = "uses tools"


def skip_reason(record: Record) -> str | None:
    """Why a record cannot be evolved, or None. Evol-Instruct evolves single instructions."""
    if record.is_multi_turn:
        return (
            f"{SKIP_MULTI_TURN} ({record.num_exchanges} user turns): evol-instruct evolves single "
            "instructions; split the conversation into exchanges or keep its first one before evolving"
        )
    if record.uses_tools:
        return (
            f"{SKIP_TOOLS} (tool calls, results or schemas): an evolved instruction would not match the record's "
            "tool calls, so it is kept as it is"
        )
    if not record.prompt.strip():
        return f"{SKIP_EMPTY}: nothing to evolve"
    return None


def skip_kind(reason: str) -> str:
    """The summary's key for a skip reason."""
    for kind in (SKIP_MULTI_TURN, SKIP_TOOLS):
        if reason.startswith(kind):
            return kind
    return SKIP_EMPTY


def child_id(root_id: str, round: int) -> str:
    return f"{root_id}{ID_SUFFIX.format(round=round)}"


def dry_run_stand_in(parent_prompt: str, round: int, added_words: int = EXPECTED_ADDED_WORDS) -> str:
    """Dry run: a stand-in for the round's rewrite, about ``added_words`` words longer than its parent."""
    note = f"[dry run: stands for the round {round} rewrite, about {added_words} words longer than this text]"
    return f"{note} {parent_prompt}"


class Evolver:
    """Runs the rounds of one lineage at a time through an engine (``itkit.llm.engine.Engine``)."""

    def __init__(self, engine: Any, prompts: EvolPrompts, config: EvolConfig):
        self.engine = engine
        self.prompts = prompts
        self.config = config
        self.dry_run = bool(getattr(getattr(engine, "settings", None), "dry_run", False))
        self._equality_sampling = sampling_of(prompts.equality)
        self._response_sampling = _over(sampling_of(prompts.response), config.sampling)
        self._op_sampling = {op: _over(sampling_of(t), config.sampling) for op, t in prompts.operations.items()}

    # ---- one lineage ---------------------------------------------------------
    async def evolve(self, record: Record) -> Lineage:
        """All rounds of one input record; never raises RecordFailure (failures are recorded)."""
        lineage = Lineage(record)
        rounds = self.config.rounds
        lineage.skipped = skip_reason(record)
        if lineage.skipped is not None:
            self._advance(rounds)
            return lineage
        for k in range(1, rounds + 1):
            attempt, child = await self.step(lineage.current, record.id, k)
            lineage.attempts.append(attempt)
            self._advance(1)
            if child is not None:
                lineage.members.append(child)
        return lineage

    def _advance(self, n: int) -> None:
        advance = getattr(self.engine, "advance", None)
        if n and advance is not None:
            advance(n)

    # ---- one round -------------------------------------------------------------
    async def step(self, parent: Record, root_id: str, round: int) -> tuple[Attempt, Record | None]:
        """Evolve ``parent`` once: the attempt, and the new record when it survived."""
        op = choose_operation(self.config.ops, self.config.seed, root_id, round)
        attempt = Attempt(round=round, operation=op, parent_id=parent.id, status="survived")
        prompts = self.prompts
        rules = self.config.rules
        planned = False
        parent_prompt = parent.prompt

        # 1. the rewrite
        template = prompts.operations[op]
        headers = prompts.answer_headers(op)
        salvage = self.config.salvage_labels
        try:
            evolved, attempt.salvaged = await self.engine.complete(
                prompts.evolution_messages(op, parent_prompt),
                template=template.ref,
                sampling=self._op_sampling[op],
                parse=lambda r: read_rewrite(r.text, headers, salvage),
                # a parent kept after a failed round is evolved afresh, not answered from the cache
                variant=round - 1,
                **self._expect(lambda: self._count(parent_prompt) + int(EXPECTED_ADDED_WORDS * TOKENS_PER_WORD)),
            )
        except DryRunRequest:
            planned, evolved = True, dry_run_stand_in(parent_prompt, round)
            attempt.salvaged = False
        except RecordFailure as failure:
            return _failed(attempt, "evolve", failure), None
        attempt.instruction = evolved

        # 2. free checks: rule 4, rule 1 for an exact copy
        if not planned:
            broken = rules.instruction_rule(parent_prompt, evolved, prompts.markers(op))
            if broken is not None:
                return _eliminated(attempt, *broken), None

        # 3. rule 1: the model's equality judgement
        try:
            equal = await self.engine.complete(
                prompts.equality_messages(parent_prompt, evolved),
                template=prompts.equality.ref,
                sampling=self._equality_sampling,
                parse=_parse_equality,
                **self._expect(lambda: EQUALITY_EXPECTED_TOKENS),
            )
        except DryRunRequest:
            planned, equal = True, False
        except RecordFailure as failure:
            return _failed(attempt, "equality", failure), None
        if equal:
            return _eliminated(attempt, NO_INFORMATION_GAIN, "the model judged it equal to its parent"), None

        # 4. the response, 5. rules 2 and 3
        response: str | None
        try:
            answer = await self.engine.complete(
                prompts.response_messages(evolved, parent.system),
                template=prompts.response.ref,
                sampling=self._response_sampling,
                **self._expect(lambda: self._count(parent.output) if parent.output else None),
            )
            response = answer.text.strip()
        except DryRunRequest:
            planned, response = True, None
        except RecordFailure as failure:
            return _failed(attempt, "response", failure), None
        attempt.response = response
        if response is not None:
            broken = rules.response_rule(response)
            if broken is not None:
                return _eliminated(attempt, *broken), None

        if planned:
            attempt.status = "planned"
        # a dry run's stand-in answer is the parent's, so later rounds estimate responses of that length
        return attempt, self.child(
            parent, root_id, round, op, evolved, parent.output if response is None else response, attempt.salvaged
        )

    def child(
        self, parent: Record, root_id: str, round: int, op: str, instruction: str, response: str, salvaged: bool = False
    ) -> Record:
        """The record of a surviving rewrite, with its provenance step."""
        template = self.prompts.operations[op]
        step = {
            "method": METHOD,
            "operation": op,
            "evolution": OPERATIONS[op].evolution,
            "round": round,
            "parent_id": parent.id,
            "model": self.config.model,
            "template": template.ref,
            "template_hash": template.hash,
            "equality_template": self.prompts.equality.ref,
            "response_template": self.prompts.response.ref,
        }
        if salvaged:
            step["salvaged_label"] = True
        metadata = {
            k: v for k, v in parent.metadata.items() if k not in (META_EXTRA, META_PROVENANCE, META_ID_GENERATED)
        }
        metadata[META_PROVENANCE] = [*parent.provenance, step]
        return Record.single_turn(
            child_id(root_id, round), instruction, response, system=parent.system, metadata=metadata
        )

    # ---- dry-run estimates -------------------------------------------------------
    def _expect(self, guess) -> dict[str, Any]:  # noqa: ANN001 - a thunk
        """``expected_tokens`` for the dry-run estimate (computed only in a dry run: it needs tiktoken)."""
        if not self.dry_run:
            return {}
        value = guess()
        return {} if value is None else {"expected_tokens": value}

    def _count(self, text: str) -> int:
        return self.engine.counter.count(text)


def _parse_equality(response: ChatResponse) -> bool:
    return parse_equality(response.text)


def _over(base: Sampling | None, user: Sampling | None) -> Sampling | None:
    if base is None:
        return user
    return base.merged(user)


def _failed(attempt: Attempt, stage: str, failure: RecordFailure) -> Attempt:
    attempt.status = "failed"
    attempt.stage = stage
    attempt.detail = failure.reason
    attempt.raw = failure.raw
    return attempt


def _eliminated(attempt: Attempt, rule: str, detail: str) -> Attempt:
    attempt.status = "eliminated"
    attempt.rule = rule
    attempt.detail = detail
    return attempt


# ---- the whole run -------------------------------------------------------------
@dataclass
class EvolResult:
    lineages: list[Lineage]
    config: EvolConfig

    def records(self, keep: Keep = "final", only_evolved: bool = False) -> list[Record]:
        """The output records, lineage by lineage in input order."""
        return [r for lineage in self.lineages for r in lineage.kept(keep, only_evolved)]

    def counts(self) -> dict[str, Any]:
        """Per record, per round, per rule and per operation: what happened."""
        ops = self.config.ops
        records = Counter(evolved=0, unchanged=0, skipped=0, failed=0)
        skipped: Counter = Counter()
        attempts = Counter(attempted=0, survived=0, eliminated=0, failed=0, planned=0, salvaged_labels=0)
        by_rule = Counter({rule: 0 for rule in RULES})
        by_op: dict[str, dict[str, Any]] = {
            op: {"attempted": 0, "survived": 0, "eliminated": 0, "failed": 0, "by_rule": {r: 0 for r in RULES}}
            for op in ops
        }
        by_round = [
            {"round": k, "attempted": 0, "survived": 0, "eliminated": 0, "failed": 0}
            for k in range(1, self.config.rounds + 1)
        ]
        failed_stages = Counter({stage: 0 for stage in STAGES})
        for lineage in self.lineages:
            if lineage.skipped is not None:
                records["skipped"] += 1
                skipped[skip_kind(lineage.skipped)] += 1
                continue
            if lineage.failures:
                records["failed"] += 1  # also counted as evolved or unchanged: the record is written
            if lineage.evolved:
                records["evolved"] += 1
            else:
                records["unchanged"] += 1
            for a in lineage.attempts:
                attempts["attempted"] += 1
                attempts[a.status] += 1
                attempts["salvaged_labels"] += a.salvaged
                op = by_op[a.operation]
                op["attempted"] += 1
                rnd = by_round[a.round - 1]
                rnd["attempted"] += 1
                if a.status == "planned":
                    continue
                op[a.status] += 1
                rnd[a.status] += 1
                if a.status == "eliminated":
                    by_rule[a.rule] += 1
                    op["by_rule"][a.rule] += 1
                elif a.status == "failed":
                    failed_stages[a.stage] += 1
        out: dict[str, Any] = {
            "records": {"read": len(self.lineages), **records},
            "evolutions": dict(attempts),
            "eliminated_by_rule": dict(by_rule),
            "failed_by_stage": dict(failed_stages),
            "by_operation": by_op,
            "by_round": by_round,
        }
        if skipped:
            out["skipped_reasons"] = dict(skipped)
        if not attempts["planned"]:
            del out["evolutions"]["planned"]
        if not self.config.salvage_labels:
            del out["evolutions"]["salvaged_labels"]
        return out


async def evolve_records(engine: Any, records: list[Record], prompts: EvolPrompts, config: EvolConfig) -> EvolResult:
    """Every lineage, concurrently through ``engine.amap``; results in input order."""
    evolver = Evolver(engine, prompts, config)
    outcomes = await engine.amap(records, evolver.evolve, advance=False)
    lineages = []
    for outcome in outcomes:
        if outcome.value is None:  # the worker records every failure itself; this cannot happen
            raise RuntimeError(f"evol-instruct: no result for record '{outcome.item.id}'")
        lineages.append(outcome.value)
    return EvolResult(lineages, config)


def run_evolution(engine: Any, records: list[Record], prompts: EvolPrompts, config: EvolConfig) -> EvolResult:
    """Synchronous entry with the engine's progress bar (one step per record and round)."""
    total = len(records) * config.rounds
    description = f"evol-instruct ({config.rounds} round{'s' if config.rounds != 1 else ''})"
    return engine.execute(lambda: evolve_records(engine, records, prompts, config), total=total, description=description)
