"""Recipe validation: every problem is one line naming the recipe and the line, exit 2, nothing written."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest
from conftest import SAMPLES, SHARED, invoke

from itkit.recipes.schema import RecipeError, load_recipe
from itkit.recipes.steps import STEPS

# export and dry runs count tokens with tiktoken: use the shared encoding files offline
os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(SHARED / "tiktoken"))


def write_recipe(folder: Path, text: str, name: str = "recipe.yaml") -> Path:
    """A recipe in ``folder`` next to a copy of the Alpaca sample (``alpaca.json``)."""
    (folder / "alpaca.json").write_bytes((SAMPLES / "alpaca.json").read_bytes())
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def run_invalid(runner, tmp_path: Path, text: str):
    recipe = write_recipe(tmp_path, text)
    run_dir = tmp_path / "run"
    result = invoke(runner, "run", recipe, "--run-dir", run_dir)
    assert result.exit_code == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert not run_dir.exists(), "nothing may be written for an invalid recipe"
    return lines[0]


CASES = [
    pytest.param(
        """
        name: bad
        sources:
          - path: alpaca.json
        steps:
          - filter: {}
          - dedupe:
              near: true
        """,
        6,
        ["unknown step type 'dedupe'", "did you mean 'dedup'", "step types: filter, simplify"],
        id="unknown-step",
    ),
    pytest.param(
        """
        sources:
          - path: alpaca.json
        steps:
          - filter:
              rules: [empty, refusal]
              max_respons: 100
        """,
        6,
        ["step 1 (filter): unknown option 'max_respons'", "did you mean 'max_response'"],
        id="unknown-option",
    ),
    pytest.param(
        """
        sources:
          - path: alpaca.json
        steps:
          - dedup:
              near: true
              near_threshold: high
        """,
        6,
        ["step 1 (dedup): near_threshold", "valid number", "'high'"],
        id="wrong-type",
    ),
    pytest.param(
        """
        sources:
          - path: alpaca.json
          - path: data/missing.jsonl
            format: dolly
        steps: []
        """,
        3,
        ["source 2", "data/missing.jsonl: no such file", "relative to the recipe's folder"],
        id="missing-file",
    ),
    pytest.param(
        """
        sources:
          - path: alpaca.json
        llm:
          model: teacher
          api_key: sk-not-here-1234567890
        steps:
          - simplify: {}
        """,
        5,
        ["llm.api_key", "must not be written in a recipe", "OPENAI_API_KEY"],
        id="api-key-in-recipe",
    ),
    pytest.param(
        """
        sources:
          - path: alpaca.json
        steps:
          - filter: {}
          - orca:
              assign: uniform
              llm:
                model: teacher
                api_key: sk-not-here-1234567890
        """,
        9,
        ["step 2 (orca): llm.api_key", "OPENAI_API_KEY"],
        id="api-key-in-step",
    ),
    pytest.param(
        """
        sources:
          - path: alpaca.json
        steps:
          - simplify:
              keep-original: true
        """,
        5,
        ["unknown option 'keep-original'", "did you mean 'keep_original'", "underscores"],
        id="dashed-option",
    ),
    pytest.param(
        """
        sources:
          - path: alpaca.json
        steps:
          - filter: {}
          - self-instruct:
              style: alpaca
        """,
        5,
        ["step 2 (self-instruct)", "'num' is required"],
        id="missing-required-option",
    ),
    pytest.param(
        """
        sources:
          - path: alpaca.json
        llm:
          model: teacher
        steps:
          - simplify:
              llm:
                temperature: 5
        """,
        8,
        ["step 1 (simplify): llm.temperature", "less than or equal to 2"],
        id="llm-setting-out-of-range",
    ),
    pytest.param(
        """
        sources:
          - path: alpaca.json
        llm:
          base_url: localhost:8000
        steps:
          - orca: {}
        """,
        4,
        ["llm.base_url", "must start with http:// or https://"],
        id="bad-base-url",
    ),
    pytest.param(
        """
        sources:
          - path: alpaca.json
        steps:
          - dedup:
              llm: {model: teacher}
        """,
        5,
        ["step 1 (dedup)", "calls no LLM"],
        id="llm-on-a-step-without-llm",
    ),
    pytest.param(
        """
        sources:
          - path: alpaca.json
        steps:
          - filter: {}
          - filter:
              rules: [empty, nonsense]
        """,
        5,
        ["step 2 (filter)", "unknown rule 'nonsense'"],
        id="library-rejects-a-rule-name",
    ),
    pytest.param(
        """
        sources:
          - path: alpaca.json
        steps:
          - evol-instruct:
              ops: deepening,telepathy
        """,
        4,
        ["step 1 (evol-instruct)", "unknown operation 'telepathy'"],
        id="library-rejects-an-operation",
    ),
    pytest.param(
        """
        sources:
          - path: alpaca.json
        export:
          mode: lft
          target: [trl, megatron]
        """,
        3,
        ["export", "megatron"],
        id="unknown-export-target",
    ),
    pytest.param(
        """
        sources:
          - path: alpaca.json
        export:
          mode: lora
        """,
        4,
        ["export.mode", "'lft', 'sft' or 'both'", "'lora'"],
        id="export-mode",
    ),
    pytest.param(
        """
        sources:
          - path: alpaca.json
            format: alpacca
        """,
        3,
        ["source 1: format", "'alpacca'"],
        id="unknown-format",
    ),
    pytest.param(
        """
        sources:
          - path: alpaca.json
        steps:
          - filter: {}
            dedup: {}
        """,
        4,
        ["step 1", "a mapping with one key", "2 keys (filter, dedup)"],
        id="two-steps-in-one-item",
    ),
    pytest.param(
        """
        sources:
          - path: alpaca.json
        stepz:
          - filter: {}
        """,
        3,
        ["unknown option 'stepz'", "did you mean 'steps'"],
        id="unknown-top-level-key",
    ),
    pytest.param(
        """
        sources:
          - path: alpaca.json
            format: [alpaca
        """,
        3,
        ["not valid YAML"],
        id="yaml-syntax",
    ),
]


@pytest.mark.parametrize("text, line, fragments", CASES)
def test_invalid_recipes_give_one_line_with_the_recipe_line(runner, tmp_path, text, line, fragments):
    message = run_invalid(runner, tmp_path, text)
    assert message.startswith(f"itkit: error: {tmp_path / 'recipe.yaml'}, line {line}: "), message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_library_messages_name_the_recipe_options(runner, tmp_path):
    message = run_invalid(
        runner,
        tmp_path,
        """
        sources:
          - path: alpaca.json
        steps:
          - filter:
              rules: [empty, refusal]
              placeholder: TBD
        """,
    )
    assert ", line 4: step 1 (filter): 'placeholder' is a parameter of rule 'placeholder'" in message


def test_the_earliest_problem_is_reported(runner, tmp_path):
    # three problems; the one on the earliest line wins whatever check finds it
    message = run_invalid(
        runner,
        tmp_path,
        """
        sources:
          - path: alpaca.json
        steps:
          - filter: {rules: [empty, nope]}
          - dedup: {keep: shortest}
        export: {target: [nope]}
        """,
    )
    assert ", line 4: step 1 (filter): unknown rule 'nope'" in message


def test_the_api_key_is_not_echoed(runner, tmp_path):
    message = run_invalid(
        runner,
        tmp_path,
        """
        sources:
          - path: alpaca.json
        llm: {api_key: sk-secret-value-42424242}
        """,
    )
    assert "sk-secret" not in message and "42424242" not in message


def test_missing_recipe_and_non_mapping(runner, tmp_path):
    result = invoke(runner, "run", tmp_path / "nope.yaml")
    assert result.exit_code == 2
    assert "nope.yaml: no such recipe file" in result.stderr
    message = run_invalid(runner, tmp_path, "- just\n- a list\n")
    assert ", line 1: a recipe is a YAML mapping" in message


def test_no_key_and_no_endpoint_for_an_llm_step_is_a_usage_error_before_anything_runs(runner, tmp_path):
    message = run_invalid(
        runner,
        tmp_path,
        """
        sources:
          - path: alpaca.json
        steps:
          - filter: {}
          - simplify: {}
        """,
    )
    assert ", line 5: step 2 (simplify): no API key: set OPENAI_API_KEY" in message


def test_the_same_recipe_passes_a_dry_run_without_a_key(runner, tmp_path):
    recipe = write_recipe(
        tmp_path,
        """
        sources:
          - path: alpaca.json
        steps:
          - simplify: {}
        """,
    )
    result = invoke(runner, "run", recipe, "--run-dir", tmp_path / "run", "--dry-run", "-q")
    assert result.exit_code == 0, result.stderr
    assert not (tmp_path / "run").exists()


def test_load_recipe_resolves_paths_defaults_and_merged_llm_settings(tmp_path):
    (tmp_path / "prompts").mkdir()
    recipe_path = write_recipe(
        tmp_path,
        """
        sources:
          - path: alpaca.json
          - path: hf://databricks/databricks-dolly-15k
            format: dolly
        llm:
          model: teacher
          temperature: 0.7
          prompts_dir: prompts
        steps:
          - filter: {rules: "empty, placeholder", placeholder: "TBD"}
          - orca:
              system_messages: [2, 5, 7]
              llm: {temperature: 0.2, max_tokens: 300}
        """,
        name="my-recipe.yaml",
    )
    recipe = load_recipe(recipe_path)
    assert recipe.name == "my-recipe"  # the file's stem when no name is given
    assert [s.location for s in recipe.sources] == [str(tmp_path / "alpaca.json"), "hf://databricks/databricks-dolly-15k"]
    assert [s.format for s in recipe.sources] == ["auto", "dolly"]
    filter_step, orca_step = recipe.steps
    assert filter_step.label == "01-filter" and filter_step.llm is None
    assert filter_step.options.rules == ["empty", "placeholder"] and filter_step.options.placeholder == ["TBD"]
    assert orca_step.label == "02-orca"
    assert orca_step.options.system_messages == "2,5,7"
    assert orca_step.llm == {"model": "teacher", "temperature": 0.2, "max_tokens": 300}
    assert orca_step.prompts_dir == str(tmp_path / "prompts")
    assert orca_step.line == 11


def test_every_step_type_has_an_options_model_that_forbids_unknown_keys():
    assert set(STEPS) == {"filter", "simplify", "evol-instruct", "orca", "self-instruct", "dedup", "decontaminate", "score"}
    for adapter in STEPS.values():
        assert adapter.options.model_config.get("extra") == "forbid"


def test_recipe_error_is_a_usage_error(tmp_path):
    with pytest.raises(RecipeError) as info:
        load_recipe(write_recipe(tmp_path, "sources: []\n"))
    assert info.value.exit_code == 2
    assert info.value.line == 1
