"""The root Typer app, the console objects and the one place errors become exit codes."""

from __future__ import annotations

import errno
import functools
import io
import os
import sys
import traceback
from typing import Callable, TypeVar

import typer
from rich.console import Console

import itkit
from itkit import notices
from itkit.errors import EXIT_FATAL, ItkitError
from itkit.interrupts import EXIT_BROKEN_PIPE, Terminated, exit_code_of, terminating_signals

DEBUG_ENV = "ITKIT_DEBUG"

app = typer.Typer(
    name="itkit",
    no_args_is_help=True,
    add_completion=False,
    # never print rich tracebacks with local variables: they could show an API key
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

class _Console(Console):
    """rich's Console, but a closed pipe raises BrokenPipeError (exit 141 at the edge) instead of SystemExit(1)."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError(32, "Broken pipe")


# progress, summaries and errors go to stderr; data goes to stdout
err_console = _Console(stderr=True, highlight=False, soft_wrap=True)
out_console = _Console(highlight=False, soft_wrap=True)

F = TypeVar("F", bound=Callable)

# Typer's own exits and usage errors pass through untouched. Typer >= 0.25 ships its own copy of
# click, so its classes are not click's: list both (typer.BadParameter's base is the usage error).
@functools.lru_cache(maxsize=1)
def _framework_exceptions() -> tuple[type[BaseException], ...]:
    found: list[type[BaseException]] = [typer.Exit, typer.Abort]
    found += [c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException"]
    try:  # click itself, when installed (older Typer uses it directly)
        import click

        found += [click.exceptions.Exit, click.exceptions.ClickException, click.exceptions.Abort]
    except ImportError:
        pass
    return tuple(dict.fromkeys(found))



def error_line(message: str, kind: str = "error") -> None:
    """One plain line on stderr (no markup: messages quote user data); ``kind`` error or warning."""
    sys.stderr.write(f"itkit: {kind}: {message}\n")
    sys.stderr.flush()


def handle_errors(fn: F) -> F:
    """Translate library errors into one line on stderr and an exit code.

    A command may return an int exit code (e.g. 3 when some records failed).
    Set ITKIT_DEBUG=1 to see the traceback instead.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        notices.reset()  # each command says each warning once
        try:
            try:
                with terminating_signals():
                    code = fn(*args, **kwargs)
            except BaseException:
                _abort_pending()  # any temporary file or folder no writer got to remove (a signal at the worst moment)
                raise
        except _framework_exceptions():  # computed on first use: importing click costs start-up time
            raise
        except ItkitError as exc:
            if os.environ.get(DEBUG_ENV):
                traceback.print_exc()
            _say_error(str(exc))
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM / SIGHUP (Terminated): the writers have cleaned up
            by = f" by {exc.name}" if isinstance(exc, Terminated) else ""
            _say_error(f"interrupted{by}: {INTERRUPTED_HINT}")
            raise typer.Exit(exit_code_of(exc)) from None
        except BrokenPipeError:
            # the reader of stdout went away (`itkit convert ... | head`): stop quietly, as 128 + SIGPIPE
            _silence_stdout()
            raise typer.Exit(EXIT_BROKEN_PIPE) from None
        except OSError as exc:
            if exc.errno not in _WRITE_ERRNOS:
                _internal(exc)
            # a write that no writer translated (e.g. progress on a full disk): still name what failed
            if os.environ.get(DEBUG_ENV):
                traceback.print_exc()
            _say_error(f"{exc.filename or 'output'}: cannot write: {exc.strerror or exc}")
            raise typer.Exit(EXIT_FATAL) from None
        except Exception as exc:  # a bug: still one line, traceback on request
            _internal(exc)
        if code:
            raise typer.Exit(code)

    return wrapper  # type: ignore[return-value]


INTERRUPTED_HINT = "nothing half-written was left; re-run the same command (itkit run and the LLM commands reuse what they finished)"
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS}


def _abort_pending() -> None:
    """Remove what :mod:`itkit.io.sinks` still has pending; if no command imported it, nothing was written."""
    sinks = sys.modules.get("itkit.io.sinks")
    if sinks is not None:
        sinks.abort_pending()


def _say_error(message: str) -> None:
    try:
        error_line(message)
    except (BrokenPipeError, OSError):  # stderr is gone too: nothing left to tell
        pass


def _internal(exc: BaseException) -> None:
    if os.environ.get(DEBUG_ENV):
        traceback.print_exc()
    _say_error(f"internal error: {type(exc).__name__}: {exc} (set {DEBUG_ENV}=1 for the traceback)")
    raise typer.Exit(EXIT_FATAL) from None


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that flushing it at exit raises no second BrokenPipeError."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        pass  # stdout is not a real file (tests): nothing to silence


def _version(value: bool) -> None:
    if value:
        typer.echo(f"itkit {itkit.__version__}")
        raise typer.Exit()


def _help(ctx: typer.Context, value: bool) -> None:
    if value:
        typer.echo(ctx.get_help() or "", nl=False)
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(
        False, "--version", help="Show the version and exit.", callback=_version, is_eager=True, metavar=""
    ),
    help_: bool = typer.Option(
        False, "--help", "-h", help="Show this message and exit.", callback=_help, is_eager=True,
        expose_value=False, metavar="",
    ),
) -> None:
    """itkit: load, rewrite, deduplicate and export instruction-tuning data.

    Exit codes: 0 success, 1 fatal error, 2 usage error, 3 finished but some records failed.
    """
