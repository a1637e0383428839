"""The quickstart's report in a real browser (headless Chromium): the funnel, the pairs, the histograms, no network.

Debian's ``chromium`` package is enough (``apt-get install chromium``; CI
installs it). Without it these tests are skipped, saying why.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from conftest import ROOT, SHARED, invoke

os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(SHARED / "tiktoken"))

QUICKSTART = ROOT / "data_samples" / "recipes" / "quickstart.yaml"
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
BROWSER_TIMEOUT = 120.0
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--hide-scrollbars",
)


def browser() -> str:
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("no headless Chromium on this machine (apt-get install chromium); the browser checks of the report need it")


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    return subprocess.run(
        [browser(), *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True, text=True, timeout=BROWSER_TIMEOUT, check=False,
    )


class Elements(HTMLParser):
    """Every element of a page as (tag, attributes), plus its text."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, {k: v or "" for k, v in attrs}))

    def handle_data(self, data):
        self.text.append(data)

    def having(self, tag: str, cls: str | None = None) -> list[dict[str, str]]:
        return [a for t, a in self.elements if t == tag and (cls is None or cls in a.get("class", "").split())]


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    from typer.testing import CliRunner

    run_dir = tmp_path_factory.mktemp("browser") / "run"
    result = invoke(CliRunner(), "run", QUICKSTART, "--run-dir", run_dir, "-q")
    assert result.exit_code == 0, result.stderr
    return run_dir / "report.html"


EXTERNAL = re.compile(r"""(?:src|href|action|xlink:href)\s*=\s*["']?\s*(?!#)[a-z][a-z0-9+.-]*:|(?:src|href)\s*=\s*["']?//|url\(|@import""", re.I)


def test_the_file_references_nothing_outside_itself(report):
    page = report.read_text(encoding="utf-8")
    assert not EXTERNAL.search(page), EXTERNAL.search(page)
    assert "<link" not in page and "<script src" not in page and "<img" not in page and "<iframe" not in page
    assert "default-src 'none'" in page  # and the page forbids itself any request (Content-Security-Policy)
    assert report.stat().st_size < 500_000


def test_the_browser_renders_the_funnel_the_pairs_and_the_histograms(report, tmp_path):
    result = chromium(tmp_path, "--dump-dom", report.as_uri())
    assert result.returncode == 0, result.stderr[-2000:]
    dom = Elements()
    dom.feed(result.stdout)
    text = " ".join(dom.text)
    # the funnel: a chart with a bar per step (export: one per set) and the table of numbers
    assert dom.having("section", None) and any(a.get("id") == "funnel" for a in dom.having("section"))
    bars = {a["data-step"]: int(a["data-records"]) for a in dom.having("g", "row") if "data-step" in a}
    assert bars == {"00-sources": 87, "01-filter": 78, "02-dedup": 73, "03-export · lft": 40, "03-export · sft": 73}
    assert dom.having("rect", "removed") and dom.having("rect", "set")
    assert dom.having("table", "funnel-table") and "refusal 4" in text and "exact 4" in text
    # dedup pairs side by side with the shared text highlighted
    assert len(dom.having("div", "pair")) == 5 and dom.having("mark")
    assert "alpaca-12" in text and "alpaca-6" in text  # an exact pair: removed and survivor
    # histograms of the training sets
    assert len([a for a in dom.having("div", "histogram")]) >= 3 and len(dom.having("svg", "hist")) >= 3
    # the script ran: the search boxes count their rows
    assert re.search(r"\d+ of \d+ rows shown", text)
    # nothing in the rendered page points outside it
    for tag, attrs in dom.elements:
        for name in ("src", "href", "action"):
            assert not attrs.get(name) or attrs[name].startswith("#"), (tag, attrs)


def test_a_screenshot_of_the_first_screen(report, tmp_path):
    shot = tmp_path / "report-first-screen.png"
    result = chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,900", report.as_uri())
    assert result.returncode == 0, result.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000  # a real picture, not a blank page
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1280, 900)


def test_it_prints(report, tmp_path):
    pdf = tmp_path / "report.pdf"
    result = chromium(tmp_path, "--no-pdf-header-footer", f"--print-to-pdf={pdf}", report.as_uri())
    assert result.returncode == 0, result.stderr[-2000:]
    data = pdf.read_bytes()
    pages = [int(n) for n in re.findall(rb"/Count (\d+)", data)]
    assert data.startswith(b"%PDF") and pages and 2 <= max(pages) <= 30  # the whole page, on a handful of sheets
