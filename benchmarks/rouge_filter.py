"""Self-Instruct's ROUGE-L novelty filter: itkit vs the rouge_score reference.

    python benchmarks/rouge_filter.py [--n 1500] [--large 50000] [--threshold 0.7]

The reference is the filter as Self-Instruct runs it, in one process: for each
instruction in input order, ``RougeScorer(["rougeL"], use_stemmer=False).score``
against every instruction kept so far; keep it unless an F1 is above the
threshold. itkit's ``RougeNoveltyFilter`` must keep exactly the same
instructions. Instructions are realistic and include near copies (see
``dedup_data.generate_instructions``: templates, edited and spliced Self-Instruct
seed tasks).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from dedup_data import generate_instructions, load_seed_instructions  # noqa: E402

from itkit.dedup.rouge import RougeNoveltyFilter, rouge_tokenize  # noqa: E402


def reference_filter(texts: list[str], threshold: float) -> list[int]:
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    kept: list[int] = []
    kept_texts: list[str] = []
    for i, text in enumerate(texts):
        scores = [scorer.score(text, other)["rougeL"].fmeasure for other in kept_texts]
        if scores and max(scores) > threshold:
            continue
        kept.append(i)
        kept_texts.append(text)
    return kept


def incremental_filter(texts: list[str], threshold: float) -> list[int]:
    """Self-Instruct's use: one candidate at a time, kept when novel."""
    novelty = RougeNoveltyFilter(threshold)
    return [i for i, text in enumerate(texts) if novelty.offer(text).is_novel]


def timed(fn, *args):
    started = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1500, help="instructions compared with the reference")
    parser.add_argument("--large", type=int, default=50000, help="instructions for itkit alone")
    parser.add_argument("--threshold", type=float, default=0.7)
    args = parser.parse_args()

    seeds = load_seed_instructions()
    source = "Self-Instruct seed tasks + templates" if seeds else "templates only (seed file not found)"
    texts = generate_instructions(args.n, seed=1, seeds=seeds)
    mean_tokens = sum(len(rouge_tokenize(t)) for t in texts) / len(texts)
    print(f"{args.n:,} generated instructions ({source}), {mean_tokens:.1f} ROUGE tokens on average; "
          f"threshold: F1 > {args.threshold}")

    ours, ours_time = timed(lambda: RougeNoveltyFilter(args.threshold).filter(texts).kept)
    incremental, incremental_time = timed(incremental_filter, texts, args.threshold)
    print("running the rouge_score reference (greedy, one process) ...", flush=True)
    reference, reference_time = timed(reference_filter, texts, args.threshold)

    same = ours == reference == incremental
    print()
    print(f"{'':28}{'time':>10}{'kept':>8}")
    print(f"{'rouge_score reference':28}{reference_time:9.2f}s{len(reference):8,}")
    print(f"{'itkit filter() (batch)':28}{ours_time:9.3f}s{len(ours):8,}")
    print(f"{'itkit offer() one by one':28}{incremental_time:9.3f}s{len(incremental):8,}")
    print(f"speed-up: x{reference_time / ours_time:,.0f} (batch), x{reference_time / incremental_time:,.0f} "
          f"(one by one); target x200")
    print(f"identical kept sets: {'yes' if same else 'NO'}")
    if not same:
        sys.exit(1)

    if args.large:
        large = generate_instructions(args.large, seed=2, seeds=seeds)
        result, large_time = timed(lambda: RougeNoveltyFilter(args.threshold).filter(large))
        print()
        print(f"itkit alone on {args.large:,} instructions: {large_time:.1f} s, kept {len(result.kept):,} "
              f"({len(result.dropped):,} dropped)")


if __name__ == "__main__":
    main()
