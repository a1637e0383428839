"""The recipe format: pydantic models for every block, and loading a recipe file with errors that name its line.

A recipe is a YAML mapping::

    name: my-pipeline              # the run folder's name (default: the file's stem)
    sources:                       # one or more, merged in order
      - {path: data/alpaca.json, format: alpaca}
      - {path: hf://databricks/databricks-dolly-15k, format: dolly}
    llm: {model: llama3.1:8b, temperature: 0.7, concurrency: 8}   # defaults of every LLM step
    steps:                         # in order; each one mapping {<step type>: {options}}
      - filter: {max_response: 800}
      - simplify: {keep_original: true, llm: {temperature: 0.2}}
      - dedup: {near: true}
    export: {mode: both, target: [trl, llama-factory]}

Step options are the options of the step's command, with underscores, defined once
per step in :mod:`itkit.steps` (the command is built from the same definition)
(``keep_original``, not ``keep-original``). Options that name the command's
input and output files (``src``, ``-o``, ``--from``, ``--to``, ``--report``,
``--errors``...) are the runner's business and are not accepted. Paths in a
recipe are relative to the recipe file's folder. The API key is never part of
a recipe: it comes from ``OPENAI_API_KEY`` only.

Every model forbids unknown keys and is strict about types (``"3"`` is not a
number), so a typo or a wrong type is caught before anything runs, with the
recipe's line (:class:`RecipeError`, exit 2).
"""

from __future__ import annotations

import difflib
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, Field, ValidationError, create_model

from itkit.errors import ItkitError, UsageError
from itkit.formats import FORMAT_NAMES
from itkit.io.rows import is_hub
from itkit.llm.settings import LLMSettings
from itkit.recipes.yaml_lines import LocatedYAML
from itkit.steps import EXPORT, STEPS
from itkit.steps.spec import Context, Options
from itkit.yaml_guard import YAMLProblem

LLM_KEY = "llm"
"""The key of the LLM settings block, at the top of a recipe and inside an LLM step."""
FORBIDDEN_LLM_FIELDS = (
    "api_key", "dry_run", "quiet", "model_given", "extra_base_urls", "batch_file", "batch_results"
)
"""LLMSettings fields a recipe may not set: the key comes from the environment only; dry-run and quiet are
options of ``itkit run``; offline batch files are the commands' own."""
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
SUGGEST_CUTOFF = 0.6
"""How close an unknown name must be to a known one to be suggested."""


class RecipeError(UsageError):
    """The recipe is invalid: one line naming the recipe file and the line (exit 2)."""

    def __init__(self, path: str, line: int | None, message: str):
        self.path = path
        self.line = line
        self.reason = message
        where = f"{path}, line {line}" if line else path
        super().__init__(f"{where}: {message}")


# ---------------------------------------------------------------------------
# sources, LLM settings
# ---------------------------------------------------------------------------


class SourceOptions(Options):
    path: str = Field(min_length=1)
    """A file (relative to the recipe's folder) or ``hf://org/name[/config][:split]``."""
    format: Literal[("auto", *FORMAT_NAMES)] = "auto"  # type: ignore[valid-type]
    on_error: Literal["fail", "skip"] = "fail"
    """skip: bad rows go to 00-sources/rejected.jsonl with their reason (the run then exits 3)."""


def _llm_block_model() -> type[BaseModel]:
    """Every LLMSettings field (but the key, dry_run and quiet) as an optional setting, plus prompts_dir."""
    fields: dict[str, Any] = {}
    for name, info in LLMSettings.model_fields.items():
        if name in FORBIDDEN_LLM_FIELDS:
            continue
        annotation = Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
        if name == "base_url":  # one endpoint, or a list of servers of the same model
            annotation = Union[str, list[str]]
        elif name in ("drop_params", "rename_params"):  # YAML lists
            annotation = list[str]
        fields[name] = (Optional[annotation], None)
    fields["prompts_dir"] = (Optional[str], None)
    return create_model("LLMBlock", __base__=Options, **fields)


LLMBlock = _llm_block_model()
"""The ``llm:`` block: the engine settings of ``itkit <llm command> --help`` (underscored), all optional."""
LLM_BLOCK_FIELDS = tuple(LLMBlock.model_fields)


