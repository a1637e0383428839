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

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, ValidationInfo, field_validator, model_validator

from itkit.errors import UsageError
from itkit.llm.base import Sampling
from itkit.llm.secrets import REDACTED, check_api_key, mask_url

ENV_API_KEY = "OPENAI_API_KEY"
ENV_BASE_URL = "OPENAI_BASE_URL"

OPENAI_URL = "https://api.openai.com/v1"
DEFAULT_MODEL = "gpt-4o-mini"
DEFAULT_TIMEOUT = 120.0
"""Seconds one request may take before it is abandoned and retried."""
DEFAULT_MAX_RETRIES = 6
"""Retries per request after the first try (transient errors and rejected responses)."""
DEFAULT_CONCURRENCY = 64
"""The most requests in flight at once per endpoint (the engine adapts below it unless --no-adapt)."""
DEFAULT_CONNECT_TIMEOUT = 10.0
"""Seconds to wait for a connection to be accepted."""
DEFAULT_MAX_OUTAGE = 300.0
"""Seconds an endpoint that answered before may stay unreachable before the run stops."""
DEFAULT_MAX_RETRY_AFTER = 120.0
"""Seconds: the longest Retry-After (or rate-limit reset) honoured; a longer one waits this long."""
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
    "no_adapt": "--no-adapt",
    "connect_timeout": "--connect-timeout",
    "max_outage": "--max-outage",
    "max_retry_after": "--max-retry-after",
    "extra_base_urls": "--base-url",
    "cache_endpoint": "--cache-endpoint",
    "drop_params": "--drop-param",
    "rename_params": "--rename-param",
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
    no_adapt: bool = False
    connect_timeout: float = Field(default=DEFAULT_CONNECT_TIMEOUT, gt=0)
    max_outage: float = Field(default=DEFAULT_MAX_OUTAGE, ge=0)
    max_retry_after: float = Field(default=DEFAULT_MAX_RETRY_AFTER, ge=0)
    extra_base_urls: tuple[str, ...] = ()
    """More endpoints serving the same model (``--base-url`` repeated): requests are spread over all."""
    cache_endpoint: str | None = None
    """Key the cache on this name instead of the endpoint URL (endpoints that are mirrors of one model)."""
    drop_params: tuple[str, ...] = ()
    """Request fields never sent (a server that rejects or ignores them): ``--drop-param presence_penalty``."""
    rename_params: tuple[str, ...] = ()
    """``OLD=NEW``: request fields sent under another name (``--rename-param max_tokens=max_completion_tokens``)."""
    model_given: bool = True
    """False when ``model`` is the default, not the user's: a local server is asked for its model."""
    rpm: int | None = Field(default=None, ge=1, le=SEED_MAX)
    tpm: int | None = Field(default=None, ge=1, le=SEED_MAX)
    cache_dir: str | None = None
    no_cache: bool = False
    price_in: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    price_out: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    quiet: bool = False
    dry_run: bool = False
    limit: int | None = Field(default=None, ge=1, le=SEED_MAX)

    @model_validator(mode="before")
    @classmethod
    def _several_urls(cls, data: Any) -> Any:
        """``base_url`` as a list (``--base-url`` repeated, a recipe's list): the first, and the others."""
        if isinstance(data, dict) and isinstance(data.get("base_url"), (list, tuple)):
            urls = [u for u in data["base_url"] if isinstance(u, str) and u.strip()] or [None]
            data = {**data, "base_url": urls[0], "extra_base_urls": tuple(urls[1:])}
        return data

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

    @field_validator("extra_base_urls")
    @classmethod
    def _urls(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(u for u in (cls._url(v) for v in values) if u)

    @field_validator("drop_params")
    @classmethod
    def _drops(cls, values: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        out = []
        for value in values:
            name, url = scoped(value)
            if not name.strip():
                raise ValueError(f"give NAME or NAME@URL, got {mask_url(value)!r}")
            out.append(name.strip() + (f"@{cls._known_endpoint(value, url, info)}" if url else ""))
        return tuple(out)

    @field_validator("rename_params")
    @classmethod
    def _renames(cls, values: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        out = []
        for value in values:
            pair, url = scoped(value)
            old, sep, new = pair.partition("=")
            if not sep or not old.strip() or not new.strip():
                raise ValueError(f"give OLD=NEW or OLD=NEW@URL, got {mask_url(value)!r}")
            out.append(pair.replace(" ", "") + (f"@{cls._known_endpoint(value, url, info)}" if url else ""))
        return tuple(out)

    @classmethod
    def _known_endpoint(cls, value: str, url: str, info: ValidationInfo) -> str:
        """The endpoint a ``NAME@URL`` value is scoped to: one of the run's (``base_url`` is checked before)."""
        url = cls._url(url) or ""
        urls = (info.data.get("base_url"), *info.data.get("extra_base_urls", ()))
        if endpoint_identity(url) not in {endpoint_identity(u or OPENAI_URL) for u in urls}:
            shown = ", ".join(sorted({mask_url(u or OPENAI_URL) for u in urls}))
            raise ValueError(f"{mask_url(value)!r} names an endpoint this run does not use (endpoints: {shown})")
        return url

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
        values = {k: v for k, v in options.items() if v is not None and not (isinstance(v, (list, tuple)) and not v)}
        from_env: dict[str, str] = {}
        for name, variable in (("api_key", ENV_API_KEY), ("base_url", ENV_BASE_URL)):
            if name not in values and environ.get(variable):
                values[name] = environ[variable]
                from_env[name] = variable
        values.setdefault("model_given", "model" in values)
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
            if name in ("api_key", "") or name in ("drop_params", "rename_params"):  # "": the whole input, key included
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

    def adapt_body(self, body: dict[str, Any], base_url: str | None = None) -> dict[str, Any]:
        """A request body for the endpoint ``base_url`` (None: the first) with ``drop_params`` left out and
        ``rename_params`` renamed: those without ``@URL`` everywhere, the others on their endpoint only."""
        if not self.drop_params and not self.rename_params:
            return body
        here = endpoint_identity(base_url or self.base_url or OPENAI_URL)

        def applies(url: str | None) -> bool:
            return url is None or endpoint_identity(url) == here

        drops = {name for name, url in map(scoped, self.drop_params) if applies(url)}
        out = {k: v for k, v in body.items() if k not in drops}
        for pair, url in map(scoped, self.rename_params):
            old, _, new = pair.partition("=")
            if applies(url) and old in out:
                out[new] = out.pop(old)
        return out

    @property
    def base_urls(self) -> tuple[str | None, ...]:
        """Every endpoint of the run (None: OpenAI's)."""
        return (self.base_url, *self.extra_base_urls)

    @property
    def is_openai(self) -> bool:
        """The run talks to OpenAI itself (its price table and model names apply)."""
        return all(url is None or urlsplit(url).hostname == "api.openai.com" for url in self.base_urls)

    @property
    def cache_scope(self) -> str:
        """The endpoint part of the cache key: ``--cache-endpoint``, else every endpoint's scheme, host, port and path."""
        scope = self.cache_endpoint or " ".join(sorted({endpoint_identity(url or OPENAI_URL) for url in self.base_urls}))
        if self.drop_params or self.rename_params:  # what is sent differs: so may the answer
            scope += f" drop={','.join(sorted(self.drop_params))} rename={','.join(sorted(self.rename_params))}"
        return scope

    @property
    def endpoint(self) -> str:
        """The endpoint for messages: the base URL without any password, or OpenAI's."""
        return mask_url(self.base_url) if self.base_url else OPENAI_URL

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


def scoped(value: str) -> tuple[str, str | None]:
    """``NAME@URL`` -> (NAME, URL); a value without ``@http://`` or ``@https://`` applies to every endpoint."""
    lowered = value.lower()
    ats = [at for at in (lowered.find("@http://"), lowered.find("@https://")) if at >= 0]
    if not ats:
        return value, None
    return value[: min(ats)], value[min(ats) + 1 :]


def endpoint_identity(url: str) -> str:
    """``scheme://host:port/path`` of an endpoint URL (no credentials, query or fragment), lower-cased host."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or (443 if scheme == "https" else 80)
    return f"{scheme}://{(parts.hostname or '').lower()}:{port}{parts.path.rstrip('/')}"


def shown_url(url: str) -> str:
    """``url`` as messages may show it (credentials and secret query values masked)."""
    return mask_url(url)
