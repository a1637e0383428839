"""The settings of an LLM run: model, endpoint, sampling, limits, cache, cost.

Precedence: explicit options, then the environment (``OPENAI_API_KEY``,
``OPENAI_BASE_URL``), then the defaults below. The API key is a
:class:`~pydantic.SecretStr`: it prints as ``**********`` and
:meth:`LLMSettings.redacted` never contains it, so summaries and logs built
from the settings cannot leak it.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from itkit.errors import UsageError
from itkit.llm.base import Sampling
from itkit.llm.secrets import REDACTED, check_api_key, mask_url

ENV_API_KEY = "OPENAI_API_KEY"
ENV_BASE_URL = "OPENAI_BASE_URL"

DEFAULT_MODEL = "gpt-4o-mini"
DEFAULT_TIMEOUT = 120.0
"""Seconds one request may take before it is abandoned and retried."""
DEFAULT_MAX_RETRIES = 6
"""Retries per request after the first try (transient errors and rejected responses)."""
DEFAULT_CONCURRENCY = 16
"""Requests in flight at once."""
SEED_MIN, SEED_MAX = -(2**63), 2**63 - 1
"""The range of --seed (and the most of any count): a 64-bit integer, as OpenAI-compatible servers take it."""

# field -> option name, for error messages
OPTION_NAMES = {
    "model": "--model",
    "base_url": "--base-url",
    "api_key": "--api-key",
    "temperature": "--temperature",
    "top_p": "--top-p",
    "max_tokens": "--max-tokens",
    "seed": "--seed",
    "timeout": "--timeout",
    "max_retries": "--max-retries",
    "concurrency": "--concurrency",
    "rpm": "--rpm",
    "tpm": "--tpm",
    "cache_dir": "--cache-dir",
    "no_cache": "--no-cache",
    "price_in": "--price-in",
    "price_out": "--price-out",
    "quiet": "--quiet",
    "dry_run": "--dry-run",
    "limit": "--limit",
}


class LLMSettings(BaseModel):
    """Everything the engine needs to know about one run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = DEFAULT_MODEL
    base_url: str | None = None
    api_key: SecretStr | None = None
    temperature: float | None = Field(default=None, ge=0, le=2, allow_inf_nan=False)
    top_p: float | None = Field(default=None, gt=0, le=1, allow_inf_nan=False)
    max_tokens: int | None = Field(default=None, ge=1, le=SEED_MAX)
    seed: int | None = Field(default=None, ge=SEED_MIN, le=SEED_MAX)
    timeout: float = Field(default=DEFAULT_TIMEOUT, gt=0, allow_inf_nan=False)
    max_retries: int = Field(default=DEFAULT_MAX_RETRIES, ge=0, le=SEED_MAX)
    concurrency: int = Field(default=DEFAULT_CONCURRENCY, ge=1, le=SEED_MAX)
    rpm: int | None = Field(default=None, ge=1, le=SEED_MAX)
    tpm: int | None = Field(default=None, ge=1, le=SEED_MAX)
    cache_dir: str | None = None
    no_cache: bool = False
    price_in: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    price_out: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    quiet: bool = False
    dry_run: bool = False
    limit: int | None = Field(default=None, ge=1, le=SEED_MAX)

    @field_validator("model")
    @classmethod
    def _model_given(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value.strip()

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        scheme, sep, rest = value.partition("://")
        if not sep or scheme.lower() not in ("http", "https"):
            raise ValueError("must start with http:// or https://")
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - a bad port raises here, not at the first request
        except ValueError as exc:
            raise ValueError(f"is not a valid URL ({exc})") from None
        if not parts.hostname:
            raise ValueError("names no host (expected e.g. http://localhost:8000/v1)")
        return f"{scheme.lower()}://{rest}".rstrip("/")

    @field_validator("api_key")
    @classmethod
    def _key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        key = value.get_secret_value().strip()
        problem = check_api_key(key)
        if problem:
            raise ValueError(problem)
        return SecretStr(key)

    # ---- construction ---------------------------------------------------
    @classmethod
    def resolve(cls, env: dict[str, str] | None = None, **options: Any) -> "LLMSettings":
        """Settings from options (None = not given), then the environment, then defaults.

        A bad value raises :class:`UsageError` naming the option.
        """
        environ = os.environ if env is None else env
        values = {k: v for k, v in options.items() if v is not None}
        from_env: dict[str, str] = {}
        for name, variable in (("api_key", ENV_API_KEY), ("base_url", ENV_BASE_URL)):
            if name not in values and environ.get(variable):
                values[name] = environ[variable]
                from_env[name] = variable
        try:
            return cls(**values)
        except ValidationError as exc:
            first = exc.errors()[0]
            name = str(first["loc"][0]) if first["loc"] else ""
            option = from_env.get(name) or OPTION_NAMES.get(name, name)
            message = first["msg"].removeprefix("Value error, ")
            if first["type"] == "extra_forbidden":
                raise UsageError(f"unknown LLM setting '{name}'") from None
            # never echo the key, nor the credentials of a URL
            value = first.get("input")
            if name == "api_key":
                shown = ""
            elif isinstance(value, str):
                shown = f" (got {mask_url(value)!r})"
            else:
                shown = f" (got {value!r})"
            raise UsageError(f"{option}: {message}{shown}") from None

    # ---- views ------------------------------------------------------------
    def sampling(self) -> Sampling:
        """The sampling options given for this run (None where not given)."""
        return Sampling(temperature=self.temperature, top_p=self.top_p, max_tokens=self.max_tokens, seed=self.seed)

    @property
    def endpoint(self) -> str:
        """The endpoint for messages: the base URL without any password, or OpenAI's."""
        return mask_url(self.base_url) if self.base_url else "https://api.openai.com/v1"

    def key_value(self) -> str | None:
        return self.api_key.get_secret_value() if self.api_key is not None else None

    def redacted(self) -> dict[str, Any]:
        """The settings as plain data with the API key replaced, for summaries and logs."""
        data = self.model_dump(mode="json")
        data["api_key"] = REDACTED if self.api_key is not None else None
        if self.base_url:
            data["base_url"] = mask_url(self.base_url)
        return data

    def __repr__(self) -> str:  # pydantic's repr already masks SecretStr; keep it explicit
        return f"LLMSettings({self.redacted()!r})"

    __str__ = __repr__