class RecipeModel(Options):
    """The top level; sources, steps and export are checked item by item (see :func:`load_recipe`)."""

    name: Optional[str] = None
    description: Optional[str] = None
    sources: list[Any] = Field(min_length=1)
    llm: Optional[dict[str, Any]] = None
    steps: list[Any] = Field(default_factory=list)
    export: Optional[dict[str, Any]] = None
    report: bool = False
    """Write ``report.html`` (itkit report) in the run folder at the end of the run."""


# ---------------------------------------------------------------------------
# the validated recipe
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceSpec:
    path: str
    """As written in the recipe (kept in each record's metadata ``source``)."""
    location: str
    """What to read: the path resolved against the recipe's folder, or the hf:// URI."""
    format: str
    on_error: str
    line: int


@dataclass(frozen=True)
class StepSpec:
    index: int
    """1-based position among the steps (the number of its folder)."""
    type: str
    options: BaseModel
    line: int
    llm: dict[str, Any] | None = None
    """The effective LLM settings (recipe defaults, then the step's own), None for a step without an LLM."""
    prompts_dir: str | None = None
    """Resolved against the recipe's folder."""

    @property
    def label(self) -> str:
        return f"{self.index:02d}-{self.type}"


@dataclass(frozen=True)
class Recipe:
    path: Path
    name: str
    sources: list[SourceSpec]
    steps: list[StepSpec]
    export: BaseModel | None
    export_line: int = 0
    description: str | None = None
    report: bool = False
    """Write the HTML report in the run folder at the end of the run."""
    text_sha256: str = ""
    """Hash of the recipe file as read (recorded in the run summary)."""
    shown: str = ""
    """The recipe's path as the user gave it (for messages)."""
    located: LocatedYAML | None = field(default=None, compare=False, repr=False)
    warnings: list[str] = field(default_factory=list, compare=False)
    """Deprecated spellings the recipe uses, each naming its line (``itkit run`` prints them on stderr)."""

    @property
    def folder(self) -> Path:
        return self.path.parent

    def resolve(self, value: str) -> str:
        """A path of the recipe, relative to its folder (hf:// URIs and absolute paths as they are)."""
        if is_hub(value):
            return value
        return str((self.folder / Path(value).expanduser()).resolve())


# ---------------------------------------------------------------------------
# loading
# ---------------------------------------------------------------------------


def _suggest(name: str, known: list[str]) -> str:
    underscored = name.replace("-", "_")
    if underscored != name and underscored in known:
        return f"; did you mean '{underscored}'? (recipe options are written with underscores)"
    close = difflib.get_close_matches(underscored, known, n=1, cutoff=SUGGEST_CUTOFF)
    return f"; did you mean '{close[0]}'?" if close else ""


def _existing_prefix(data: Any, loc: tuple) -> tuple:
    """The part of ``loc`` that names values present in ``data`` (pydantic adds union tags and keys that are missing)."""
    out = []
    node = data
    for part in loc:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            break
        out.append(part)
    return tuple(out)


def _describe(path: tuple) -> str:
    """``("steps", 1, "dedup", "near")`` -> ``step 2 (dedup): near``."""
    parts: list[str] = []
    rest = list(path)
    if len(rest) >= 2 and rest[0] == "steps" and isinstance(rest[1], int):
        step = f"step {rest[1] + 1}"
        rest = rest[2:]
        if rest:
            step += f" ({rest[0]})"
            rest = rest[1:]
        parts.append(step)
    elif len(rest) >= 2 and rest[0] == "sources" and isinstance(rest[1], int):
        parts.append(f"source {rest[1] + 1}")
        rest = rest[2:]
    dotted = ".".join(str(p) for p in rest)
    if dotted:
        parts.append(dotted)
    return ": ".join(parts)


def _type_word(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list", dict: "a mapping"}.get(
        type(value), type(value).__name__
    )


