"""Running a recipe: stages in order, each skipped when its fingerprint says it is done.

The stages of a run are the sources (``00-sources``), the recipe's steps
(``01-<type>``, ``02-<type>``...) and the export (``NN-export``), each in its
own folder of the run folder::

    runs/quickstart/
      00-sources/   merged.jsonl  summary.json  fingerprint.json
      01-filter/    output.jsonl  summary.json  removed.jsonl  fingerprint.json
      02-dedup/     output.jsonl  summary.json  removed.jsonl  fingerprint.json
      03-export/    output/{lft,sft}/<target>/...  summary.json  fingerprint.json
      run_summary.json

A stage runs only when its fingerprint (:mod:`itkit.recipes.fingerprint`)
differs from the one its folder holds, when its output changed since, or when
``--from-step`` names it or an earlier stage. Running a stage first removes its
fingerprint file, then empties its folder, runs the step (whose files appear
atomically), and writes the fingerprint file last. A run killed at any moment
therefore resumes from the first stage without a fingerprint; LLM steps get
their finished responses back from the engine's cache, so the final datasets
are the same as those of an uninterrupted run.

A dry run validates everything, reads and counts the sources, runs the steps
that need no LLM into a temporary folder (so the LLM steps are estimated on
the records they would really get), and asks each LLM step for its dry-run
plan: rendered sample prompts, requests, tokens and cost. It sends nothing
and writes nothing in the run folder. A step after an LLM step is estimated
on that step's input, as its output does not exist yet.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from itkit import notices
from itkit.errors import ItkitError, UsageError
from itkit.io.rows import is_hub
from itkit.llm.discovery import discover_model
from itkit.llm.settings import LLMSettings
from itkit.io.paths import check_paths
from itkit.llm.cache import cache_path
from itkit.recipes.rundir import check_run_dir, claim_run_dir, claim_step_folder, owned_step_folder, refuse_foreign_step
from itkit.recipes.fingerprint import (
    FINGERPRINT_FILE,
    output_intact,
    output_state,
    prompt_hashes,
    read_fingerprint,
    remove_fingerprint,
    sha256_file,
    step_fingerprint,
    write_fingerprint,
)
from itkit.recipes.schema import Recipe, RecipeError, StepSpec
from itkit.report import REPORT_FILE, check_output, write_report
from itkit.recipes.sources import MERGED_FILE, REJECTED_FILE, merge_sources
from itkit.steps import EXPORT as EXPORT_STEP, STEPS
from itkit.steps import export as export_step
from itkit.steps.io import (
    DRY_RUN_SAMPLES,
    EXPORT_FOLDER,
    INTERMEDIATE_FORMAT,
    OUTPUT_FILE,
    SUMMARY_FILE,
    StepIO,
    StepOutcome,
    write_json,
)
from itkit.steps.spec import Context
from itkit.recipes.summary import (
    RUN_SUMMARY_FILE,
    STATUS_DONE,
    STATUS_PLANNED,
    STATUS_RAN,
    STATUS_SKIPPED,
    RunSummary,
    StepRow,
)

RUNS_FOLDER = "runs"
"""The default run folder is ``runs/<recipe name>`` in the working directory."""
LOCK_FILE = ".lock"
SOURCES = "sources"
EXPORT = "export"
MANIFEST_FILE = "manifest.json"
STAGE_FOLDER = re.compile(r"^\d{2,}-(?P<type>[a-z-]+)$")

Events = Callable[[str, str, str], None]
"""``events(kind, stage, message)``: kind is start, skip (unchanged, output reused), done or stale (a removed folder)."""


def default_run_dir(recipe: Recipe, cwd: Path | None = None) -> Path:
    return (cwd or Path.cwd()) / RUNS_FOLDER / recipe.name


class StepFailed(ItkitError):
    """A stage stopped the run; the message names the stage, the exit code is the cause's."""

    def __init__(self, label: str, cause: ItkitError, empty_from: str | None = None):
        self.exit_code = cause.exit_code
        self.cause = cause
        self.kind = getattr(cause, "kind", "error")  # "batch": submitted, not finished (exit 4)
        why = f" (its input is empty: step {empty_from} produced no records)" if empty_from else ""
        super().__init__(f"step {label}: {cause}{why}")


