"""Realistic generated instructions for the dedup benchmarks (deterministic for a seed).

Self-Instruct-like instructions come from three recipes, so a set holds both
distinct tasks and the near copies a generator produces:

- *templates*: task templates with slots filled from word lists
  ("Write a haiku about autumn in Paris.");
- *edits*: a seed instruction with 2 to 8 words replaced, inserted or dropped;
- *splices*: the start of one seed instruction joined to the end of another.

Seed instructions are read from Self-Instruct's seed file when it is available
(``../shared/realdata/self_instruct_seed_tasks.jsonl``); otherwise templates
alone are used.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

SEED_FILE = Path(__file__).resolve().parent.parent.parent / "shared" / "realdata" / "self_instruct_seed_tasks.jsonl"

TEMPLATES = [
    "Write a {form} about {topic}.",
    "Write a {form} about {topic} for {audience}.",
    "Explain {topic} to {audience} in {n} sentences.",
    "Explain the difference between {topic} and {topic2}.",
    "Give me {n} tips for {activity}.",
    "List {n} {things} that are useful for {activity}.",
    "Summarize the following {doc} in {n} sentences.",
    "Translate the following sentence into {language}.",
    "Classify the following {doc} as positive, negative or neutral.",
    "What are the main causes of {topic}? Answer in {n} bullet points.",
    "Suggest a name for a {business} that specializes in {topic}.",
    "Compose an email to {audience} announcing {event}.",
    "Create a {n}-day plan for {activity}.",
    "Generate {n} interview questions about {topic} for {audience}.",
    "Rewrite the {doc} below so that it is suitable for {audience}.",
    "Describe how {topic} affects {topic2}, with one example.",
    "Is it a good idea to {action} before {activity}? Explain your reasoning.",
    "Find the grammatical errors in the following {doc} and correct them.",
    "Compare {topic} and {topic2} in a table with {n} rows.",
    "Propose {n} research questions about the impact of {topic} on {topic2}.",
]
SLOTS = {
    "form": ["poem", "haiku", "short story", "limerick", "blog post", "product description", "speech", "tweet",
             "news headline", "dialogue", "song chorus", "movie plot"],
    "topic": ["climate change", "machine learning", "the French revolution", "remote work", "photosynthesis",
              "inflation", "social media", "quantum computing", "urban gardening", "sleep hygiene",
              "the stock market", "renewable energy", "ancient Rome", "vaccines", "electric cars", "coffee",
              "the water cycle", "blockchain", "meditation", "supply chains", "volcanoes", "jazz music"],
    "audience": ["children", "a five-year-old", "high school students", "software engineers", "senior citizens",
                 "new employees", "investors", "a skeptical friend", "doctors", "tourists"],
    "n": ["two", "three", "four", "five", "seven", "ten"],
    "activity": ["learning a new language", "running a marathon", "saving money", "studying for exams",
                 "starting a business", "cooking for a large family", "travelling on a budget",
                 "writing a novel", "moving to a new city", "training a puppy"],
    "things": ["books", "apps", "tools", "habits", "websites", "exercises", "snacks", "podcasts"],
    "doc": ["paragraph", "review", "news article", "email", "tweet", "product review", "essay", "report"],
    "language": ["French", "Spanish", "German", "Japanese", "Italian", "Portuguese", "Korean"],
    "business": ["bakery", "startup", "bookstore", "consulting firm", "food truck", "yoga studio"],
    "event": ["a new product launch", "an office move", "a holiday party", "a change in leadership",
              "a delayed shipment"],
    "action": ["stretch", "eat a large meal", "drink coffee", "read the manual", "make a budget"],
}
SLOTS["topic2"] = SLOTS["topic"]


def load_seed_instructions(path: Path | None = None) -> list[str]:
    path = path or SEED_FILE
    if not path.is_file():
        return []
    return [json.loads(line)["instruction"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def generate_instructions(n: int, seed: int = 0, seeds: list[str] | None = None) -> list[str]:
    """``n`` instructions: 30% templates, 35% edited seeds (2-8 word edits), 35% spliced seeds."""
    rng = random.Random(seed)
    seeds = load_seed_instructions() if seeds is None else seeds
    words = [w for s in seeds for w in s.split()] or [w for v in SLOTS.values() for w in " ".join(v).split()]
    out = []
    for _ in range(n):
        recipe = rng.random()
        if not seeds or recipe < 0.3:
            template = rng.choice(TEMPLATES)
            out.append(template.format(**{k: rng.choice(v) for k, v in SLOTS.items()}))
        elif recipe < 0.65:
            toks = rng.choice(seeds).split()
            for _ in range(rng.randint(2, 8)):
                op, p = rng.random(), rng.randrange(len(toks))
                if op < 0.5:
                    toks[p] = rng.choice(words)
                elif op < 0.8:
                    toks.insert(p, rng.choice(words))
                elif len(toks) > 3:
                    del toks[p]
            out.append(" ".join(toks))
        else:
            a, b = rng.choice(seeds).split(), rng.choice(seeds).split()
            out.append(" ".join(a[: rng.randint(2, max(2, len(a) - 1))] + b[rng.randint(1, max(1, len(b) - 2)):]))
    return out


# ---------------------------------------------------------------- Alpaca-style records at scale

WORD_POOL = 67_000_000
"""Words drawn in advance (enough for 1,000,000 records; larger sets reuse them): bounds the memory."""
BASE_POOL = 2_000_000
"""Base records a copy may be made of (the most recent ones): bounds the generator's memory."""
FUNCTION_WORDS = (
    "the of and to a in is that for it as with was on be by this are or at from an have not but which can they "
    "you all their one has more were if will there been also its when what so would about these into than other"
).split()
OPENERS = ["Explain", "Describe", "Write", "Summarize", "List", "Compare", "Classify", "Translate", "Rewrite",
           "Suggest", "Create", "Give", "Find", "Identify", "Generate", "Evaluate", "Outline", "Plan"]


