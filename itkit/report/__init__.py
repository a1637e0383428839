"""A self-contained HTML report of a run (or of one command's output): see :func:`collect` and :func:`write_report`.

:mod:`itkit.report.collect` gathers the data (plain dicts, tested on their
own); :mod:`itkit.report.render` turns them into one HTML file with inline
CSS, JavaScript and SVG that opens from ``file://`` with no network.
"""

from __future__ import annotations

from pathlib import Path

from itkit.errors import UsageError
from itkit.io.sinks import AtomicFile
from itkit.report.collect import Progress, collect
from itkit.report.context import Limits
from itkit.report.render import GENERATOR, render

REPORT_FILE = "report.html"
"""The report ``itkit run`` writes in the run folder when the recipe says ``report: true``."""


SNIFF_BYTES = 2048


def default_output(target: str | Path) -> Path:
    """``RUN_DIR/report.html`` for a folder, ``OUT.report.html`` beside a summary file."""
    path = Path(target)
    if path.is_dir():
        return path / REPORT_FILE
    name = path.name.removesuffix(".json").removesuffix(".summary")
    return path.with_name(f"{name}.report.html")


def check_output(output: Path) -> None:
    """Refuse to replace a file that is not an itkit report (a folder, a dataset, someone's page)."""
    if output.is_dir():
        raise UsageError(f"-o {output}: is a folder; give the report's file name (report.html)")
    if output.exists():
        try:
            head = output.open("rb").read(SNIFF_BYTES)
        except OSError as exc:
            raise UsageError(f"-o {output}: cannot read it: {exc.strerror or exc}") from None
        if GENERATOR.encode() not in head:
            raise UsageError(f"-o {output}: exists and is not a report itkit wrote; remove it or choose another name")


def write_report(target: str | Path, output: str | Path, limits: Limits | None = None,
                 progress: Progress | None = None) -> dict:
    """Collect the data of ``target`` and write the page to ``output`` atomically; returns the data.

    An existing ``output`` is replaced only when it is a report itkit wrote.
    """
    output = Path(output)
    check_output(output)
    data = collect(target, limits, progress)
    page = render(data).encode("utf-8")
    sink = AtomicFile(Path(output))
    try:
        sink.fh.write(page)
    except BaseException:
        sink.abort()
        raise
    sink.commit()
    return data


__all__ = ["REPORT_FILE", "Limits", "check_output", "collect", "default_output", "render", "write_report"]
