"""A model's own chat template, rendered as transformers' ``apply_chat_template`` renders it, without transformers.

The template is the Jinja text of ``chat_template`` in the tokenizer folder's
``tokenizer_config.json`` (a string, or a list of named templates: the one
named "default"), or of ``chat_template.jinja`` beside it. It is rendered the
way transformers does: a sandboxed environment with ``trim_blocks`` and
``lstrip_blocks``, the ``loopcontrols`` extension, a ``{% generation %}`` block
tag, a ``tojson`` filter that does not escape HTML and keeps non-ASCII, the
``raise_exception`` and ``strftime_now`` globals, and the variables
``messages``, ``tools``, ``add_generation_prompt`` and the special tokens of
the config (``bos_token``, ``eos_token``...). The rendered text is encoded
with ``add_special_tokens=False``, as transformers does, so a record's count
is exactly what a trainer that applies the template sees, generation markers
and end-of-turn tokens included.

Tool calls go to the template with ``arguments`` parsed into objects (the
Hugging Face convention; Axolotl parses them the same way) and the record's
``tools`` schemas.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any, Sequence

from itkit.errors import TokenizerError
from itkit.formats.tools import calls_with_object_arguments
from itkit.records import Record

CONFIG_FILE = "tokenizer_config.json"
TEMPLATE_FILE = "chat_template.jinja"
COUNT_BATCH = 1024
SPECIAL_TOKENS = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")


class TemplateRenderError(Exception):
    """The template refused a conversation (``raise_exception``) or failed on it."""


def _token_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("content"), str):  # a serialised AddedToken
        return value["content"]
    return None


def find_template(folder: Path) -> tuple[str | None, dict[str, Any]]:
    """The chat template of a tokenizer folder (None if it has none) and the template variables of its config."""
    config: dict[str, Any] = {}
    config_path = folder / CONFIG_FILE
    if config_path.is_file():
        try:
            loaded = json.loads(config_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise TokenizerError(f"--tokenizer {folder}: cannot read {CONFIG_FILE}: {exc}") from None
        if isinstance(loaded, dict):
            config = loaded
    template = config.get("chat_template")
    if isinstance(template, list):  # named templates: transformers uses "default"
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default")
    jinja_file = folder / TEMPLATE_FILE
    if not isinstance(template, str) and jinja_file.is_file():
        template = jinja_file.read_text(encoding="utf-8")
    variables: dict[str, Any] = {}
    for name in SPECIAL_TOKENS:
        text = _token_text(config.get(name))
        if text is not None:
            variables[name] = text
    extra = config.get("additional_special_tokens")
    if isinstance(extra, list):
        variables["additional_special_tokens"] = [t for t in (_token_text(x) for x in extra) if t is not None]
    return (template if isinstance(template, str) and template.strip() else None), variables


class ChatTemplate:
    """A compiled chat template with the special-token variables of its tokenizer config."""

    def __init__(self, source: str, variables: dict[str, Any] | None = None):
        try:
            import jinja2
            from jinja2.ext import Extension, loopcontrols
            from jinja2.sandbox import ImmutableSandboxedEnvironment
        except ImportError:  # pragma: no cover - jinja2 is a dependency
            raise TokenizerError("rendering a chat template needs the 'jinja2' library (pip install jinja2)") from None

        class GenerationTag(Extension):
            """``{% generation %}...{% endgeneration %}``: marks assistant text (the spans TRL's assistant masks
            come from); renders its body, noting where it starts and ends while a render tracks them."""

            tags = {"generation"}

            def __init__(self, environment: Any):
                super().__init__(environment)
                self.blocks: list[str] | None = None
                self.spans: list[tuple[int, int]] | None = None

            def parse(self, parser: Any) -> Any:
                lineno = next(parser.stream).lineno
                body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
                return jinja2.nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

            def _body(self, caller: Any) -> str:
                text = caller()
                if self.spans is not None and self.blocks is not None:
                    start = len("".join(self.blocks))
                    self.spans.append((start, start + len(text)))
                return text

        def raise_exception(message: str) -> None:
            raise TemplateRenderError(message)

        def tojson(x: Any, ensure_ascii: bool = False, indent: Any = None, separators: Any = None, sort_keys: bool = False) -> str:
            return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

        def strftime_now(format: str) -> str:
            return datetime.now().strftime(format)

        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[GenerationTag, loopcontrols])
        env.filters["tojson"] = tojson
        env.globals["raise_exception"] = raise_exception
        env.globals["strftime_now"] = strftime_now
        try:
            self._template = env.from_string(source)
        except jinja2.TemplateError as exc:
            raise TokenizerError(f"the chat template does not compile: {exc}") from None
        self._errors = (jinja2.TemplateError, TypeError, ValueError, KeyError, IndexError, AttributeError, RecursionError)
        self._tracker = next(e for e in env.extensions.values() if isinstance(e, GenerationTag))
        self.variables = dict(variables or {})
        self.has_generation_tag = "generation" in source and self._tracker is not None

    def render(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None, add_generation_prompt: bool = False) -> str:
        """The text of a conversation; raises :class:`TemplateRenderError` when the template refuses it."""
        try:
            return self._template.render(
                messages=messages, tools=tools, documents=None, add_generation_prompt=add_generation_prompt, **self.variables
            )
        except TemplateRenderError:
            raise
        except self._errors as exc:
            raise TemplateRenderError(f"{type(exc).__name__}: {exc}") from None

    def render_with_spans(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None
    ) -> tuple[str, list[tuple[int, int]]]:
        """The text and the character spans of its ``{% generation %}`` blocks (as transformers tracks them)."""
        blocks: list[str] = []
        spans: list[tuple[int, int]] = []
        tracker = self._tracker
        tracker.blocks, tracker.spans = blocks, spans
        try:
            for block in self._template.generate(
                messages=messages, tools=tools, documents=None, add_generation_prompt=False, **self.variables
            ):
                blocks.append(block)
        except TemplateRenderError:
            raise
        except self._errors as exc:
            raise TemplateRenderError(f"{type(exc).__name__}: {exc}") from None
        finally:
            tracker.blocks, tracker.spans = None, None
        return "".join(blocks), spans


def template_messages(record: Record) -> list[dict[str, Any]]:
    """The messages a trainer hands the chat template: system first, tool-call arguments as objects."""
    messages = record.to_messages(include_system=bool(record.system))
    for message in messages:
        if "tool_calls" in message:
            message["tool_calls"] = calls_with_object_arguments(message["tool_calls"])
    return messages


class TemplateCounter:
    """Exact token counts of whole records: the chat template rendered, then encoded by the tokenizer."""

    exact = True

    def __init__(self, path: str, template: ChatTemplate, encode: Any, count_texts: Any, tokenizer: Any = None):
        self.path = path
        self._tokenizer = tokenizer
        """The ``tokenizers.Tokenizer`` (for character offsets), when the counter has one."""
        self.name = f"hf:{Path(path).name or path} (chat template)"
        self.template = template
        self._encode = encode
        self._count_texts = count_texts

    def count_many(self, texts: list[str]) -> list[int]:
        return self._count_texts(texts)

    def render(self, record: Record) -> str:
        return self.template.render(template_messages(record), record.tools)

    def encode(self, text: str) -> list[int]:
        return self._encode(text)

    def count_record(self, record: Record) -> int:
        """Tokens of the rendered record; raises :class:`TemplateRenderError`."""
        return len(self._encode(self.render(record)))

    def count_records(self, records: Sequence[Record]) -> list[int | str]:
        """Each record's tokens, or why the template cannot render it."""
        out: list[int | str] = []
        texts: list[str] = []
        where: list[int] = []
        for record in records:
            try:
                texts.append(self.render(record))
                where.append(len(out))
                out.append(0)
            except TemplateRenderError as exc:
                out.append(str(exc) or "the template refused the conversation")
        for start in range(0, len(texts), COUNT_BATCH):  # the tokenizer encodes a batch at once
            for i, n in zip(where[start : start + COUNT_BATCH], self._count_texts(texts[start : start + COUNT_BATCH])):
                out[i] = n
        return out

    def trained_mask(self, record: Record) -> list[bool]:
        """Which tokens of the rendered record are trained: those of the assistant turns with weight 1.

        With a ``{% generation %}`` template, the tokens of its generation blocks, one per assistant turn (what
        TRL's ``assistant_only_loss`` trains, mapped to tokens as transformers maps them); otherwise each turn's
        tokens after the conversation before it with the generation prompt (as LLaMA-Factory and Axolotl find
        a turn)."""
        messages = template_messages(record)
        assistant = [t for t in record.turns if t.role == "assistant"]
        if self.template.has_generation_tag and self._tokenizer is not None:
            text, spans = self.template.render_with_spans(messages, record.tools)
            if len(spans) == len(assistant):
                encoding = self._tokenizer.encode(text, add_special_tokens=False)
                mask = [False] * len(encoding.ids)
                for (start, end), turn in zip(spans, assistant):
                    first = encoding.char_to_token(start)
                    last = encoding.char_to_token(end - 1) if end > start else None
                    if not turn.trained or first is None:
                        continue
                    for j in range(first, (last + 1) if last is not None else len(mask)):
                        mask[j] = True
                return mask
        offset = len(messages) - len(record.turns)
        text = self.template.render(messages, record.tools)
        spans = []
        for i, turn in enumerate(record.turns):
            if not turn.trained:
                continue
            k = offset + i
            before = self.template.render(messages[:k], record.tools, add_generation_prompt=True)
            upto = self.template.render(messages[: k + 1], record.tools)
            if text.startswith(upto) and upto.startswith(before):
                spans.append((len(before), len(upto)))
        if self._tokenizer is not None:  # by characters: a token is trained when it starts inside a turn
            encoding = self._tokenizer.encode(text, add_special_tokens=False)
            return [any(a <= start < b for a, b in spans) for start, _ in encoding.offsets]
        ids = self._encode(text)
        mask = [False] * len(ids)
        for a, b in spans:
            for j in range(len(self._encode(text[:a])), min(len(self._encode(text[:b])), len(ids))):
                mask[j] = True
        return mask
