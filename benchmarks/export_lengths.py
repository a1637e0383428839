"""Benchmark: exact record lengths from a chat template (`itkit export --tokenizer`) beside transformers'
``apply_chat_template`` doing the same work, and beside itkit's estimate (+4 per message).

    python benchmarks/export_lengths.py                 # 20,000 conversations
    python benchmarks/export_lengths.py --records 5000  # a quicker run

A small byte-level BPE tokenizer with a ChatML template (with ``{% generation %}``) is built in
benchmarks/_work/ with the ``tokenizers`` library. Every record is rendered and encoded by itkit's
:class:`itkit.export.chat_template.TemplateCounter`; when transformers is installed (it is not a dependency)
the same records go through ``PreTrainedTokenizerFast.apply_chat_template(tokenize=True)`` and every count
must be identical. Time is CPU time of this process for each contender, in one run.

Target (issue 14): exact counting within 1.5x of transformers' time (when it is installed). Exit status 0 when
the counts agree and the target is met, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from itkit.export.length import HFTokenCounter, make_counter, record_tokens  # noqa: E402
from itkit.records import Record, Turn  # noqa: E402

WORK = HERE / "_work" / "chatml-tokenizer"
TIME_RATIO_TARGET = 1.5
SEED = 14
CHATML = (
    "{%- for message in messages %}"
    "{%- if message.role == 'assistant' %}{{- '<|im_start|>assistant\\n' }}{% generation %}"
    "{{- message.content + '<|im_end|>' }}{% endgeneration %}{{- '\\n' }}"
    "{%- else %}{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}{%- endif %}"
    "{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
WORDS = "the a of to and in is it that for on with as was by this at be from or an are not have one all".split()


def sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def build_tokenizer() -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    if (WORK / "tokenizer.json").is_file():
        return
    rng = random.Random(SEED)
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=2000, special_tokens=["<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([sentence(rng, 30) for _ in range(3000)], trainer)
    WORK.mkdir(parents=True, exist_ok=True)
    tok.save(str(WORK / "tokenizer.json"))
    (WORK / "tokenizer_config.json").write_text(json.dumps({"chat_template": CHATML, "eos_token": "<|im_end|>"}))


def records(n: int) -> list[Record]:
    rng = random.Random(SEED)
    out = []
    for i in range(n):
        turns = []
        for _ in range(rng.randint(1, 3)):
            turns += [Turn(role="user", content=sentence(rng, rng.randint(5, 40))),
                      Turn(role="assistant", content=sentence(rng, rng.randint(10, 120)))]
        out.append(Record(id=str(i), system=sentence(rng, 8) if i % 3 == 0 else None, turns=turns))
    return out


def timed(fn):
    start = time.process_time()
    value = fn()
    return value, time.process_time() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=20000)
    args = parser.parse_args()
    build_tokenizer()
    data = records(args.records)
    counter = make_counter(tokenizer=str(WORK))
    exact, t_exact = timed(lambda: counter.count_records(data))
    estimate, t_estimate = timed(lambda: record_tokens(data, HFTokenCounter(str(WORK))))
    print(f"{len(data)} conversations")
    print(f"itkit exact (chat template)   {t_exact:7.2f} s CPU")
    print(f"itkit estimate (+4 a message) {t_estimate:7.2f} s CPU   "
          f"mean error {sum(abs(a - b) for a, b in zip(exact, estimate)) / len(data):.1f} tokens a record")
    ok = True
    try:
        from transformers import PreTrainedTokenizerFast  # type: ignore[import-not-found]
    except ImportError:
        print("transformers not installed: no reference run (pip install transformers to compare)")
        return 0
    tok = PreTrainedTokenizerFast(tokenizer_file=str(WORK / "tokenizer.json"), eos_token="<|im_end|>")
    tok.chat_template = CHATML

    def reference() -> list[int]:
        return [len(tok.apply_chat_template(r.to_messages(), tokenize=True)["input_ids"]) for r in data]

    ref, t_ref = timed(reference)
    same = ref == exact
    ratio = t_exact / t_ref if t_ref else float("inf")
    print(f"transformers apply_chat_template {t_ref:5.2f} s CPU   counts identical: {same}")
    print(f"ratio itkit / transformers: {ratio:.2f} (target <= {TIME_RATIO_TARGET})")
    ok = same and ratio <= TIME_RATIO_TARGET
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