@dataclass
class Stage:
    index: int
    type: str
    label: str
    line: int
    spec: StepSpec | None = None
    prepared: Any = None
    settings: LLMSettings | None = None

    @property
    def uses_llm(self) -> bool:
        return self.spec is not None and STEPS[self.spec.type].uses_llm


# ---------------------------------------------------------------------------
# planning: everything checked before anything runs
# ---------------------------------------------------------------------------


def _prepare_error(recipe: Recipe, line: int, where: str, exc: ItkitError) -> ItkitError:
    if isinstance(exc, UsageError):
        return RecipeError(recipe.shown or str(recipe.path), line, f"{where}: {exc}")
    error = ItkitError(f"{recipe.shown or recipe.path}, line {line}: {where}: {exc}")
    error.exit_code = exc.exit_code
    return error


def step_settings(spec: StepSpec, *, dry_run: bool, quiet: bool) -> LLMSettings:
    """The settings an LLM step runs with: the recipe's, then the environment (key, base URL), then defaults."""
    return discover_model(LLMSettings.resolve(**(spec.llm or {}), dry_run=dry_run, quiet=quiet))


def plan_stages(recipe: Recipe, *, dry_run: bool = False, quiet: bool = False) -> list[Stage]:
    """Every stage with its library configuration built and checked (rule names, operations, templates...)."""
    stages = [Stage(0, SOURCES, f"00-{SOURCES}", recipe.located.key_line_of(("sources",)) if recipe.located else 1)]
    for spec in recipe.steps:
        adapter = STEPS[spec.type]
        where = f"step {spec.index} ({spec.type})"
        settings = None
        try:
            if adapter.uses_llm:
                settings = step_settings(spec, dry_run=dry_run, quiet=quiet)
                if not dry_run and settings.key_value() is None and settings.base_url is None:
                    raise UsageError(
                        "no API key: set OPENAI_API_KEY in the environment (for a local server such as vLLM "
                        "or Ollama, set base_url in the recipe's llm block or OPENAI_BASE_URL; it needs no key)"
                    )
            prepared = adapter.prepare(spec.options, Context(settings, spec.prompts_dir, recipe.resolve))
        except ItkitError as exc:
            raise _prepare_error(recipe, spec.line, where, exc) from None
        stages.append(Stage(spec.index, spec.type, spec.label, spec.line, spec, prepared, settings))
    if recipe.export is not None:
        index = len(recipe.steps) + 1
        try:
            EXPORT_STEP.prepare(recipe.export, Context(resolve=recipe.resolve))
        except ItkitError as exc:
            raise _prepare_error(recipe, recipe.export_line, EXPORT, exc) from None
        stages.append(Stage(index, EXPORT, f"{index:02d}-{EXPORT}", recipe.export_line))
    return stages


def resolve_from(stages: list[Stage], value: str) -> int:
    """The index of the stage ``--from-step`` names: its number, folder name, or type when only one stage has it."""
    text = value.strip()
    if text.isdigit():
        index = int(text)
        if 0 <= index < len(stages):
            return index
    for stage in stages:
        if text == stage.label:
            return stage.index
    matches = [stage for stage in stages if stage.type == text]
    if len(matches) == 1:
        return matches[0].index
    choices = ", ".join(f"{s.index} ({s.label})" for s in stages)
    if len(matches) > 1:
        raise UsageError(f"--from-step {value}: {len(matches)} steps are {text}; give the number or folder name: {choices}")
    raise UsageError(f"--from-step {value}: no such step; choose a number or a name: {choices}")


# ---------------------------------------------------------------------------
# the run folder
# ---------------------------------------------------------------------------


