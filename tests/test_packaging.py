"""A built wheel installs and runs from outside the source tree, and ships the prompts folder."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import ROOT

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("hatchling") is None,
    reason="hatchling (the build backend) is not installed; pip install hatchling",
)


VERSION = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M).group(1)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, Path]:
    """(the wheel, the folder it is installed into) built offline from this source tree."""
    tmp = tmp_path_factory.mktemp("packaging")
    wheels, target = tmp / "wheels", tmp / "site"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    subprocess.run(
        [*pip, "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-w", str(wheels), "-q"],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = wheels.glob("itkit-*.whl")
    subprocess.run(
        [*pip, "install", "--no-deps", "--target", str(target), str(wheel), "-q"],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return wheel, target


def run_outside(target: Path, *args: str) -> subprocess.CompletedProcess:
    """Run Python from a folder outside the source tree, importing itkit only from ``target``."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(target)
    return subprocess.run(
        [sys.executable, *args], cwd=target.parent, env=env, capture_output=True, text=True, timeout=120
    )


def test_wheel_holds_the_package_prompts_and_console_script(installed):
    wheel, _ = installed
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        entry_points = next(zf.read(n).decode() for n in names if n.endswith("entry_points.txt"))
        metadata = next(zf.read(n).decode() for n in names if n.endswith("/METADATA"))
    assert "itkit/__main__.py" in names and "itkit/cli/data.py" in names
    assert "itkit/_prompts/README.md" in names
    prompts_in_tree = {p.relative_to(ROOT / "prompts").as_posix() for p in (ROOT / "prompts").rglob("*") if p.is_file()}
    assert {f"itkit/_prompts/{p}" for p in prompts_in_tree} <= names, "every file of prompts/ ships"
    assert "itkit = itkit.cli:main" in entry_points
    assert "Requires-Python: >=3.10" in metadata
    assert not any(n.startswith(("tests/", "data_samples/", "benchmarks/")) for n in names)


def test_installed_package_finds_its_prompts_outside_the_source_tree(installed):
    _, target = installed
    assert not target.is_relative_to(ROOT)
    proc = run_outside(
        target,
        "-c",
        "import itkit, itkit.templates as t; d = t.builtin_prompts_dir(); "
        "print(itkit.__file__); print(d); print((d / 'README.md').is_file()); print(itkit.__version__)",
    )
    assert proc.returncode == 0, proc.stderr
    module_file, prompts_dir, has_readme, version = proc.stdout.splitlines()
    assert Path(module_file).is_relative_to(target)
    assert Path(prompts_dir) == target / "itkit" / "_prompts"
    assert has_readme == "True"
    assert version == VERSION


def test_python_dash_m_itkit_runs(installed):
    _, target = installed
    proc = run_outside(target, "-m", "itkit", "--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"itkit {VERSION}\n"


def test_console_script_converts_a_file(installed, tmp_path):
    _, target = installed
    script = target / "bin" / "itkit"
    assert script.is_file()
    src = tmp_path / "in.jsonl"
    src.write_text('{"instruction": "Name a colour.", "input": "", "output": "Blue."}\n')
    proc = run_outside(target, str(script), "convert", str(src), "--to", "messages")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == '{"id":"in-0","messages":[{"role":"user","content":"Name a colour."},{"role":"assistant","content":"Blue."}]}\n'


def test_importing_the_cli_leaves_the_heavy_libraries_unloaded():
    """`itkit --help` must not pay for numpy, datasets, the openai SDK or tiktoken: they load on first use."""
    heavy = ["numpy", "datasets", "openai", "tiktoken", "pyarrow", "rapidfuzz", "xxhash", "tenacity", "aiolimiter", "ray"]
    code = (
        "import sys, itkit.cli\n"
        "from itkit.cli import app\n"
        f"print(','.join(m for m in {heavy!r} if m in sys.modules))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "", f"imported at start-up: {proc.stdout.strip()}"


def test_lazy_modules_load_on_first_use():
    from itkit.lazy import lazy_module

    colorsys = lazy_module("colorsys")
    assert "lazy module 'colorsys'" in repr(colorsys)
    assert colorsys.rgb_to_hsv(1.0, 0.0, 0.0) == (0.0, 1.0, 1.0)
    assert colorsys.hls_to_rgb is __import__("colorsys").hls_to_rgb  # the real module's attributes
