"""Renamed options: the old spelling still works for one release, with one deprecation line on stderr.

| old | new |
| --- | --- |
| ``--model`` of stats, filter, export (a tokenizer) | ``--tokenizer-model`` (recipes: ``tokenizer_model``) |
| export ``--max-tokens`` (a record budget) | ``--max-length`` (recipes: ``max_length``) |
| evol-instruct ``--keep final|all`` | ``--keep-rounds`` (recipes: ``keep_rounds``) |
| self-instruct ``--limit`` (generation prompts) | ``--max-prompts`` (recipes: ``max_prompts``, not ``llm.limit``) |
| run ``--from`` | ``--from-step`` |
"""

from __future__ import annotations

import json
import os
import textwrap

import pytest
from conftest import SAMPLES, SHARED, invoke

from itkit.recipes.schema import RecipeError, load_recipe

os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(SHARED / "tiktoken"))

QUICKSTART = SAMPLES / "recipes" / "quickstart.yaml"


def warning_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("itkit: warning: ")]


def test_stats_model_is_tokenizer_model(runner):
    old = invoke(runner, "stats", SAMPLES / "dolly.jsonl", "--model", "gpt-4o", "--json")
    new = invoke(runner, "stats", SAMPLES / "dolly.jsonl", "--tokenizer-model", "gpt-4o", "--json")
    assert old.exit_code == new.exit_code == 0
    assert json.loads(old.stdout) == json.loads(new.stdout) and json.loads(old.stdout)["encoding"] == "o200k_base"
    assert warning_lines(old.stderr) == [
        "itkit: warning: --model is deprecated and will be removed in the next release; use --tokenizer-model"
    ]
    assert warning_lines(new.stderr) == []


def test_filter_model_is_tokenizer_model(runner, tmp_path):
    args = ["filter", SAMPLES / "alpaca.json", "-o", tmp_path / "o.jsonl", "--length-unit", "tokens", "--max-response", "40", "-q"]
    old = invoke(runner, *args, "--model", "gpt-4o")
    assert old.exit_code == 0, old.stderr
    assert warning_lines(old.stderr) == [
        "itkit: warning: --model is deprecated and will be removed in the next release; use --tokenizer-model"
    ]
    kept_old = (tmp_path / "o.jsonl").read_text()
    new = invoke(runner, *args, "--tokenizer-model", "gpt-4o")
    assert new.exit_code == 0 and warning_lines(new.stderr) == []
    assert (tmp_path / "o.jsonl").read_text() == kept_old


def test_export_max_tokens_is_max_length(runner, tmp_path):
    src = SAMPLES / "alpaca.json"
    old = invoke(runner, "export", src, "-o", tmp_path / "old", "--target", "trl", "--max-tokens", "60", "--json")
    new = invoke(runner, "export", src, "-o", tmp_path / "new", "--target", "trl", "--max-length", "60", "--json")
    assert old.exit_code == new.exit_code == 0, old.stderr
    assert "--max-tokens is deprecated" in old.stderr and "use --max-length" in old.stderr
    assert warning_lines(new.stderr) == []
    assert json.loads(old.stdout)["modes"] == json.loads(new.stdout)["modes"]
    assert (tmp_path / "old" / "sft" / "trl" / "train.jsonl").read_bytes() == (tmp_path / "new" / "sft" / "trl" / "train.jsonl").read_bytes()


def test_old_and_new_spelling_together_is_a_usage_error(runner, tmp_path):
    result = invoke(runner, "export", SAMPLES / "alpaca.json", "-o", tmp_path / "o", "--max-tokens", "60", "--max-length", "90")
    assert result.exit_code == 2
    assert "--max-tokens is the old spelling of --max-length; give only --max-length" in result.stderr
    assert not (tmp_path / "o").exists()


def test_run_from_is_from_step(runner, tmp_path):
    run_dir = tmp_path / "run"
    assert invoke(runner, "run", QUICKSTART, "--run-dir", run_dir, "-q").exit_code == 0
    result = invoke(runner, "run", QUICKSTART, "--run-dir", run_dir, "-q", "--from", "dedup")
    assert result.exit_code == 0, result.stderr
    assert warning_lines(result.stderr) == [
        "itkit: warning: --from is deprecated and will be removed in the next release; use --from-step"
    ]
    summary = json.loads((run_dir / "run_summary.json").read_text())
    forced = [row["step"] for row in summary["steps"] if row.get("forced")]
    assert forced and forced[0].endswith("-dedup")


def write(tmp_path, text: str):
    (tmp_path / "alpaca.json").write_bytes((SAMPLES / "alpaca.json").read_bytes())
    path = tmp_path / "recipe.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def test_recipe_old_names_are_renamed_with_a_warning_naming_the_line(tmp_path):
    recipe = load_recipe(
        write(
            tmp_path,
            """
            sources:
              - path: alpaca.json
            llm: {model: teacher}
            steps:
              - filter: {length_unit: tokens, max_response: 50, model: gpt-4o}
              - evol-instruct:
                  keep: all
              - self-instruct:
                  num: 5
                  llm: {limit: 7}
            export:
              max_tokens: 300
              model: gpt-4o
            """,
        )
    )
    filter_step, evol, self_instruct = recipe.steps
    assert filter_step.options.tokenizer_model == "gpt-4o"
    assert evol.options.keep_rounds == "all"
    assert self_instruct.options.max_prompts == 7 and "limit" not in (self_instruct.llm or {})
    assert recipe.export.max_length == 300 and recipe.export.tokenizer_model == "gpt-4o"
    shown = str(tmp_path / "recipe.yaml")
    assert recipe.warnings == [
        f"{shown}, line 5: step 1 (filter): 'model' is deprecated and will be removed in the next release; write 'tokenizer_model'",
        f"{shown}, line 7: step 2 (evol-instruct): 'keep' is deprecated and will be removed in the next release; write 'keep_rounds'",
        f"{shown}, line 10: step 3 (self-instruct): llm: 'limit' is deprecated for a self-instruct step: write 'max_prompts: 7' in the step",
        f"{shown}, line 12: export: 'max_tokens' is deprecated and will be removed in the next release; write 'max_length'",
        f"{shown}, line 13: export: 'model' is deprecated and will be removed in the next release; write 'tokenizer_model'",
    ]


def test_recipe_with_old_and_new_name_is_refused(tmp_path):
    path = write(
        tmp_path,
        """
        sources:
          - path: alpaca.json
        export: {max_tokens: 300, max_length: 200}
        """,
    )
    with pytest.raises(RecipeError, match=r"line 3: export: 'max_tokens' is the old name of 'max_length'; give only 'max_length'"):
        load_recipe(path)


def test_itkit_run_prints_the_recipe_warnings_on_stderr(runner, tmp_path):
    path = write(
        tmp_path,
        """
        sources:
          - path: alpaca.json
        steps:
          - filter: {length_unit: tokens, max_response: 80, model: gpt-4o}
        """,
    )
    result = invoke(runner, "run", path, "--run-dir", tmp_path / "run", "-q")
    assert result.exit_code == 0, result.stderr
    assert warning_lines(result.stderr) == [
        f"itkit: warning: {path}, line 4: step 1 (filter): 'model' is deprecated and will be removed in the next "
        "release; write 'tokenizer_model'"
    ]
