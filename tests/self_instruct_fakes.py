"""A scripted stand-in for a model answering Self-Instruct prompts, shared by the method and CLI tests.

:func:`answer` looks at a request's messages and answers like a well-behaved model:

- a Self-Instruct generation prompt (a numbered list ending at ``N.``): new
  instructions numbered from N, made of words drawn (deterministically, from a
  hash of the prompt) from a large vocabulary, so they are mutually dissimilar
  under ROUGE-L;
- an Alpaca generation prompt: ``###``-separated Instruction/Input/Output blocks;
- the classification question: "Yes" when the task says "classify", else "No";
- instance prompts: ``Class label:`` examples (classification) or ``Example N``
  blocks with ``Output:`` (other tasks).
"""

from __future__ import annotations

import hashlib
import random
import re

from itkit.llm.base import LLM, ChatRequest, ChatResponse

VOCAB = [
    f"{a}{b}"
    for a in ("ka", "lo", "mi", "ne", "pu", "ra", "si", "to", "vu", "ze", "ba", "do", "fe", "gi", "ho")
    for b in ("ran", "mel", "tis", "dor", "vak", "lun", "pes", "qua", "rib", "sol", "tev", "wim", "xan", "yol")
]
VERBS = ["Describe", "Explain", "Summarize", "Compare", "Classify", "List", "Rewrite", "Suggest", "Evaluate", "Translate"]


def _rng(text: str) -> random.Random:
    return random.Random(int(hashlib.sha256(text.encode("utf-8")).hexdigest()[:16], 16))


def invented_instruction(rng: random.Random, verb: str | None = None) -> str:
    words = rng.sample(VOCAB, 9)
    return f"{verb or rng.choice(VERBS)} the {' '.join(words)}."


def last_user(messages) -> str:
    for m in reversed(list(messages)):
        if m["role"] == "user":
            return m["content"]
    return ""


def kind_of(messages) -> str:
    text = last_user(messages)
    if text.rstrip().lower().endswith("classification?"):
        return "classify"
    if "Class label:" in text and text.rstrip().splitlines()[-1].startswith("Task:"):
        return "clf_instances"
    if "Example 1" in text and text.rstrip().splitlines()[-1].startswith("Task:"):
        return "gen_instances"
    if text.rstrip().endswith("Instruction:"):
        return "alpaca"
    if re.search(r"\n\d+\.$", text.rstrip()):
        return "instructions"
    return "unknown"


def answer_text(messages, per_prompt: int = 5) -> str:
    text = last_user(messages)
    kind = kind_of(messages)
    rng = _rng(text)
    if kind == "instructions":
        start = int(re.search(r"\n(\d+)\.$", text.rstrip()).group(1))
        return "\n".join(f"{start + i}. {invented_instruction(rng)}" for i in range(per_prompt))
    if kind == "alpaca":
        start = int(re.search(r"\n(\d+)\. Instruction:$", text.rstrip()).group(1))
        blocks = []
        for i in range(per_prompt):
            n = start + i
            head = "" if i == 0 else f"{n}. Instruction: "
            inp = "<noinput>" if i % 2 else " ".join(rng.sample(VOCAB, 5))
            blocks.append(f"{head}{invented_instruction(rng)}\n{n}. Input:\n{inp}\n{n}. Output:\n{' '.join(rng.sample(VOCAB, 6))}")
        return " " + "\n###\n".join(blocks)
    if kind == "classify":
        task = text.rstrip().splitlines()[-2]
        return "Yes" if "classify" in task.lower() else "No"
    if kind == "clf_instances":
        return "Class label: Positive\nSentence: I love it.\nClass label: Negative\nSentence: I hate it."
    if kind == "gen_instances":
        return "Example 1\nInput: first input\nOutput: first output\nExample 2\nInput: second input\nOutput: second output"
    return "I am not sure what you want."


class ScriptedLLM(LLM):
    """A fake model at the interface: ``answer(request) -> str | ChatResponse``; every request is kept."""

    def __init__(self, answer=None):
        self.answer = answer or (lambda request: answer_text(request.messages))
        self.requests: list[ChatRequest] = []

    async def complete(self, request: ChatRequest) -> ChatResponse:
        self.requests.append(request)
        out = self.answer(request)
        if isinstance(out, ChatResponse):
            return out
        return ChatResponse(text=out, finish_reason="stop", prompt_tokens=100, completion_tokens=20, model=request.model)

    def kinds(self) -> list[str]:
        return [kind_of(r.messages) for r in self.requests]
