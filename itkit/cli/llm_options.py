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

from itkit.llm.settings import (
    DEFAULT_CONCURRENCY,
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

# setting name -> (annotation); every option is None when not given, so the environment and defaults apply
_OPTIONS: dict[str, Any] = {
    "model": Annotated[
        Optional[str],
        typer.Option("--model", help=f"Model name as the endpoint knows it (default: {DEFAULT_MODEL}).", rich_help_panel=PANEL),
    ],
    "base_url": Annotated[
        Optional[str],
        typer.Option(
            "--base-url",
            help=f"OpenAI-compatible endpoint, e.g. http://localhost:8000/v1 (vLLM) or http://localhost:11434/v1 (Ollama) (env: {ENV_BASE_URL}; default: OpenAI).",
            rich_help_panel=PANEL,
            show_default=False,
        ),
    ],
    "api_key": Annotated[
        Optional[str],
        typer.Option(
            "--api-key",
            help=f"API key (env: {ENV_API_KEY}; prefer the environment: options show in process lists). Never written anywhere.",
            rich_help_panel=PANEL,
            show_default=False,
        ),
    ],
    "temperature": Annotated[
        Optional[float],
        typer.Option("--temperature", help="Sampling temperature (default: the prompt template's).", rich_help_panel=PANEL, show_default=False),
    ],
    "top_p": Annotated[
        Optional[float],
        typer.Option("--top-p", help="Nucleus sampling top_p (default: the template's or the server's).", rich_help_panel=PANEL, show_default=False),
    ],
    "max_tokens": Annotated[
        Optional[int],
        typer.Option("--max-tokens", help="Maximum completion tokens per request (default: the template's or the server's).", rich_help_panel=PANEL, show_default=False),
    ],
    "seed": Annotated[
        Optional[int],
        typer.Option("--seed", help="Sampling seed sent to the model (and the seed of a method's random choices).", rich_help_panel=PANEL, show_default=False),
    ],
    "timeout": Annotated[
        Optional[float],
        typer.Option("--timeout", help=f"Seconds per request before it is abandoned and retried (default: {DEFAULT_TIMEOUT:g}).", rich_help_panel=PANEL, show_default=False),
    ],
    "max_retries": Annotated[
        Optional[int],
        typer.Option("--max-retries", help=f"Retries per request (429, 5xx, timeouts, dropped connections, empty/cut-off/invalid responses) (default: {DEFAULT_MAX_RETRIES}).", rich_help_panel=PANEL, show_default=False),
    ],
    "concurrency": Annotated[
        Optional[int],
        typer.Option("--concurrency", "-j", help=f"Requests in flight at once (default: {DEFAULT_CONCURRENCY}).", rich_help_panel=PANEL, show_default=False),
    ],
    "rpm": Annotated[
        Optional[int],
        typer.Option("--rpm", help="Rate limit: requests per minute.", rich_help_panel=PANEL, show_default=False),
    ],
    "tpm": Annotated[
        Optional[int],
        typer.Option("--tpm", help="Rate limit: tokens per minute (prompt tokens by tiktoken plus max_tokens).", rich_help_panel=PANEL, show_default=False),
    ],
    "cache_dir": Annotated[
        Optional[str],
        typer.Option("--cache-dir", help="Folder of the response cache (default: $ITKIT_HOME or the user cache folder).", rich_help_panel=PANEL, show_default=False),
    ],
    "no_cache": Annotated[
        bool,
        typer.Option("--no-cache", help="Neither read nor write the response cache (a re-run sends everything again).", rich_help_panel=PANEL),
    ],
    "price_in": Annotated[
        Optional[float],
        typer.Option("--price-in", help="Dollars per 1M prompt tokens for the cost estimate (default: built-in table).", rich_help_panel=PANEL, show_default=False),
    ],
    "price_out": Annotated[
        Optional[float],
        typer.Option("--price-out", help="Dollars per 1M completion tokens for the cost estimate (default: built-in table).", rich_help_panel=PANEL, show_default=False),
    ],
    "dry_run": Annotated[
        bool,
        typer.Option("--dry-run", help="Show sample prompts, tokens and cost; send nothing, write nothing.", rich_help_panel=PANEL_CONTROL),
    ],
    "limit": Annotated[
        Optional[int],
        typer.Option("--limit", help="Process only the first N records.", rich_help_panel=PANEL_CONTROL, show_default=False),
    ],
    "quiet": Annotated[
        bool,
        typer.Option("--quiet", "-q", help="No progress bar or summary on stderr.", rich_help_panel=PANEL_CONTROL),
    ],
}
PromptsDir = Annotated[
    Optional[str],
    typer.Option(
        "--prompts-dir",
        help="Folder whose <method>/<name>.yaml files override the built-in prompt templates.",
        rich_help_panel=PANEL,
        show_default=False,
    ),
]
_BOOLEAN_DEFAULTS = {"no_cache": False, "dry_run": False, "quiet": False}


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
    return Annotated[
        Optional[int],
        typer.Option(
            "--seed",
            help="Sampling seed sent to the model, and the seed of the method's random choices.",
            rich_help_panel=PANEL,
            show_default=default if default is not None else False,
        ),
    ]


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
    return LLMSettings.resolve(**values), prompts_dir


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
