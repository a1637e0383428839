"""Recipes: declarative, resumable pipelines (``itkit run``).

    from itkit.recipes import load_recipe, run_recipe
    recipe = load_recipe("data_samples/recipes/quickstart.yaml")   # RecipeError (exit 2) naming the line
    summary = run_recipe(recipe, "runs/quickstart")                 # skips the steps already done
    summary.exit_code, summary.as_dict()["totals"]

- :mod:`.schema`: the recipe format (pydantic models) and :func:`load_recipe`;
- :mod:`.yaml_lines`: YAML with the line of every value, for errors;
- :mod:`.steps`: one adapter per step type (the command's library call), in one table;
- :mod:`.sources`: merging the sources into the first file;
- :mod:`.fingerprint`: when a finished step may be skipped;
- :mod:`.runner`: the stages in order, resume, dry run;
- :mod:`.summary`: the run summary (``run_summary.json``).
"""

from itkit.recipes.runner import StepFailed, default_run_dir, run_recipe
from itkit.recipes.schema import Recipe, RecipeError, load_recipe
from itkit.recipes.summary import RunSummary, StepRow

__all__ = ["Recipe", "RecipeError", "RunSummary", "StepFailed", "StepRow", "default_run_dir", "load_recipe", "run_recipe"]
