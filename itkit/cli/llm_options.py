"""The options every LLM command shares, defined once.

Decorate a command (under ``@handle_errors``) with :func:`llm_options`; it adds
the engine options to the command line and calls the function with one
``settings: LLMSettings`` (options > environment > defaults) and
``prompts_dir``::

    @app.command()
    @handle_errors
    @llm_options
    def simplify(src: Source, output: Output = "-", *, settings: LLMSettings, prompts_dir: str | None) -> int:
        ...
"""

from __future__ import annotations

import functools
import inspect
from typing import Annotated, Any, Callable, Optional

import typer

from itkit.llm.discovery import discover_model
from itkit.llm.settings import (
    DEFAULT_CONCURRENCY,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MAX_OUTAGE,
    DEFAULT_MAX_RETRY_AFTER,
    DEFAULT_MAX_RETRIES,
    DEFAULT_MODEL,
    DEFAULT_TIMEOUT,
    ENV_API_KEY,
    ENV_BASE_URL,
    LLMSettings,
)

from itkit.steps.spec import PANEL_CONTROL, PANEL_LLM

PANEL = PANEL_LLM
PREFIX = "llm_"
"""The added parameters are named llm_<setting> so they never clash with a command's own."""



def _opt(flag: str, help: str, metavar: str = "", *short: str, panel: str = PANEL, kind: Any = None) -> Any:
    """One engine option: None when not given (so the environment and the defaults apply)."""
    return Annotated[
        kind or Optional[str],
        typer.Option(flag, *short, help=help, metavar=metavar, rich_help_panel=panel, show_default=False),
    ]


# setting name -> annotation, most used first
_OPTIONS: dict[str, Any] = {
    "model": _opt("--model", f"Model name as the endpoint knows it.  \\[default: {DEFAULT_MODEL}]", "NAME"),
    "base_url": _opt(
        "--base-url", f"OpenAI-compatible endpoint (vLLM, Ollama...; env {ENV_BASE_URL}); repeat for several servers of "
        "one model.  \\[default: OpenAI]", "URL", kind=Optional[list[str]],
    ),
    "api_key": _opt("--api-key", f"API key; prefer the environment ({ENV_API_KEY}). Never written anywhere.", "KEY"),
    "temperature": _opt(
        "--temperature", "Sampling temperature.  \\[default: the template's]", "X", kind=Optional[float]
    ),
    "top_p": _opt("--top-p", "Nucleus sampling top_p.  \\[default: the template's]", "X", kind=Optional[float]),
    "max_tokens": _opt(
        "--max-tokens", "Completion tokens per request at most.  \\[default: the template's]", "N", kind=Optional[int]
    ),
    "seed": _opt("--seed", "Sampling seed sent to the model, and the seed of the method.", "N", kind=Optional[int]),
    "concurrency": _opt(
        "--concurrency", f"Most requests in flight per server; the engine adapts below it.  \\[default: {DEFAULT_CONCURRENCY}]",
        "N", "-j", kind=Optional[int],
    ),
    "no_adapt": _opt("--no-adapt", "Keep --concurrency in flight instead of adapting (for benchmarks).", kind=bool),
    "rpm": _opt("--rpm", "Rate limit: requests per minute.", "N", kind=Optional[int]),
    "tpm": _opt("--tpm", "Rate limit: tokens per minute (prompt + max_tokens).", "N", kind=Optional[int]),
    "timeout": _opt(
        "--timeout", f"Seconds one attempt may take in all before a retry.  \\[default: {DEFAULT_TIMEOUT:g}]", "SECONDS",
        kind=Optional[float],
    ),
    "connect_timeout": _opt(
        "--connect-timeout", f"Seconds for the server to accept a connection.  \\[default: {DEFAULT_CONNECT_TIMEOUT:g}]",
        "SECONDS", kind=Optional[float],
    ),
    "max_outage": _opt(
        "--max-outage", "Seconds a server that answered before may stay unreachable (paused, probed) before the run "
        f"stops with exit 1.  \\[default: {DEFAULT_MAX_OUTAGE:g}]", "SECONDS", kind=Optional[float],
    ),
    "max_retry_after": _opt(
        "--max-retry-after", f"Longest Retry-After or rate-limit reset honoured.  \\[default: {DEFAULT_MAX_RETRY_AFTER:g}]",
        "SECONDS", kind=Optional[float],
    ),
    "max_retries": _opt(
        "--max-retries", f"Retries per request (429, 5xx, timeouts, bad answers).  \\[default: {DEFAULT_MAX_RETRIES}]",
        "N", kind=Optional[int],
    ),
    "cache_dir": _opt("--cache-dir", "Response cache folder.  \\[default: $ITKIT_HOME or the user cache]", "DIR"),
    "no_cache": _opt("--no-cache", "Neither read nor write the response cache.", kind=bool),
    "cache_endpoint": _opt("--cache-endpoint", "Key the cache on this name, not the endpoint URL (mirrors).", "NAME"),
    "drop_params": _opt("--drop-param", "A request field never to send (presence_penalty); NAME@URL: one endpoint's only; repeatable.", "NAME",
                        kind=Optional[list[str]]),
    "rename_params": _opt("--rename-param", "OLD=NEW: send a request field under another name; OLD=NEW@URL: one endpoint's only; repeatable.", "OLD=NEW",
                          kind=Optional[list[str]]),
    "price_in": _opt("--price-in", "Dollars per 1M prompt tokens.  \\[default: built-in table]", "USD", kind=Optional[float]),
    "price_out": _opt(
        "--price-out", "Dollars per 1M completion tokens.  \\[default: built-in table]", "USD", kind=Optional[float]
    ),
    "dry_run": _opt(
        "--dry-run", "Show sample prompts, tokens and cost; send and write nothing.", panel=PANEL_CONTROL, kind=bool
    ),
    "limit": _opt("--limit", "Process only the first N records.", "N", panel=PANEL_CONTROL, kind=Optional[int]),
    "quiet": _opt("--quiet", "No progress or summary on stderr.", "", "-q", panel=PANEL_CONTROL, kind=bool),
}
PromptsDir = Annotated[
    Optional[str],
    typer.Option(
        "--prompts-dir",
        help="Folder of <method>/<name>.yaml files that override the built-in prompts.",
        metavar="DIR",
        rich_help_panel=PANEL,
        show_default=False,
    ),
]
_BOOLEAN_DEFAULTS = {"no_cache": False, "dry_run": False, "quiet": False, "no_adapt": False}


