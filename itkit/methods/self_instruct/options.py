"""The options of ``itkit self-instruct`` (and of a recipe's self-instruct step) as a config and as summary parameters."""

from __future__ import annotations

from typing import Any, Sequence

from itkit.methods.self_instruct.finetune import parse_parts
from itkit.methods.self_instruct.filters import MAX_WORDS, MIN_WORDS, MOST_SIMILAR, ROUGE_THRESHOLD, FilterConfig
from itkit.methods.self_instruct.generate import (
    ALPACA_TASKS,
    BATCH_SIZE,
    DEFAULT_SEED,
    MACHINE_DEMOS,
    STYLE_SELF_INSTRUCT,
    SelfInstructConfig,
)
from itkit.methods.self_instruct.instances import MAX_INSTANCES


def config_from_options(
    num: int,
    *,
    style: str = STYLE_SELF_INSTRUCT,
    seed: int | None = None,
    batch_size: int = BATCH_SIZE,
    demos: int | None = None,
    machine_demos: int = MACHINE_DEMOS,
    num_tasks: int = ALPACA_TASKS,
    instances: bool = True,
    max_instances: int = MAX_INSTANCES,
    max_prompts: int | None = None,
    min_words: int = MIN_WORDS,
    max_words: int = MAX_WORDS,
    blacklist: Sequence[str] | None = None,
    rouge_threshold: float = ROUGE_THRESHOLD,
    most_similar: int = MOST_SIMILAR,
    prepare: str | Sequence[str] | None = None,
) -> SelfInstructConfig:
    """The run's config: ``seed`` None is :data:`DEFAULT_SEED`, ``blacklist`` adds to the style's keywords,
    ``max_prompts`` is the prompt budget (``--max-prompts``)."""
    return SelfInstructConfig(
        num=num,
        style=style,
        seed=seed if seed is not None else DEFAULT_SEED,
        batch_size=batch_size,
        num_demos=demos,
        machine_demos=machine_demos,
        num_tasks=num_tasks,
        instances=instances,
        max_instances=max_instances,
        max_prompts=max_prompts,
        prepare=parse_parts(prepare),
        filters=FilterConfig.for_style(
            style,
            extra_blacklist=tuple(blacklist or ()),
            min_words=min_words,
            max_words=max_words,
            rouge_threshold=rouge_threshold,
            most_similar=most_similar,
        ),
    )


def report_parameters(
    config: SelfInstructConfig,
    *,
    seeds: str,
    output: str,
    from_format: str,
    to_format: str,
    on_error: str,
    prompts_dir: str | None,
) -> dict[str, Any]:
    """The parameters block of the run summary, as ``itkit self-instruct`` records it."""
    return {
        "seeds": seeds,
        "output": output,
        "num": config.num,
        "style": config.style,
        "from": from_format,
        "to": to_format,
        "instances": config.wants_instances,
        "batch_size": config.batch_size,
        "demos": config.demos,
        "machine_demos": config.machine_demos,
        "num_tasks": config.num_tasks,
        "max_instances": config.max_instances,
        "max_prompts": config.prompt_budget(),
        "prepare": list(config.prepare),
        "on_error": on_error,
        "prompts_dir": prompts_dir,
    }


__all__ = ["config_from_options", "report_parameters"]