class RunLock:
    """An exclusive lock on the run folder, so two runs never write the same folder (released at exit, even on kill)."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / LOCK_FILE
        self._fh: Any = None

    def __enter__(self) -> "RunLock":
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: no advisory locks here
            return self
        self._fh = open(self.path, "a+")
        try:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._fh.close()
            self._fh = None
            raise UsageError(f"{self.path.parent}: another itkit run is using this run folder; wait for it or give --run-dir") from None
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fh is not None:
            self._fh.close()


def _reset_folder(folder: Path) -> None:
    """Forget a stage's previous result: its fingerprint first, then everything else (only in a folder itkit made)."""
    refuse_foreign_step(folder)
    remove_fingerprint(folder)
    if folder.exists():
        shutil.rmtree(folder)
    claim_step_folder(folder)


def _stale_folders(run_dir: Path, stages: list[Stage]) -> list[Path]:
    """Stage folders left by an earlier version of the recipe (another step at that number, or more steps)."""
    current = {stage.label for stage in stages}
    known = {SOURCES, EXPORT, *STEPS}
    out = []
    for entry in sorted(run_dir.iterdir()):
        match = STAGE_FOLDER.match(entry.name)
        if match and match.group("type") in known and entry.name not in current and owned_step_folder(entry):
            out.append(entry)
    return out


def _export_intact(folder: Path, recorded: dict[str, Any]) -> bool:
    """The export's manifest is unchanged and every file it lists is there with its size."""
    out = folder / EXPORT_FOLDER
    if not output_intact(out / MANIFEST_FILE, recorded):
        return False
    try:
        import orjson

        manifest = orjson.loads((out / MANIFEST_FILE).read_bytes())
        return all((out / f["path"]).stat().st_size == f["bytes"] for f in manifest.get("files", []))
    except (OSError, ValueError, KeyError, TypeError):
        return False


# ---------------------------------------------------------------------------
# running
# ---------------------------------------------------------------------------


@dataclass
class _Cursor:
    """What flows from one stage to the next."""

    input: Path | None = None
    """The output of the stage before (the next stage's input)."""
    input_sha256: str | None = None
    fingerprint: str = ""
    records: int | None = None
    empty_from: str | None = None
    """The stage whose output (this stage's input) holds no records."""
    changed: bool = False
    """Dry run: an earlier stage would run, so every later one would too."""
    estimated: bool = False
    """Dry run: the input is an LLM step's input standing in for its output."""


