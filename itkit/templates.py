"""Prompt templates: YAML files under ``prompts/<method>/<name>.yaml``, loaded as validated data.

A template file::

    name: simplify
    version: 1
    description: Rewrite a response into a simpler, shorter one.
    variables: [instruction, response]
    sampling: {temperature: 0.2}          # optional defaults for this prompt
    data: {}                              # optional structured data (lists, tables)
    messages:
      - role: system
        content: You rewrite answers...
      - role: user
        content: |
          Instruction: {{instruction}}
          Answer: {{response}}

Placeholders are ``{{name}}``. Loading checks that the placeholders used are
exactly the declared variables; rendering checks that exactly the declared
variables are given, before any request. Rendering is one pass over the
template text: values are inserted verbatim and never scanned again, so braces,
``$``, ``%s`` or ``{{ }}`` inside data are not interpreted.

``--prompts-dir DIR`` overrides any template: ``DIR/<method>/<name>.yaml`` is
used instead of the built-in file when it exists.
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from itkit.errors import ItkitError
from itkit.llm.sampling_spec import SamplingSpec
from itkit.yaml_guard import YAMLProblem, load_yaml

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
HASH_LENGTH = 12


class PromptError(ItkitError):
    """A template file is missing or invalid, or rendering got the wrong variables."""


class TemplateMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "user", "assistant"]
    content: str


class PromptTemplate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    version: int | str
    description: str = ""
    variables: list[str] = Field(default_factory=list)
    sampling: SamplingSpec = Field(default_factory=SamplingSpec)
    """Checked strictly at load time (types, ranges, finite numbers): see :mod:`itkit.llm.sampling_spec`."""
    data: dict[str, Any] = Field(default_factory=dict)
    messages: list[TemplateMessage] = Field(min_length=1)

    # set by the loader
    path: str = ""
    hash: str = ""

    @property
    def ref(self) -> str:
        """``name@version#hash`` for provenance."""
        return f"{self.name}@{self.version}#{self.hash}"

    def placeholders(self) -> set[str]:
        return {m for msg in self.messages for m in PLACEHOLDER.findall(msg.content)}

    def check(self) -> None:
        used = self.placeholders()
        declared = set(self.variables)
        if len(declared) != len(self.variables):
            raise PromptError(f"{self.path}: 'variables' lists a name twice")
        if used - declared:
            raise PromptError(f"{self.path}: uses undeclared variables: {', '.join(sorted(used - declared))}")
        if declared - used:
            raise PromptError(f"{self.path}: declares variables it never uses: {', '.join(sorted(declared - used))}")

    def render(self, **values: Any) -> list[dict[str, str]]:
        """Chat messages with the values inserted verbatim."""
        given = set(values)
        declared = set(self.variables)
        if given != declared:
            parts = []
            if declared - given:
                parts.append(f"missing {', '.join(sorted(declared - given))}")
            if given - declared:
                parts.append(f"unknown {', '.join(sorted(given - declared))}")
            raise PromptError(f"template {self.name} ({self.path}): {'; '.join(parts)}")
        text = {k: "" if v is None else str(v) for k, v in values.items()}
        return [
            {"role": msg.role, "content": PLACEHOLDER.sub(lambda m: text[m.group(1)], msg.content)}
            for msg in self.messages
        ]


def builtin_prompts_dir() -> Path:
    """The shipped prompts: ``itkit/_prompts`` in a wheel, ``prompts/`` in a source tree."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_prompts", here.parent / "prompts"):
        if candidate.is_dir():
            return candidate
    raise PromptError("the built-in prompts folder is missing from this installation; reinstall itkit")


def template_path(method: str, name: str, prompts_dir: str | Path | None = None) -> Path:
    if prompts_dir is not None:
        override = Path(prompts_dir) / method / f"{name}.yaml"
        if override.is_file():
            return override
        if not Path(prompts_dir).is_dir():
            raise PromptError(f"--prompts-dir {prompts_dir}: no such folder")
    path = builtin_prompts_dir() / method / f"{name}.yaml"
    if not path.is_file():
        raise PromptError(f"no prompt template '{method}/{name}.yaml' (looked in {path.parent})")
    return path


M = TypeVar("M", bound=BaseModel)


def parse_prompt_file(raw: bytes, path: str, model: type[M], what: str) -> M:
    """The YAML mapping in ``raw`` validated as ``model``; errors name the file and the field.

    Shared by every data file under ``prompts/`` (templates, Orca's system messages and task table).
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PromptError(f"{path}: not UTF-8 (byte {exc.start})") from None
    try:
        data = load_yaml(text)
    except YAMLProblem as exc:
        where = f"{path}, line {exc.line}" if exc.line else path
        raise PromptError(f"{where}: {exc.message}") from None
    if not isinstance(data, dict):
        raise PromptError(f"{path}: {what} must be a YAML mapping")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        value = first.get("input")
        shown = f" (got {value!r})" if isinstance(value, (str, int, float, bool)) and "got " not in message else ""
        raise PromptError(f"{path}: field '{where}': {message}{shown}") from None


@lru_cache(maxsize=256)
def _load_file(path: str, mtime_ns: int, size: int) -> PromptTemplate:
    """Parse and validate a template file; cached per (path, mtime, size), so an edited file is read again."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise PromptError(f"{path}: cannot read: {exc.strerror or exc}") from None
    template = parse_prompt_file(raw, path, PromptTemplate, "a template")
    template.path = path
    template.hash = hashlib.sha256(raw).hexdigest()[:HASH_LENGTH]
    template.check()
    return template


def load_template(method: str, name: str, prompts_dir: str | Path | None = None) -> PromptTemplate:
    """The validated template ``<method>/<name>``, from ``prompts_dir`` when it overrides it."""
    path = template_path(method, name, prompts_dir)
    try:
        st = path.stat()
    except OSError as exc:
        raise PromptError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return _load_file(str(path), st.st_mtime_ns, st.st_size)


def load_template_file(path: str | Path) -> PromptTemplate:
    """The validated template in the file ``path`` (a user's own prompt file, e.g. ``--scorer-file``)."""
    file = Path(path)
    try:
        st = file.stat()
    except OSError as exc:
        raise PromptError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if not file.is_file():
        raise PromptError(f"{path}: not a file")
    return _load_file(str(file), st.st_mtime_ns, st.st_size)


def list_templates(method: str, prompts_dir: str | Path | None = None) -> list[str]:
    names = {p.stem for p in (builtin_prompts_dir() / method).glob("*.yaml")}
    if prompts_dir is not None:
        names |= {p.stem for p in (Path(prompts_dir) / method).glob("*.yaml")}
    return sorted(names)