class _Checker:
    """Collects problems as (location path, message); the one on the earliest line is raised."""

    def __init__(self, path: str, located: LocatedYAML):
        self.path = path
        self.located = located
        self.problems: list[tuple[int, int, str]] = []
        self.warnings: list[str] = []

    def warn(self, loc: tuple, message: str) -> None:
        line = self.located.key_line_of(loc)
        where = _describe(_existing_prefix(self.located.data, loc[:-1]))
        self.warnings.append(f"{self.path}, line {line}: {where}: {message}" if line else f"{self.path}: {message}")

    def renamed(self, loc: tuple, raw: dict[str, Any], renames: dict[str, str]) -> dict[str, Any]:
        """``raw`` with the deprecated option names of ``renames`` replaced (a warning each; both given: a problem)."""
        out = dict(raw)
        for old, new in renames.items():
            if old not in out:
                continue
            if new in out:
                self.add(loc + (old,), f"'{old}' is the old name of '{new}'; give only '{new}'", where=loc)
                continue
            out[new] = out.pop(old)
            self.warn(loc + (old,), f"'{old}' is deprecated and will be removed in the next release; write '{new}'")
        return out

    def add(self, loc: tuple, message: str, line: int | None = None, where: tuple | None = None) -> None:
        """A problem at ``loc`` (its line), described as being in ``where`` (default: ``loc``)."""
        at = line if line is not None else self.located.key_line_of(loc)
        where = _describe(_existing_prefix(self.located.data, loc if where is None else where))
        text = f"{where}: {message}" if where else message
        self.problems.append((at, len(self.problems), text))

    def add_validation(self, prefix: tuple, exc: ValidationError, data: Any, known: list[str]) -> None:
        for err in exc.errors():
            loc = tuple(err["loc"])
            full = prefix + loc
            kind = err["type"]
            if kind == "extra_forbidden":
                name = str(loc[-1])
                self.add(full, f"unknown option '{name}'{_suggest(name, known)}", where=full[:-1])
            elif kind == "missing":
                parent = prefix + loc[:-1]
                self.add(parent, f"'{loc[-1]}' is required", where=parent)
            else:
                value = err.get("input")
                message = err["msg"].removeprefix("Value error, ")
                if isinstance(value, (str, int, float, bool)):
                    message += f" (got {value!r})"
                elif value is not None:
                    message += f" (got {_type_word(value)})"
                self.add(full, message)

    def raise_first(self) -> None:
        if self.problems:
            line, _, text = min(self.problems)
            raise RecipeError(self.path, line, text)