@dataclass
class Runner:
    recipe: Recipe
    run_dir: Path
    stages: list[Stage]
    from_index: int | None = None
    dry_run: bool = False
    samples: int = DRY_RUN_SAMPLES
    events: Events | None = None
    scratch: Path | None = None
    summary: RunSummary = field(init=False)

    def __post_init__(self) -> None:
        self.summary = RunSummary(
            recipe=str(self.recipe.path),
            name=self.recipe.name,
            run_dir=str(self.run_dir),
            recipe_sha256=self.recipe.text_sha256,
            dry_run=self.dry_run,
        )

    def emit(self, kind: str, stage: str, message: str = "") -> None:
        if self.events is not None:
            self.events(kind, stage, message)

    # ---- fingerprints ---------------------------------------------------------
    def fingerprint(self, stage: Stage, cursor: _Cursor) -> tuple[str, dict[str, Any]]:
        if stage.type == SOURCES:
            sources = [
                {
                    "path": s.path,
                    "format": s.format,
                    "on_error": s.on_error,
                    "sha256": None if is_hub(s.location) else sha256_file(s.location),
                }
                for s in self.recipe.sources
            ]
            return step_fingerprint(SOURCES, {"sources": sources, "format": INTERMEDIATE_FORMAT}, previous="", input_sha256=None)
        if stage.type == EXPORT:
            assert self.recipe.export is not None
            options = self.recipe.export.model_dump(mode="json")
            return step_fingerprint(EXPORT, options, previous=cursor.fingerprint, input_sha256=cursor.input_sha256)
        spec = stage.spec
        assert spec is not None
        adapter = STEPS[spec.type]
        prompts = prompt_hashes(adapter.prompts_method, spec.prompts_dir) if adapter.prompts_method else None
        options = spec.options.model_dump(mode="json")
        if adapter.reads is not None:
            read = adapter.reads(spec.options, self.recipe.resolve)
            options["files_sha256"] = {p: sha256_file(p) if os.path.isfile(p) else None for p in read}
        return step_fingerprint(
            spec.type,
            options,
            previous=cursor.fingerprint,
            input_sha256=cursor.input_sha256,
            llm=stage.settings.redacted() if stage.settings is not None else None,  # no URL password in the file
            prompts=prompts,
        )

    def output_of(self, stage: Stage, folder: Path) -> Path:
        if stage.type == SOURCES:
            return folder / MERGED_FILE
        if stage.type == EXPORT:
            return folder / EXPORT_FOLDER / MANIFEST_FILE
        return folder / OUTPUT_FILE

    def finished(self, stage: Stage, folder: Path, fingerprint: str) -> dict[str, Any] | None:
        """The fingerprint file's data when the stage is done and unchanged, else None."""
        if self.from_index is not None and stage.index >= self.from_index:
            return None
        recorded = read_fingerprint(folder)
        if recorded is None or recorded["fingerprint"] != fingerprint:
            return None
        state = recorded.get("output") or {}
        if stage.type == EXPORT:
            ok = _export_intact(folder, state)
        else:
            ok = output_intact(self.output_of(stage, folder), state)
        return recorded if ok else None

    # ---- one stage ----------------------------------------------------------------
    def execute(self, stage: Stage, folder: Path, cursor: _Cursor) -> StepOutcome:
        """Run one stage into ``folder`` (the run folder's, or a scratch one in a dry run)."""
        if stage.type == SOURCES:
            result = merge_sources(self.recipe.sources, folder / MERGED_FILE, INTERMEDIATE_FORMAT, folder / REJECTED_FILE)
            if not self.dry_run:
                write_json(folder / SUMMARY_FILE, result.as_dict())
            return StepOutcome(
                records_in=result.rows,
                records_out=result.written,
                rejected=result.rejected,
                partial=bool(result.rejected),
                outputs={s.path: s.loaded for s in result.sources},
                notes=[
                    f"{s.path} ({s.format}): {s.loaded} records"
                    + (f", {s.rejected} rejected" if s.rejected else "")
                    + (f", {s.renamed_ids} ids renamed (already used by an earlier source)" if s.renamed_ids else "")
                    for s in result.sources
                ],
            )
        assert cursor.input is not None
        io = StepIO(input=cursor.input, folder=folder, samples=self.samples)
        if stage.type == EXPORT:
            assert self.recipe.export is not None
            return export_step.run(self.recipe.export, io, Context(resolve=self.recipe.resolve))
        spec = stage.spec
        assert spec is not None
        io.settings = stage.settings
        io.prompts_dir = spec.prompts_dir
        return STEPS[spec.type].run(stage.prepared, spec.options, io)

    def relative(self, path: Path) -> str:
        try:
            return path.relative_to(self.run_dir).as_posix()
        except ValueError:
            return str(path)

    def run_stage(self, stage: Stage, cursor: _Cursor) -> StepRow:
        folder = self.run_dir / stage.label
        forced = self.from_index is not None and stage.index >= self.from_index
        fingerprint, parts = self.fingerprint(stage, cursor) if not cursor.changed else ("", {})
        recorded = self.finished(stage, folder, fingerprint) if not cursor.changed else None
        output = self.output_of(stage, folder)
        retried = 0
        if recorded is not None and stage.spec is not None and STEPS[stage.spec.type].uses_llm:
            # a step that finished with failed records is not finished: run it again (cached answers stay)
            retried = int((recorded.get("result") or {}).get("failed") or 0)
            if retried and not self.dry_run:
                recorded = None
        if recorded is not None:
            outcome = StepOutcome.from_dict(recorded.get("result") or {})
            outcome.notes = list((recorded.get("result") or {}).get("notes") or [])
            status = STATUS_DONE if self.dry_run else STATUS_SKIPPED
            self.emit("skip", stage.label, "unchanged since the last run: output reused")
            _warn(stage.label, outcome)  # still true of the output reused
            self._advance(cursor, stage, fingerprint, output, (recorded.get("output") or {}).get("sha256"), outcome)
            return StepRow(stage.label, stage.type, status, outcome, 0.0, stage.label, self.relative(output), forced)

        if self.dry_run:
            return self._dry_stage(stage, cursor)

        self.emit("start", stage.label, f"retrying the {retried} records that failed last time" if retried else "")
        _reset_folder(folder)
        started = time.monotonic()
        try:
            outcome = self.execute(stage, folder, cursor)
        except ItkitError as exc:
            raise StepFailed(stage.label, exc, cursor.empty_from if cursor.records == 0 else None) from None
        if retried:
            outcome.notes.append(f"re-run: retried the {retried} records that failed in the last run")
        seconds = time.monotonic() - started
        state = output_state(output)
        own = {output.relative_to(folder).parts[0], FINGERPRINT_FILE}
        outcome.files = sorted(p.name for p in folder.iterdir() if p.name not in own and not p.name.startswith("."))
        write_fingerprint(
            folder,
            {
                "fingerprint": fingerprint,
                "step": stage.label,
                "type": stage.type,
                "parts": parts,
                "output": {"path": output.relative_to(folder).as_posix(), **state},
                "result": {**outcome.as_dict(), "notes": outcome.notes},
                "seconds": round(seconds, 3),
            },
        )
        self.emit("done", stage.label, _done_message(outcome, seconds))
        _warn(stage.label, outcome)
        self._advance(cursor, stage, fingerprint, output, state["sha256"], outcome)
        return StepRow(stage.label, stage.type, STATUS_RAN, outcome, seconds, stage.label, self.relative(output), forced)

    def _advance(self, cursor: _Cursor, stage: Stage, fingerprint: str, output: Path, sha: str | None, outcome: StepOutcome) -> None:
        cursor.fingerprint = fingerprint
        if stage.type != EXPORT:
            cursor.input = output
            cursor.input_sha256 = sha
            cursor.records = outcome.records_out
            cursor.empty_from = stage.label if outcome.records_out == 0 else None

    def _dry_stage(self, stage: Stage, cursor: _Cursor) -> StepRow:
        assert self.scratch is not None
        folder = self.scratch / stage.label
        folder.mkdir(parents=True, exist_ok=True)
        self.emit("start", stage.label, "dry run")
        started = time.monotonic()
        if stage.type == EXPORT:
            assert self.recipe.export is not None
            o = self.recipe.export
            targets = ", ".join(o.target) if o.target else "all targets"
            outcome = StepOutcome(
                records_in=cursor.records or 0,
                records_out=None,
                notes=[f"would export mode {o.mode} for {targets} to {self.relative(self.run_dir / stage.label / EXPORT_FOLDER)}"],
            )
        else:
            try:
                outcome = self.execute(stage, folder, cursor)
            except ItkitError as exc:
                raise StepFailed(stage.label, exc) from None
        seconds = time.monotonic() - started
        if cursor.estimated and stage.type != SOURCES:
            outcome.notes.append("estimated on the input of the LLM step before it (its output does not exist yet)")
        cursor.changed = True
        if stage.uses_llm:
            cursor.estimated = True  # the next stage gets this stage's input
            cursor.records = outcome.records_in
        elif stage.type != EXPORT:
            cursor.input = self.output_of(stage, folder)
            cursor.records = outcome.records_out
        return StepRow(stage.label, stage.type, STATUS_PLANNED, outcome, seconds, stage.label, None, False)

    # ---- the whole run ------------------------------------------------------------
    def run(self) -> RunSummary:
        cursor = _Cursor()
        for stage in self.stages:  # before anything is written: every folder a stage replaces must be itkit's
            refuse_foreign_step(self.run_dir / stage.label)
        if not self.dry_run:
            for stale in _stale_folders(self.run_dir, self.stages):
                shutil.rmtree(stale)
                self.summary.removed_stale.append(stale.name)
                self.emit("stale", stale.name, "removed: a step folder of an earlier version of the recipe")
        try:
            for stage in self.stages:
                self.summary.rows.append(self.run_stage(stage, cursor))
        except StepFailed as exc:
            self.summary.error = str(exc)
            raise
        except KeyboardInterrupt:
            self.summary.error = "interrupted"
            raise
        finally:
            self.summary.finished = time.time()
            self.summary.warnings = notices.collected()
            if not self.dry_run:
                write_json(self.run_dir / RUN_SUMMARY_FILE, self.summary.as_dict())
        return self.summary


