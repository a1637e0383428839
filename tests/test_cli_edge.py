"""The CLI edge: library errors become one line and an exit code; Typer's own exits pass through."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from itkit.cli.root import handle_errors
from itkit.errors import InputError, Location, UsageError


def _app(body) -> typer.Typer:
    app = typer.Typer()

    @app.command()
    @handle_errors
    def go() -> int:
        return body()

    @app.command()
    def other() -> None:  # a second command keeps Typer in multi-command mode
        pass

    return app


def _run(body):
    return CliRunner().invoke(_app(body), ["go"])


def _raise(exc):
    def body():
        raise exc

    return body


def test_input_error_is_one_line_naming_the_place_exit_1():
    result = _run(_raise(InputError("must be a string, got integer", Location("a.jsonl", line=3), "output")))
    assert result.exit_code == 1
    assert result.stderr == "itkit: error: a.jsonl, line 3: field 'output': must be a string, got integer\n"


def test_usage_error_exits_2():
    assert _run(_raise(UsageError("bad option"))).exit_code == 2


def test_typer_exceptions_raised_inside_a_command_pass_through():
    assert _run(_raise(typer.Exit(4))).exit_code == 4
    bad = _run(_raise(typer.BadParameter("nope")))
    assert bad.exit_code == 2 and "internal error" not in bad.stderr


def test_a_bug_is_one_line_without_traceback(monkeypatch):
    monkeypatch.delenv("ITKIT_DEBUG", raising=False)
    result = _run(_raise(ZeroDivisionError("boom")))
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and "internal error: ZeroDivisionError: boom" in result.stderr
    assert "Traceback" not in result.stderr


def test_returned_code_is_the_exit_code():
    assert _run(lambda: 3).exit_code == 3
    assert _run(lambda: 0).exit_code == 0