def _declared_options(param: inspect.Parameter) -> set[str]:
    """The option names a command parameter declares (from Annotated metadata or a typer.Option default)."""
    infos = list(getattr(param.annotation, "__metadata__", ())) + [param.default]
    names: set[str] = set()
    for info in infos:
        decls = getattr(info, "param_decls", None) or ()
        default = getattr(info, "default", None)
        if isinstance(default, str) and default.startswith("-"):
            names.add(default)
        names.update(d for d in decls if isinstance(d, str))
    if not names:
        names.add("--" + param.name.replace("_", "-"))
    return names


def _seed(default: str | None) -> Any:
    text = "Sampling seed sent to the model, and the seed of the method's random choices."
    if default is not None:
        text += f"  \\[default: {default}]"
    return _opt("--seed", text, "N", kind=Optional[int])


def llm_parameters(exclude: tuple[str, ...] = (), seed_default: str | None = None) -> list[inspect.Parameter]:
    """The engine options (but ``exclude``) and --prompts-dir, as keyword-only parameters ``llm_<setting>``."""
    added = [
        inspect.Parameter(
            PREFIX + name,
            inspect.Parameter.KEYWORD_ONLY,
            default=_BOOLEAN_DEFAULTS.get(name),
            annotation=_seed(seed_default) if name == "seed" else annotation,
        )
        for name, annotation in _OPTIONS.items()
        if name not in exclude
    ]
    added.append(inspect.Parameter("prompts_dir", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=PromptsDir))
    return added


def llm_settings(kwargs: dict[str, Any], exclude: tuple[str, ...] = ()) -> tuple[LLMSettings, str | None]:
    """Pop the engine options from ``kwargs``: the settings (options > environment > defaults) and prompts_dir."""
    values = {name: kwargs.pop(PREFIX + name, None) for name in _OPTIONS if name not in exclude}
    prompts_dir = kwargs.pop("prompts_dir", None)
    return discover_model(LLMSettings.resolve(**values)), prompts_dir


def llm_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Add the engine options to a Typer command; call it with ``settings=`` and ``prompts_dir=``."""
    signature = inspect.signature(fn, eval_str=True)
    own = [p for name, p in signature.parameters.items() if name not in ("settings", "prompts_dir")]
    if "settings" not in signature.parameters or "prompts_dir" not in signature.parameters:
        raise TypeError(f"{fn.__name__}: an @llm_options command takes 'settings' and 'prompts_dir' parameters")
    ours = {"--" + n.replace("_", "-") for n in _OPTIONS} | {"-j", "-q", "--prompts-dir"}
    for param in own:
        clash = _declared_options(param) & ours
        if clash:
            raise TypeError(f"{fn.__name__}: option {', '.join(sorted(clash))} is already an LLM engine option")
    new_signature = signature.replace(parameters=[*own, *llm_parameters()])

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        settings, prompts_dir = llm_settings(kwargs)
        return fn(*args, settings=settings, prompts_dir=prompts_dir, **kwargs)

    wrapper.__signature__ = new_signature  # type: ignore[attr-defined]
    wrapper.__annotations__ = {
        **{p.name: p.annotation for p in new_signature.parameters.values()},
        "return": signature.return_annotation,
    }
    return wrapper


__all__ = ["PromptsDir", "llm_options", "llm_parameters", "llm_settings"]