def _content_vocabulary(rng, size: int = 30000) -> list[str]:
    syllables = "ka lo mi ra te su an el or vi na po de qu ri sa to me ba zu ex il on ur ta ne gro fel mar tin".split()
    words: set[str] = set()
    while len(words) < size:
        k = int(rng.integers(2, 5))
        words.add("".join(syllables[i] for i in rng.integers(0, len(syllables), k)))
    return sorted(words)


def generate_alpaca(
    path: Path, n: int, exact_share: float = 0.1, near_share: float = 0.1, seed: int = 0, base_pool: int = BASE_POOL
) -> dict:
    """Write ``n`` Alpaca records (JSONL) with planted exact and near duplicates; returns what was planted.

    Base records have a 6-20 word instruction, an input half of the time (10-40 words) and a
    20-60 word output, over a 30,000-word vocabulary (Zipf-Mandelbrot frequencies) plus function words.
    An exact duplicate repeats an earlier base record, half the time with its instruction in
    other case and spacing. A near duplicate copies an earlier base record's instruction and
    input with one word replaced (texts of 30+ words) or with its punctuation and case changed,
    and gets a new output. Returns ``{"exact": [...], "near": [...]}``: row indices of the copies.
    Copies are made of one of the last ``base_pool`` base records (all of them up to that many),
    so that 10 million records are generated in bounded memory.
    """
    import numpy as np
    import orjson

    rng = np.random.default_rng(seed)
    content = np.array(_content_vocabulary(rng), dtype=object)
    rng.shuffle(content)
    function = np.array(FUNCTION_WORDS, dtype=object)
    kinds = rng.choice(3, size=n, p=[1 - exact_share - near_share, exact_share, near_share])
    n_words = min(200 * n // 3 + 100, WORD_POOL)  # past that, texts are taken from random places of the pool
    weights = 1 / (np.arange(len(content)) + 2.7) ** 1.07  # Zipf-Mandelbrot word frequencies
    ranks = rng.choice(len(content), size=n_words, p=weights / weights.sum())
    pool = np.where(rng.random(n_words) < 0.35, function[rng.integers(0, len(function), n_words)], content[ranks])
    pos = 0

    def take(k: int) -> str:
        nonlocal pos
        if pos + k > n_words:
            pos = int(rng.integers(0, n_words - k))
        out = " ".join(pool[pos : pos + k])
        pos += k
        return out

    bases: list[tuple[str, str, str]] = []  # the base records copies are made of (at most base_pool)
    pooled = 0
    planted: dict[str, list[int]] = {"exact": [], "near": []}
    with open(path, "wb") as fh:
        for i in range(n):
            kind = kinds[i] if bases else 0
            if kind == 0:
                instruction = f"{OPENERS[int(rng.integers(0, len(OPENERS)))]} {take(int(rng.integers(5, 20)))}" + (
                    "?" if rng.random() < 0.3 else "."
                )
                text_input = take(int(rng.integers(10, 41))).capitalize() + "." if rng.random() < 0.5 else ""
                row = (instruction, text_input, take(int(rng.integers(20, 61))).capitalize() + ".")
                if len(bases) < base_pool:
                    bases.append(row)
                else:
                    bases[pooled % base_pool] = row
                pooled += 1
            else:
                instruction, text_input, output = bases[int(rng.integers(0, len(bases)))]
                if kind == 1:
                    if rng.random() < 0.5:
                        instruction = "  " + instruction.upper().replace(" ", "  ")
                    row = (instruction, text_input, output)
                    planted["exact"].append(i)
                else:
                    words = (instruction + " " + text_input).split()
                    if len(words) >= 30:
                        words[int(rng.integers(1, len(words)))] = str(content[int(rng.integers(0, len(content)))])
                        split = len(instruction.split())
                        instruction, text_input = " ".join(words[:split]), " ".join(words[split:])
                    else:
                        instruction = instruction.rstrip(".?").lower() + "!!"
                        text_input = text_input.replace(" ", ", ", 1)
                    row = (instruction, text_input, take(int(rng.integers(20, 61))).capitalize() + ".")
                    planted["near"].append(i)
            fh.write(orjson.dumps({"instruction": row[0], "input": row[1], "output": row[2]}) + b"\n")
    return planted


if __name__ == "__main__":
    # python benchmarks/dedup_data.py OUT.jsonl N: write N Alpaca records and OUT.planted.json
    import sys

    target, count = Path(sys.argv[1]), int(sys.argv[2])
    planted = generate_alpaca(target, count)
    target.with_suffix(".planted.json").write_text(json.dumps(planted))
