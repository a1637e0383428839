"""The Self-Instruct driver: generation prompts in rounds, filters in submission order, then instances.

One run (:class:`SelfInstructGenerator`):

1. :meth:`~SelfInstructGenerator.generate_instructions`: round after round, build
   ``batch_size`` prompts from the state at the start of the round (demos sampled
   with a seeded ``random.Random``), send them concurrently, then take their
   candidates **in submission order**: parse, the four text filters, the ROUGE-L
   novelty filter against the seeds and every kept instruction. Stops as soon as
   ``num`` instructions are kept (the rest of that round is counted as unused), when
   the prompt budget is spent, or after ``failed_rounds_to_stop`` rounds in which
   every prompt failed.
2. :meth:`~SelfInstructGenerator.generate_instances` (Self-Instruct style): for each
   kept instruction, the Yes/No classification question, then output-first (classification)
   or input-first instance generation, then the cleaning rules.
3. :meth:`~SelfInstructGenerator.records`: canonical records with provenance.

Every request goes through the engine (cache, retries, accounting). Each generation
prompt has its own cache entry (``variant`` = its index), so two prompts that happen
to be identical still get their own sample, and a re-run with the same cache and
seed gives byte-identical output.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from itkit.dedup.rouge import RougeNoveltyFilter
from itkit.errors import UsageError
from itkit.llm.base import ChatResponse, RecordFailure, ResponseRejected
from itkit.llm.engine import Engine
from itkit.llm.errors import DryRunRequest
from itkit.llm.report import FailedRecord
from itkit.methods.self_instruct.filters import FILTER_NAMES, ROUGE_L, FilterConfig, TextFilters
from itkit.methods.self_instruct.finetune import PARTS as PREPARE_PARTS
from itkit.methods.self_instruct.instances import (
    MAX_INSTANCES,
    CleanResult,
    Instance,
    clean_instances,
    parse_classification_instances,
    parse_generation_instances,
)
from itkit.methods.self_instruct.parse import (
    CUT_OFF,
    MAX_NEW_PER_PROMPT,
    REJECT_REASONS,
    normalise_instruction,
    parse_alpaca_tasks,
    parse_instruction_list,
    parse_yes_no,
    UNCLEAR,
    YES,
)
from itkit.methods.self_instruct.prompts import AlpacaDemo, Prompt, SelfInstructPrompts
from itkit.methods.self_instruct.seeds import Seed, SeedSet
from itkit.records import META_PROVENANCE, Record

METHOD = "self-instruct"
"""The method's name in provenance."""
STYLE_SELF_INSTRUCT = "self-instruct"
STYLE_ALPACA = "alpaca"
STYLES = (STYLE_SELF_INSTRUCT, STYLE_ALPACA)

DEFAULT_SEED = 42
"""The seed of the demo sampling when --seed is not given."""
BATCH_SIZE = 8
"""Generation prompts per round (sent concurrently; the machine pool grows between rounds)."""
SELF_INSTRUCT_DEMOS = 8
"""Demo instructions per Self-Instruct prompt (machine-generated ones included)."""
MACHINE_DEMOS = 2
"""Of which at most this many come from the kept (machine-generated) pool."""
ALPACA_DEMOS = 3
"""Seed demos per Alpaca prompt (no machine demos)."""
ALPACA_TASKS = 20
"""The length of the list an Alpaca prompt asks for (its stop is at this number)."""
EXPECTED_KEPT_PER_PROMPT = {STYLE_SELF_INSTRUCT: 2.0, STYLE_ALPACA: 8.0}
"""A guess of instructions kept per prompt: sizes the first round and the dry-run estimate."""
MIN_KEPT_PER_PROMPT = 0.25
"""The default prompt budget allows this low a yield: ceil(num / 0.25) prompts (plus one round)."""
FAILED_ROUNDS_TO_STOP = 3
"""Stop after this many rounds in a row in which every prompt failed (the endpoint answers garbage)."""
EXPECTED_COMPLETION_TOKENS = {"instructions": 160, "alpaca": 2000, "is_classification": 1, "instances": 250}
"""Completion lengths assumed by the dry-run estimate."""
DRY_RUN_RENDERED = 200
"""A dry run renders and counts at most this many prompts of each kind, then extrapolates."""

