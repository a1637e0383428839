"""A scorer: a prompt file under ``prompts/score/`` (or the user's own) that asks a judge for one number.

A scorer file is an ordinary prompt template (:mod:`itkit.templates`) whose ``data`` gives the scale::

    name: quality            # the key of the score in metadata["scores"]
    version: 1
    variables: [conversation, instruction, response]
    sampling: {temperature: 0, max_tokens: 256}
    data: {min_score: 1, max_score: 5}
    messages: [...]

The variables a scorer may use: ``instruction`` (the last user turn with its input, as the model sees
it), ``response`` (the final assistant turn), ``conversation`` (the earlier turns, as a block of text,
empty for a single exchange) and ``system`` (the system prompt, or empty). A record the scorer has
nothing to judge in (no response, for a scorer that uses ``response``; an empty instruction) is not
sent to it: it keeps no score of that name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from itkit.errors import UsageError
from itkit.llm.base import ChatResponse, Sampling
from itkit.llm.responses import sampling_from
from itkit.methods.score.parse import Judgement, parse_score
from itkit.records import Record
from itkit.simplify_prompt import needs_simplifying, prompt_variables
from itkit.templates import PromptError, PromptTemplate, builtin_prompts_dir, load_template, load_template_file

METHOD = "score"
"""The folder of the scorer files (``prompts/score/``) and the provenance step's method."""
VARIABLES = ("conversation", "instruction", "response", "system")
"""What a scorer's template may show of a record."""
NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
"""A scorer's name: the key in ``metadata["scores"]``, written ``--min-score NAME=X``."""
NO_RESPONSE = "no response to judge"
EMPTY_INSTRUCTION = "empty instruction"


class ScaleData(BaseModel):
    """A scorer file's ``data``: the lowest and highest score the judge may give."""

    model_config = ConfigDict(extra="forbid", strict=True)

    min_score: int | float
    max_score: int | float

    @model_validator(mode="after")
    def _ordered(self) -> "ScaleData":
        if not self.min_score < self.max_score:
            raise ValueError(f"min_score ({self.min_score}) must be below max_score ({self.max_score})")
        return self


@dataclass(frozen=True)
class Scorer:
    """One validated scorer: its template, its scale, its sampling."""

    template: PromptTemplate
    low: float
    high: float
    sampling: Sampling

    @property
    def name(self) -> str:
        return self.template.name

    def skip_reason(self, record: Record) -> str | None:
        """Why ``record`` is not sent to this scorer (None: it is)."""
        used = set(self.template.variables)
        if "response" in used and not needs_simplifying(record):
            return NO_RESPONSE
        if "instruction" in used and not record.prompt.strip():
            return EMPTY_INSTRUCTION
        return None

    def messages(self, record: Record) -> list[dict[str, str]]:
        values: dict[str, Any] = {**prompt_variables(record), "system": record.system or ""}
        return self.template.render(**{name: values[name] for name in self.template.variables})

    def parse(self, response: ChatResponse) -> Judgement:
        return parse_score(response.text, self.low, self.high, response.finish_reason)

    def provenance(self, judgement: Judgement, model: str) -> dict[str, Any]:
        return {
            "method": METHOD,
            "scorer": self.name,
            "score": judgement.score,
            "model": model,
            "template": self.template.ref,
            "template_hash": self.template.hash,
        }


def scorer_from(template: PromptTemplate) -> Scorer:
    """Check a loaded template as a scorer (name, variables, scale)."""
    where = template.path
    if not NAME.match(template.name):
        raise PromptError(f"{where}: field 'name': a scorer's name is letters, digits, '_' and '-' (got {template.name!r})")
    unknown = [v for v in template.variables if v not in VARIABLES]
    if unknown:
        raise PromptError(f"{where}: field 'variables': unknown {', '.join(unknown)}; a scorer may use {', '.join(VARIABLES)}")
    if not {"instruction", "response"} & set(template.variables):
        raise PromptError(f"{where}: field 'variables': a scorer must show the instruction or the response")
    try:
        scale = ScaleData.model_validate(template.data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        raise PromptError(f"{where}: field 'data{'.' + field if field else ''}': {message}") from None
    sampling = sampling_from(template.sampling, f"{where}: sampling")
    return Scorer(template, float(scale.min_score), float(scale.max_score), sampling)


def builtin_scorers(prompts_dir: str | Path | None = None) -> list[str]:
    """The scorer names ``--scorer`` knows: the shipped ones and those in ``prompts_dir/score/``."""
    names = {p.stem for p in (builtin_prompts_dir() / METHOD).glob("*.yaml")}
    if prompts_dir is not None:
        names |= {p.stem for p in (Path(prompts_dir) / METHOD).glob("*.yaml")}
    return sorted(names)


def load_scorer(name: str, prompts_dir: str | Path | None = None) -> Scorer:
    """The scorer ``name``: ``prompts_dir/score/<name>.yaml`` when it exists, else the shipped one."""
    if not NAME.match(name) or name not in builtin_scorers(prompts_dir):
        known = ", ".join(builtin_scorers(prompts_dir))
        raise UsageError(f"no scorer '{name}'; known: {known} (or a prompt file of one's own: load_scorer_file)")
    scorer = scorer_from(load_template(METHOD, name, prompts_dir))
    if scorer.name != name:
        raise PromptError(f"{scorer.template.path}: field 'name': the file of scorer '{name}' names itself '{scorer.name}'")
    return scorer


def load_scorer_file(path: str | Path) -> Scorer:
    """The scorer in a prompt file of one's own (``--scorer-file``)."""
    return scorer_from(load_template_file(path))


def load_scorers(names: list[str], files: list[str], prompts_dir: str | Path | None = None) -> list[Scorer]:
    """The scorers by name then by file, each name once."""
    scorers = [load_scorer(n, prompts_dir) for n in dict.fromkeys(names)] + [load_scorer_file(f) for f in files]
    seen: dict[str, Scorer] = {}
    for scorer in scorers:
        if scorer.name in seen:
            raise UsageError(
                f"two scorers are named '{scorer.name}' ({seen[scorer.name].template.path} and {scorer.template.path}); "
                "a score is stored under its scorer's name"
            )
        seen[scorer.name] = scorer
    return scorers


__all__ = ["METHOD", "VARIABLES", "Scorer", "builtin_scorers", "load_scorer", "load_scorer_file", "load_scorers", "scorer_from"]