def _warn(label: str, outcome: StepOutcome) -> None:
    """A step that produced nothing of what it exists for: say so on stderr and in the run summary."""
    for warning in outcome.warnings:
        notices.warn(f"{label}: {warning}")


def _done_message(outcome: StepOutcome, seconds: float) -> str:
    out = "" if outcome.records_out is None else f" -> {outcome.records_out}"
    if outcome.outputs and outcome.records_out is None:
        out = " -> " + ", ".join(f"{k} {v}" for k, v in outcome.outputs.items())
    failed = f", {outcome.failed} failed" if outcome.failed else ""
    passed = f", {outcome.passed_through} passed through unchanged (beyond the limit)" if outcome.passed_through else ""
    return f"{outcome.records_in}{out} records{failed}{passed} in {seconds:.1f} s"


def run_recipe(
    recipe: Recipe,
    run_dir: str | Path | None = None,
    *,
    from_step: str | None = None,
    dry_run: bool = False,
    quiet: bool = False,
    samples: int = DRY_RUN_SAMPLES,
    events: Events | None = None,
) -> RunSummary:
    """Run (or, with ``dry_run``, plan) a validated recipe; see the module docstring.

    Raises :class:`~itkit.recipes.schema.RecipeError` for a setting a step's
    library refuses (before anything runs) and :class:`StepFailed` when a stage
    stops the run.
    """
    stages = plan_stages(recipe, dry_run=dry_run, quiet=quiet)
    from_index = resolve_from(stages, from_step) if from_step is not None else None
    folder = Path(run_dir) if run_dir is not None else default_run_dir(recipe)
    folder = folder.resolve()
    check_run_dir(folder)
    check_paths({f"source {s.path}": s.location for s in recipe.sources}, {}, folders={"--run-dir": str(folder)})
    # a step folder is emptied when its step runs again: the recipe or a response cache inside one would go with it
    step_folders = {f"step {st.label}": str(folder / st.label) for st in stages}
    check_paths({"the recipe": str(recipe.path)}, {}, folders=step_folders)
    for st in stages:  # (steps may share one cache: each is checked against the step folders alone)
        if st.settings is not None and not st.settings.no_cache:
            cache = {f"the response cache of {st.label}": str(cache_path(st.settings.cache_dir))}
            check_paths({}, cache, folders=step_folders)
    if dry_run:
        with _scratch() as scratch:
            runner = Runner(recipe, folder, stages, from_index, True, samples, events, scratch)
            return runner.run()
    claim_run_dir(folder)
    with RunLock(folder):
        if recipe.report:
            check_output(folder / REPORT_FILE)
        summary = Runner(recipe, folder, stages, from_index, False, samples, events).run()
        if recipe.report:
            if events is not None:
                events("start", "report", "")
            write_report(folder, folder / REPORT_FILE)
            summary.report = str(folder / REPORT_FILE)
            if events is not None:
                events("done", "report", REPORT_FILE)
        return summary


class _scratch:
    """A temporary folder for a dry run's intermediate files, removed afterwards."""

    def __enter__(self) -> Path:
        self._tmp = tempfile.TemporaryDirectory(prefix="itkit-run-dry-")
        return Path(self._tmp.name)

    def __exit__(self, *exc: object) -> None:
        self._tmp.cleanup()


__all__ = [
    "RUNS_FOLDER",
    "Runner",
    "Stage",
    "StepFailed",
    "default_run_dir",
    "plan_stages",
    "resolve_from",
    "run_recipe",
]