# why generation stopped
STOP_REACHED = "reached --num"
STOP_BUDGET = "prompt budget spent"
STOP_FAILING = "every prompt failed"

# failure stages
STAGE_GENERATION = "instruction generation"
STAGE_CLASSIFICATION = "classification"
STAGE_INSTANCES = "instance generation"


@dataclass(frozen=True)
class SelfInstructConfig:
    """The tunable knobs of a run (defaults: the original method's)."""

    num: int
    style: str = STYLE_SELF_INSTRUCT
    seed: int = DEFAULT_SEED
    batch_size: int = BATCH_SIZE
    num_demos: int | None = None
    """Demos per prompt; None: 8 (Self-Instruct) or 3 (Alpaca)."""
    machine_demos: int = MACHINE_DEMOS
    num_tasks: int = ALPACA_TASKS
    max_new: int = MAX_NEW_PER_PROMPT
    instances: bool = True
    """Self-Instruct style: classify and generate instances (False: instructions only)."""
    max_instances: int = MAX_INSTANCES
    max_prompts: int | None = None
    """The prompt budget; None: ceil(num / MIN_KEPT_PER_PROMPT) + batch_size."""
    failed_rounds_to_stop: int = FAILED_ROUNDS_TO_STOP
    filters: FilterConfig = field(default_factory=FilterConfig)
    prepare: tuple[str, ...] = PREPARE_PARTS
    """The parts of the final training-pair stage (Self-Instruct style with instances): see ``finetune``."""

    def __post_init__(self) -> None:
        checks = [
            (self.style in STYLES, f"--style must be one of {', '.join(STYLES)}, not '{self.style}'"),
            (self.num >= 1, "--num must be at least 1"),
            (self.batch_size >= 1, "--batch-size must be at least 1"),
            (self.num_demos is None or self.num_demos >= 1, "--demos must be at least 1"),
            (self.machine_demos >= 0, "--machine-demos must not be negative"),
            (self.num_tasks >= 2, "--num-tasks must be at least 2"),
            (self.max_new >= 1, "at least one new instruction per prompt must be allowed"),
            (self.max_instances >= 1, "--max-instances must be at least 1"),
            (self.max_prompts is None or self.max_prompts >= 1, "the prompt budget must be at least 1"),
            (self.filters.min_words >= 0, "--min-words must not be negative"),
            (self.filters.max_words > self.filters.min_words, "--max-words must be above --min-words"),
            (0 <= self.filters.rouge_threshold <= 1, "--rouge-threshold must be between 0 and 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise UsageError(message)
        if self.style == STYLE_ALPACA and self.demos >= self.num_tasks:
            raise UsageError(f"--num-tasks ({self.num_tasks}) must be above the number of demos ({self.demos})")

    @property
    def demos(self) -> int:
        if self.num_demos is not None:
            return self.num_demos
        return ALPACA_DEMOS if self.style == STYLE_ALPACA else SELF_INSTRUCT_DEMOS

    @property
    def wants_instances(self) -> bool:
        return self.style == STYLE_SELF_INSTRUCT and self.instances

    def prompt_budget(self) -> int:
        if self.max_prompts is not None:
            return self.max_prompts
        return math.ceil(self.num / MIN_KEPT_PER_PROMPT) + self.batch_size


@dataclass(frozen=True)
class Candidate:
    instruction: str
    input: str = ""
    output: str | None = None


@dataclass(frozen=True)
class GenerationResult:
    """What one generation response yielded (the parsed value the engine caches)."""

    candidates: tuple[Candidate, ...]
    cut_off: bool = False
    """The response hit the length limit (Self-Instruct: discarded whole; Alpaca: last block dropped)."""
    skipped: int = 0
    """Chunks of text that were not candidates (preamble, noise, malformed or truncated blocks)."""
    rejected: tuple[tuple[str, int], ...] = ()
    """Alpaca style: blocks the strict parser rejected, per reason."""


@dataclass(frozen=True)
class GenerationPrompt:
    index: int
    """1-based, over the whole run (also the cache variant)."""
    round: int
    first_number: int
    demo_ids: tuple[str, ...]
    prompt: Prompt


@dataclass
class Task:
    """A kept instruction and what became of it."""

    id: str
    instruction: str
    round: int
    prompt_index: int
    demo_ids: tuple[str, ...]
    most_similar: list[dict[str, Any]]
    input: str = ""
    output: str | None = None
    """Alpaca style: the generated output."""
    is_classification: bool | None = None
    classification_answer: str | None = None
    """yes, no or unclear (read as no)."""
    instances: list[Instance] = field(default_factory=list)
    dropped: str | None = None
    """Why the task has no record (instance cleaning removed everything, or it failed)."""


@dataclass
class GenerationCounts:
    prompts: int = 0
    failed_prompts: int = 0
    responses: int = 0
    cut_off: int = 0
    candidates: int = 0
    skipped_text: int = 0
    rejected_blocks: Counter = field(default_factory=Counter)
    filtered: Counter = field(default_factory=Counter)
    unused: int = 0
    rounds: int = 0
    stopped: str = ""
    # instances stage
    classification: Counter = field(default_factory=Counter)
    instances_parsed: int = 0
    instances_kept: int = 0
    instances_dropped: Counter = field(default_factory=Counter)
    tasks_dropped: Counter = field(default_factory=Counter)
    tasks_failed: int = 0

    def as_dict(self, kept: int, wants_instances: bool) -> dict[str, Any]:
        out: dict[str, Any] = {
            "rounds": self.rounds,
            "prompts": self.prompts,
            "failed_prompts": self.failed_prompts,
            "responses_cut_off": self.cut_off,
            "candidates": self.candidates,
            "skipped_text": self.skipped_text,
            **({"rejected_blocks": {r: self.rejected_blocks.get(r, 0) for r in REJECT_REASONS}} if self.rejected_blocks else {}),
            "filtered": {name: self.filtered.get(name, 0) for name in FILTER_NAMES},
            "unused_after_target": self.unused,
            "kept_instructions": kept,
            "stopped": self.stopped,
        }
        if wants_instances:
            out["classification"] = {
                "yes": self.classification.get("yes", 0),
                "no": self.classification.get("no", 0),
                "unclear_read_as_no": self.classification.get(UNCLEAR, 0),
            }
            out["instances"] = {
                "parsed": self.instances_parsed,
                "kept": self.instances_kept,
                "dropped": dict(sorted(self.instances_dropped.items())),
            }
            out["tasks"] = {
                "with_instances": kept - sum(self.tasks_dropped.values()) - self.tasks_failed,
                "dropped": dict(sorted(self.tasks_dropped.items())),
                "failed": self.tasks_failed,
            }
        return out


class SelfInstructGenerator:
    """One Self-Instruct run over an engine (see the module docstring)."""

    def __init__(self, engine: Engine, prompts: SelfInstructPrompts, seeds: SeedSet, config: SelfInstructConfig):
        if prompts.style != config.style:
            raise UsageError(f"the prompts are for style '{prompts.style}', the run is '{config.style}'")
        if config.wants_instances and prompts.classify is None:
            raise UsageError("instance generation needs the classification and instance templates")
        self.engine = engine
        self.prompts = prompts
        self.seeds = seeds.seeds
        self.config = config
        self.filters = TextFilters(config.filters)
        # the dedup library's exact ROUGE-L filter: seeds are compared against, never kept
        self.novelty = RougeNoveltyFilter(config.filters.rouge_threshold, (s.instruction for s in self.seeds))
        self.rng = random.Random(config.seed)
        self.tasks: list[Task] = []
        self.counts = GenerationCounts()
        self.failures: list[FailedRecord] = []

    # ---- stage 1: instructions ---------------------------------------------------
    async def generate_instructions(self) -> list[Task]:
        cfg, counts = self.config, self.counts
        budget = cfg.prompt_budget()
        failed_rounds = 0
        while len(self.tasks) < cfg.num:
            if counts.prompts >= budget:
                counts.stopped = STOP_BUDGET
                break
            if failed_rounds >= cfg.failed_rounds_to_stop:
                counts.stopped = STOP_FAILING
                break
            counts.rounds += 1
            batch = [self._build_prompt(counts.rounds) for _ in range(self._round_size(budget))]
            outcomes = await self.engine.amap(batch, self._send_generation, advance=False)
            any_answer = False
            for outcome in outcomes:  # submission order, whatever order they completed in
                spec = outcome.item
                if outcome.failure is not None:
                    counts.failed_prompts += 1
                    self._fail(outcome.failure, STAGE_GENERATION, round=spec.round, prompt=spec.index)
                    continue
                any_answer = True
                self._take(spec, outcome.value)
            failed_rounds = 0 if any_answer else failed_rounds + 1
        else:
            counts.stopped = STOP_REACHED
        return self.tasks

    def _round_size(self, budget: int) -> int:
        """Enough prompts for the instructions still needed at the yield seen so far (at most batch_size)."""
        cfg, counts = self.config, self.counts
        needed = cfg.num - len(self.tasks)
        rate = len(self.tasks) / counts.responses if counts.responses else EXPECTED_KEPT_PER_PROMPT[cfg.style]
        want = math.ceil(needed / max(rate, MIN_KEPT_PER_PROMPT))
        return max(1, min(cfg.batch_size, budget - counts.prompts, want))

    def _build_prompt(self, round_no: int) -> GenerationPrompt:
        cfg = self.config
        self.counts.prompts += 1
        index = self.counts.prompts
        if cfg.style == STYLE_ALPACA:
            chosen: list[Seed] = self.rng.sample(self.seeds, min(cfg.demos, len(self.seeds)))
            demos = [AlpacaDemo(s.instruction, s.input, s.output) for s in chosen]
            prompt = self.prompts.alpaca(demos, cfg.num_tasks)
            return GenerationPrompt(index, round_no, len(demos) + 1, tuple(s.id for s in chosen), prompt)
        n_machine = min(cfg.machine_demos, cfg.demos, len(self.tasks))
        machine = [(t.id, t.instruction) for t in self.rng.sample(self.tasks, n_machine)]
        n_seed = min(cfg.demos - n_machine, len(self.seeds))
        human = [(s.id, s.instruction) for s in self.rng.sample(self.seeds, n_seed)]
        picked = machine + human
        self.rng.shuffle(picked)
        prompt = self.prompts.instructions([text for _, text in picked], cfg.max_new)
        return GenerationPrompt(index, round_no, len(picked) + 1, tuple(i for i, _ in picked), prompt)

    async def _send_generation(self, spec: GenerationPrompt) -> GenerationResult:
        return await self.engine.complete(  # type: ignore[return-value]
            spec.prompt.messages,
            template=spec.prompt.ref,
            sampling=spec.prompt.sampling,
            parse=partial(self.parse_generation, spec.first_number),
            variant=spec.index,
            allow_length=True,
            expected_tokens=EXPECTED_COMPLETION_TOKENS[spec.prompt.template.name]
            if spec.prompt.template.name in EXPECTED_COMPLETION_TOKENS
            else None,
        )

    def parse_generation(self, first_number: int, response: ChatResponse) -> GenerationResult:
        """The candidates of one response; ResponseRejected (retry) when it holds none."""
        cut_off = response.finish_reason == "length"
        if self.config.style == STYLE_ALPACA:
            try:
                parsed = parse_alpaca_tasks(response.text, first_number, truncated=cut_off)
            except ResponseRejected:
                if cut_off:  # only a cut-off block: discarded and counted, as the original does
                    return GenerationResult((), cut_off=True, skipped=1, rejected=((CUT_OFF, 1),))
                raise
            candidates = tuple(Candidate(t.instruction, t.input, t.output) for t in parsed.tasks)
            return GenerationResult(candidates, cut_off, parsed.rejected_total, tuple(sorted(parsed.rejected.items())))
        if cut_off:  # Self-Instruct discards a response cut by the length limit
            return GenerationResult((), cut_off=True)
        listed = parse_instruction_list(response.text, first_number, self.config.max_new)
        return GenerationResult(
            tuple(Candidate(normalise_instruction(i)) for i in listed.items),
            skipped=listed.skipped_prose + listed.over_limit,
        )

    def _take(self, spec: GenerationPrompt, result: GenerationResult) -> None:
        counts = self.counts
        counts.responses += 1
        counts.cut_off += result.cut_off
        counts.skipped_text += result.skipped
        counts.rejected_blocks.update(dict(result.rejected))
        for candidate in result.candidates:
            counts.candidates += 1
            if len(self.tasks) >= self.config.num:
                counts.unused += 1
                continue
            failed = self.filters.first_failure(candidate.instruction)
            if failed is not None:
                counts.filtered[failed] += 1
                continue
            if not self.novelty.check(candidate.instruction).is_novel:
                counts.filtered[ROUGE_L] += 1
                continue
            k = self.config.filters.most_similar
            similar = self.novelty.similar(candidate.instruction, k) if k else []
            self.novelty.add(candidate.instruction)
            task = Task(
                id=f"{METHOD}-{len(self.tasks) + 1}",
                instruction=candidate.instruction,
                round=spec.round,
                prompt_index=spec.index,
                demo_ids=spec.demo_ids,
                most_similar=[{"instruction": m.text, "score": m.score} for m in similar],
                input=candidate.input,
                output=candidate.output,
            )
            self.tasks.append(task)
            self.engine.advance()

    # ---- stage 2: classification and instances -------------------------------------
    async def generate_instances(self) -> None:
        """Classify each kept instruction, generate its instances and clean them (Self-Instruct style)."""
        if not self.config.wants_instances:
            return
        outcomes = await self.engine.amap(self.tasks, self._instances_for)
        counts = self.counts
        for outcome in outcomes:
            task = outcome.item
            if outcome.failure is not None:
                counts.tasks_failed += 1
                task.dropped = "failed"
                stage = STAGE_CLASSIFICATION if task.is_classification is None else STAGE_INSTANCES
                self._fail(outcome.failure, stage, task=task.id, instruction=task.instruction)
                continue
            instances, truncated = outcome.value  # type: ignore[misc]
            counts.classification["yes" if task.is_classification else "no"] += 1
            if task.classification_answer == UNCLEAR:
                counts.classification[UNCLEAR] += 1
            counts.instances_parsed += len(instances)
            rng = random.Random(f"instances:{self.config.seed}:{task.id}")
            cleaned: CleanResult = clean_instances(instances, truncated, self.config.max_instances, rng)
            counts.instances_dropped.update(cleaned.dropped)
            counts.instances_kept += len(cleaned.instances)
            task.instances = cleaned.instances
            if cleaned.task_dropped:
                task.dropped = cleaned.task_dropped
                counts.tasks_dropped[cleaned.task_dropped] += 1

    async def _instances_for(self, task: Task) -> tuple[list[Instance], bool]:
        classify = self.prompts.is_classification(task.instruction)
        answer = await self.engine.complete(
            classify.messages,
            template=classify.ref,
            sampling=classify.sampling,
            parse=lambda r: parse_yes_no(r.text),
            allow_length=True,  # 3 tokens: "Yes, it" is a fine answer cut short
            expected_tokens=EXPECTED_COMPLETION_TOKENS["is_classification"],
        )
        task.classification_answer = answer  # type: ignore[assignment]
        task.is_classification = answer == YES  # an unclear answer means "not classification", as the original
        prompt = self.prompts.instances(task.instruction, bool(task.is_classification), self.config.max_instances)
        return await self.engine.complete(  # type: ignore[return-value]
            prompt.messages,
            template=prompt.ref,
            sampling=prompt.sampling,
            parse=partial(parse_instances_response, bool(task.is_classification)),
            allow_length=True,  # a cut-off response loses its last instance, not the task
            expected_tokens=EXPECTED_COMPLETION_TOKENS["instances"],
        )

    # ---- failures ---------------------------------------------------------------
    def _fail(self, failure: RecordFailure, stage: str, **extra: Any) -> None:
        """A failed prompt (``prompt`` and ``round``) or task (``task``: its id in the tasks file, ``instruction``)."""
        self.failures.append(FailedRecord(failure.reason, failure.raw, {"stage": stage, **extra}))

    # ---- dry run ----------------------------------------------------------------
    async def plan(self) -> None:
        """Dry run: record the requests a whole run would send (nothing is sent).

        Generation prompts are rendered from the seeds; classification and instance
        prompts use seed instructions as stand-ins for the instructions to come. At most
        ``DRY_RUN_RENDERED`` prompts of each kind are counted; the rest is extrapolated.
        """
        cfg = self.config
        n_prompts = min(cfg.prompt_budget(), math.ceil(cfg.num / EXPECTED_KEPT_PER_PROMPT[cfg.style]))
        n_tasks = cfg.num if cfg.wants_instances else 0
        plan = self.engine.plan
        kinds: dict[str, list[int]] = {}

        async def record(kind: str, coro_factory) -> None:
            before = (plan.requests, plan.prompt_tokens, plan.completion_tokens)
            try:
                await coro_factory()
            except DryRunRequest:
                pass
            if plan.requests > before[0]:
                kinds.setdefault(kind, [0, 0, 0])
                stats = kinds[kind]
                stats[0] += 1
                stats[1] += plan.prompt_tokens - before[1]
                stats[2] += plan.completion_tokens - before[2]

        async def gen_prompt() -> None:
            await self._send_generation(self._build_prompt(1))

        async def task_prompts(seed: Seed) -> None:
            stand_in = Task(seed.id, seed.instruction, 0, 0, (), [])
            classify = self.prompts.is_classification(stand_in.instruction)
            await record("is_classification", lambda: self.engine.complete(
                classify.messages, template=classify.ref, sampling=classify.sampling,
                expected_tokens=EXPECTED_COMPLETION_TOKENS["is_classification"],
            ))
            prompt = self.prompts.instances(seed.instruction, bool(seed.is_classification), cfg.max_instances)
            await record("instances", lambda: self.engine.complete(
                prompt.messages, template=prompt.ref, sampling=prompt.sampling,
                expected_tokens=EXPECTED_COMPLETION_TOKENS["instances"],
            ))

        rendered_gen = min(n_prompts, DRY_RUN_RENDERED)
        rendered_tasks = min(n_tasks, DRY_RUN_RENDERED)
        # the samples shown first: one prompt of each kind
        await record("generate", gen_prompt)
        if rendered_tasks:
            await task_prompts(self.seeds[0])
        for _ in range(rendered_gen - 1):
            await record("generate", gen_prompt)
        for i in range(1, rendered_tasks):
            await task_prompts(self.seeds[i % len(self.seeds)])
        # extrapolate the prompts not rendered from the mean of those that were
        wanted = {"generate": n_prompts, "is_classification": n_tasks, "instances": n_tasks}
        for kind, (n, prompt_tokens, completion_tokens) in kinds.items():
            rendered = rendered_gen if kind == "generate" else rendered_tasks
            missing = wanted[kind] - rendered
            if missing > 0 and n:
                plan.requests += missing
                plan.prompt_tokens += round(prompt_tokens / n * missing)
                plan.completion_tokens += round(completion_tokens / n * missing)
        self.counts.prompts = 0  # the dry run sent nothing

    # ---- records ----------------------------------------------------------------
    def records(self, model: str, group_instances: bool = False) -> list[Record]:
        """The output records, in the order the instructions were kept.

        Alpaca style and ``instances=False``: one record per task. Self-Instruct style:
        one record per kept instance (``group_instances``: one per task, its instances
        in ``metadata["instances"]`` as the seed-task format holds them).
        """
        out: list[Record] = []
        generate = self.prompts.generate
        for task in self.tasks:
            if task.dropped:
                continue
            step: dict[str, Any] = {
                "method": METHOD,
                "operation": "generate-instruction",
                "style": self.config.style,
                "round": task.round,
                "prompt": task.prompt_index,
                "parent_ids": list(task.demo_ids),
                "model": model,
                "template": generate.ref,
                "template_hash": generate.hash,
            }
            meta: dict[str, Any] = {META_PROVENANCE: [step], "most_similar": task.most_similar}
            if not self.config.wants_instances:
                output = task.output if self.config.style == STYLE_ALPACA else None
                out.append(Record.single_turn(task.id, task.instruction, output, input=task.input, metadata=meta))
                continue
            template = self.prompts.clf_instances if task.is_classification else self.prompts.gen_instances
            assert template is not None and self.prompts.classify is not None
            instance_step = {
                "method": METHOD,
                "operation": "generate-instances",
                "parent_id": task.id,
                "model": model,
                "template": template.ref,
                "template_hash": template.hash,
                "classification_template": self.prompts.classify.ref,
                "is_classification": task.is_classification,
            }
            meta = {**meta, META_PROVENANCE: [step, instance_step], "is_classification": task.is_classification}
            if group_instances:
                first = task.instances[0]
                meta["instances"] = [{"input": i.input, "output": i.output} for i in task.instances]
                out.append(Record.single_turn(task.id, task.instruction, first.output, input=first.input, metadata=meta))
                continue
            for j, inst in enumerate(task.instances, 1):
                out.append(
                    Record.single_turn(
                        f"{task.id}-{j}", task.instruction, inst.output, input=inst.input, metadata=dict(meta)
                    )
                )
        return out

    def task_rows(self) -> list[dict[str, Any]]:
        """One row per kept instruction, whatever became of it (the ``.tasks.jsonl`` sidecar).

        Like the original's ``machine_generated_instructions.jsonl``: where it came from
        (round, prompt, demo ids), its most similar seed/kept instructions with ROUGE-L
        scores, and its fate: ``written`` (with its record ids) or why not.
        """
        rows = []
        for task in self.tasks:
            row: dict[str, Any] = {
                "id": task.id,
                "instruction": task.instruction,
                "round": task.round,
                "prompt": task.prompt_index,
                "parent_ids": list(task.demo_ids),
                "most_similar": task.most_similar,
            }
            if self.config.wants_instances:
                row["is_classification"] = task.is_classification
                row["instances"] = len(task.instances)
            row["status"] = task.dropped or "written"
            rows.append(row)
        return rows

    def summary_counts(self) -> dict[str, Any]:
        return self.counts.as_dict(len(self.tasks), self.config.wants_instances)


def parse_instances_response(classification: bool, response: ChatResponse) -> tuple[list[Instance], bool]:
    """The raw instances of a response and whether it was cut off (cleaning comes after)."""
    parse = parse_classification_instances if classification else parse_generation_instances
    return parse(response.text), response.finish_reason == "length"