def _read(path: Path, shown: str) -> tuple[str, LocatedYAML]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise RecipeError(shown, None, "no such recipe file") from None
    except OSError as exc:
        raise RecipeError(shown, None, f"cannot read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RecipeError(shown, None, f"not UTF-8 (byte {exc.start})") from None
    try:
        located = LocatedYAML(text)
    except YAMLProblem as exc:
        raise RecipeError(shown, exc.line, exc.message) from None
    return text, located


def load_recipe(path: str | Path, check_files: bool = True) -> Recipe:
    """Read and validate a recipe; raise :class:`RecipeError` (exit 2) naming the line of the first problem.

    Checks the structure, every option's name and type, that source files
    exist (``check_files``), that no API key is in it, and (through each
    step adapter's ``prepare``) what the step's library checks: rule names,
    operations, thresholds, export targets, prompt templates.
    """
    shown = str(path)
    file = Path(path)
    text, located = _read(file, shown)
    data = located.data
    if not isinstance(data, dict):
        raise RecipeError(shown, 1, f"a recipe is a YAML mapping (name, sources, steps, export), not {_type_word(data)}")
    check = _Checker(shown, located)
    try:
        top = RecipeModel.model_validate(data)
    except ValidationError as exc:
        check.add_validation((), exc, data, list(RecipeModel.model_fields))
        check.raise_first()
        raise AssertionError("unreachable") from None  # pragma: no cover

    folder = file.resolve().parent
    if top.name is not None and not NAME_PATTERN.match(top.name):
        check.add(("name",), f"'{top.name}' cannot name a folder: use letters, digits, '.', '_' and '-'")
    sources = [
        spec for i, raw in enumerate(top.sources) if (spec := _source(check, i, raw, folder, check_files)) is not None
    ]
    defaults = _llm_block(check, (LLM_KEY,), top.llm)
    steps = [spec for i, item in enumerate(top.steps) if (spec := _step(check, i, item, defaults, folder)) is not None]
    export = _export(check, top.export, folder, check_files) if top.export is not None else None
    check.raise_first()
    return Recipe(
        path=file.resolve(),
        name=top.name if top.name is not None else file.stem,
        sources=sources,
        steps=steps,
        export=export,
        export_line=located.key_line_of(("export",)),
        description=top.description,
        report=top.report,
        text_sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        shown=shown,
        located=located,
        warnings=check.warnings,
    )


def _resolve(folder: Path, value: str) -> str:
    return str((folder / Path(value).expanduser()).resolve())


def _source(check: _Checker, i: int, raw: Any, folder: Path, check_files: bool) -> SourceSpec | None:
    loc = ("sources", i)
    try:
        source = SourceOptions.model_validate(raw)
    except ValidationError as exc:
        check.add_validation(loc, exc, raw, list(SourceOptions.model_fields))
        return None
    location = source.path if is_hub(source.path) else _resolve(folder, source.path)
    if check_files and not is_hub(source.path) and not Path(location).is_file():
        what = "is a folder, not a file" if Path(location).is_dir() else "no such file"
        check.add(loc + ("path",), f"{source.path}: {what} (paths are relative to the recipe's folder {folder})")
        return None
    return SourceSpec(source.path, location, source.format, source.on_error, check.located.line_of(loc + ("path",)))


def _step(check: _Checker, i: int, item: Any, defaults: dict[str, Any] | None, folder: Path) -> StepSpec | None:
    """One item of ``steps:``: ``{<type>: {options, llm: {...}}}`` checked with the step's options model and library."""
    loc = ("steps", i)
    types = list(STEPS)
    if not isinstance(item, dict) or len(item) != 1:
        got = f"a mapping with {len(item)} keys ({', '.join(map(str, item))})" if isinstance(item, dict) else _type_word(item)
        check.add(loc, f"a step is a mapping with one key, the step type ({', '.join(types)}), got {got}")
        return None
    ((kind, raw),) = item.items()
    if kind not in STEPS:
        check.add(loc, f"unknown step type '{kind}'{_suggest(str(kind), types)}; step types: {', '.join(types)}")
        return None
    adapter = STEPS[kind]
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        check.add(loc + (kind,), f"the options of a {kind} step are a mapping, got {_type_word(raw)}")
        return None
    raw = check.renamed(loc + (kind,), dict(raw), adapter.renamed())
    has_llm = LLM_KEY in raw
    step_llm = raw.pop(LLM_KEY, None)
    try:
        options = adapter.options.model_validate(raw)
    except ValidationError as exc:
        known = list(adapter.options.model_fields) + ([LLM_KEY] if adapter.uses_llm else [])
        check.add_validation(loc + (kind,), exc, raw, known)
        return None
    line = check.located.line_of(loc)
    if not adapter.uses_llm:
        if has_llm:
            check.add(loc + (kind, LLM_KEY), f"a {kind} step calls no LLM, so it takes no '{LLM_KEY}' settings")
            return None
        ok = _library_check(check, loc + (kind,), line, adapter.prepare, options, None, None, folder)
        return StepSpec(i + 1, kind, options, line) if ok else None

    own_loc = loc + (kind, LLM_KEY)
    own = _llm_block(check, own_loc, step_llm)
    if own is None and step_llm is not None:
        return None
    merged = {**(defaults or {}), **(own or {})}
    options = _moved_settings(check, own_loc, own or {}, adapter, merged, options, raw)
    prompts_dir = merged.pop("prompts_dir", None)
    if merged.get("cache_dir"):
        merged["cache_dir"] = _resolve(folder, merged["cache_dir"])
    if not _settings_valid(check, merged, own_loc, own or {}):
        return None
    if prompts_dir is not None:
        resolved = _resolve(folder, prompts_dir)
        if not Path(resolved).is_dir():
            where = own_loc + ("prompts_dir",) if own and "prompts_dir" in own else (LLM_KEY, "prompts_dir")
            check.add(where, f"{prompts_dir}: no such folder (paths are relative to the recipe's folder {folder})")
            return None
        prompts_dir = resolved
    if not _library_check(check, loc + (kind,), line, adapter.prepare, options, merged, prompts_dir, folder):
        return None
    return StepSpec(i + 1, kind, options, line, merged, prompts_dir)


def _moved_settings(
    check: _Checker, own_loc: tuple, own: dict[str, Any], step: Any, merged: dict[str, Any], options: BaseModel, raw: dict
) -> BaseModel:
    """LLM settings a step does not take that one of its options took over (self-instruct's ``limit`` is its
    ``max_prompts``): moved to that option, with a deprecation warning."""
    for setting in step.llm_exclude:
        if setting not in merged:
            continue
        value = merged.pop(setting)
        heir = next((o.name for o in step.opts if o.old == setting), None)
        if heir is None:
            continue
        where = own_loc + (setting,) if setting in own else (LLM_KEY, setting)
        check.warn(where, f"'{setting}' is deprecated for a {step.name} step: write '{heir}: {value}' in the step")
        if heir not in raw:
            options = options.model_copy(update={heir: value})
    return options


def _export(check: _Checker, raw: dict[str, Any], folder: Path, check_files: bool) -> BaseModel | None:
    raw = check.renamed(("export",), dict(raw), EXPORT.renamed())
    try:
        export = EXPORT.options.model_validate(raw)
    except ValidationError as exc:
        check.add_validation(("export",), exc, raw, list(EXPORT.options.model_fields))
        return None
    if export.tokenizer is not None and check_files and not (folder / Path(export.tokenizer).expanduser()).exists():
        message = f"{export.tokenizer}: no such file or folder (paths are relative to the recipe's folder {folder})"
        check.add(("export", "tokenizer"), message)
        return None
    line = check.located.key_line_of(("export",))
    return export if _library_check(check, ("export",), line, EXPORT.prepare, export, None, None, folder) else None


def _library_check(
    check: _Checker,
    loc: tuple,
    line: int,
    prepare: Any,
    options: BaseModel,
    llm: dict[str, Any] | None,
    prompts_dir: str | None,
    folder: Path,
) -> bool:
    """Let the step's library check its configuration (rule names, operations, thresholds, prompt files)."""
    try:
        settings = LLMSettings.resolve(**llm) if llm is not None else None
        prepare(options, Context(settings, prompts_dir, lambda value: _resolve(folder, value)))
    except ItkitError as exc:
        check.add(loc, str(exc), line=line)
        return False
    return True


def _llm_block(check: _Checker, loc: tuple, value: Any) -> dict[str, Any] | None:
    """The settings one ``llm:`` block gives (None when absent or invalid; problems go to ``check``)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        check.add(loc, f"'{LLM_KEY}' is a mapping of LLM settings, got {_type_word(value)}")
        return None
    for key in ("api_key", "api-key"):
        if key in value:
            check.add(
                loc + (key,),
                "an API key must not be written in a recipe (recipes end up in version control and run folders); "
                "set OPENAI_API_KEY in the environment",
            )
            return None
    for key in ("dry_run", "quiet"):
        if key in value:
            check.add(loc + (key,), f"'{key}' is an option of itkit run (--{key.replace('_', '-')}), not a recipe setting")
            return None
    try:
        block = LLMBlock.model_validate(value)
    except ValidationError as exc:
        check.add_validation(loc, exc, value, list(LLM_BLOCK_FIELDS))
        return None
    return {k: v for k, v in block.model_dump().items() if k in value and v is not None}


def _settings_valid(check: _Checker, merged: dict[str, Any], step_loc: tuple, own: dict[str, Any]) -> bool:
    """Check the merged settings with LLMSettings' own validators; the problem's line is where the value was set."""
    try:
        LLMSettings(**merged)
    except ValidationError as exc:
        for err in exc.errors():
            name = str(err["loc"][0]) if err["loc"] else ""
            where = step_loc + (name,) if name in own else (LLM_KEY, name)
            check.add(where, err["msg"].removeprefix("Value error, "))
        return False
    return True


__all__ = [
    "LLMBlock",
    "Recipe",
    "RecipeError",
    "RecipeModel",
    "SourceOptions",
    "SourceSpec",
    "StepSpec",
    "load_recipe",
]
