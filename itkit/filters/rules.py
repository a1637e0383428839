"""The quality rules: empty, placeholder, alternation, non_text, refusal, length.

Each rule checks one kind of defect seen in public instruction data and
returns the reason a record must be removed (naming the field or turn and
quoting the offending text), or None. The policies, with their tricky cases,
are written in each class's docstring; the README section repeats them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from itkit.errors import UsageError
from itkit.filters.base import (
    Rule,
    check_bound,
    compile_patterns,
    is_blank,
    iter_fields,
    prompt_before,
    quote,
    text_tuple,
    turn_label,
)
from itkit.records import Record, conversation_problem
from itkit.tokens import DEFAULT_ENCODING, TokenCounter

# ---------------------------------------------------------------------------
# empty
# ---------------------------------------------------------------------------


@dataclass
class EmptyRule(Rule):
    """The last exchange has an empty instruction or an empty response.

    "Empty" means nothing but whitespace or invisible characters (zero-width
    space, BOM). The instruction is the last user turn itself: an instruction
    that is empty while the record has an input (Alpaca ``input``, Dolly
    ``context``) is still removed, since the task is missing. A record that ends
    with the user (no response at all) is the ``alternation`` rule's case, and
    empty turns earlier in a conversation too, so the two rules never overlap.
    """

    name = "empty"
    description = "the instruction (last user turn) or the final response is empty"

    def check(self, record: Record) -> str | None:
        last = record.last_user_index
        if last is None:
            return None  # no user turn at all: alternation
        if is_blank(record.turns[last].content):
            return f"{turn_label(record, last)} is empty"
        if record.has_output and not record.turns[-1].tool_calls and is_blank(record.output):
            return f"{turn_label(record, len(record.turns) - 1)} is empty"
        return None


# ---------------------------------------------------------------------------
# placeholder
# ---------------------------------------------------------------------------

DEFAULT_PLACEHOLDERS: tuple[str, ...] = ("no output", "nooutput", "no input", "noinput", "n/a")
"""Placeholder texts, compared with a whole field after :func:`placeholder_key` normalisation."""

_BRACKETS = {"<": ">", "[": "]", "(": ")", "{": "}"}
_WS = re.compile(r"\s+")


def placeholder_key(text: str) -> str:
    """How a field is compared with the placeholder list.

    Case-folded; surrounding whitespace, quotes and one trailing period
    dropped; one pair of enclosing brackets dropped; ``_`` and ``-`` read as
    spaces; runs of whitespace as one space. So "<No Output>", "no_output",
    "No output." and "[NO OUTPUT]" all give "no output".
    """
    key = text.strip().strip("\"'`").strip().casefold()
    if key.endswith("."):
        key = key[:-1].rstrip()
    if len(key) >= 2 and _BRACKETS.get(key[0]) == key[-1]:
        key = key[1:-1].strip()
    key = key.replace("_", " ").replace("-", " ")
    return _WS.sub(" ", key).strip()


@dataclass
class PlaceholderRule(Rule):
    """A whole instruction, input or response is a placeholder such as "<No Output>", "N/A", "<noinput>".

    The comparison is on the whole field, case-insensitive, after
    :func:`placeholder_key` normalisation: "N/A" as the entire response is a
    placeholder, "The answer is N/A because..." is not. Every user turn, the
    input and every assistant turn are checked. (The Alpaca loader already
    turns an input of "<noinput>"/"No input" into an empty input; the rule
    catches these markers in other fields and formats, e.g. a Dolly context
    or a "<noinput>" that leaked into an output.)

    ``keep_requested_placeholders`` (on by default): a response is kept when
    the prompt it answers itself mentions that placeholder, as in "Extract the
    date; write N/A if there is none." -> "N/A"; there "N/A" is the correct
    short answer, not a missing one. "None" is deliberately NOT in the list:
    "None." is the correct answer to many questions ("How many moons does
    Venus have?"). Pass your own ``placeholders`` to widen or narrow the list.
    """

    name = "placeholder"
    description = 'a whole field that is a placeholder: "<No Output>", "N/A", "<noinput>"...'

    placeholders: tuple[str, ...] = DEFAULT_PLACEHOLDERS
    keep_requested_placeholders: bool = True

    def __post_init__(self) -> None:
        self.placeholders = text_tuple(self.name, "placeholders", self.placeholders)
        self._keys = frozenset(k for k in (placeholder_key(p) for p in self.placeholders) if k)
        # fields longer than this cannot be a placeholder: skip normalising long texts
        self._max_len = max((len(p) for p in self.placeholders), default=0) + 16

    def _short(self, text: str) -> bool:
        return len(text) <= self._max_len or len(text.strip()) <= self._max_len

    def check(self, record: Record) -> str | None:
        keys = self._keys
        last_user = record.last_user_index
        for i, turn in enumerate(record.turns):
            if turn.role == "tool":
                continue  # a tool's result is data ("n/a" is a fine answer from an API)
            key = placeholder_key(turn.content) if self._short(turn.content) else ""
            if key in keys:
                if turn.role == "assistant" and self.keep_requested_placeholders and _mentions(prompt_before(record, i), key):
                    continue
                return f"{turn_label(record, i)} is the placeholder {quote(turn.content)}"
            if i == last_user and record.input and self._short(record.input) and placeholder_key(record.input) in keys:
                return f"input is the placeholder {quote(record.input)}"
        return None


def _mentions(prompt: str, key: str) -> bool:
    """Does the prompt name this placeholder as a possible answer (whole word, any case)?"""
    if not prompt:
        return False
    pattern = r"(?<![\w/])" + re.escape(key).replace(r"\ ", r"[\s_-]*") + r"(?![\w/])"
    return re.search(pattern, prompt, re.IGNORECASE) is not None


# ---------------------------------------------------------------------------
# alternation
# ---------------------------------------------------------------------------


@dataclass
class AlternationRule(Rule):
    """The conversation cannot be trained as strictly alternating user/assistant exchanges.

    The loaders already reject files whose turns do not alternate or start with
    the assistant, so for loaded data this rule catches what a valid
    :class:`Record` can still hold:

    - a conversation that ends with a user turn, i.e. no response to learn
      (ShareGPT dumps often end with an unanswered human turn; LLaMA-Factory
      skips rows with an odd number of turns);
    - an empty turn before the last exchange (FastChat's cleaning cuts the
      conversation there; the empty final instruction/response is the
      ``empty`` rule's);
    - a record with no turns at all.

    It also re-checks alternation itself, for records built in code (the
    rewrite methods, ``Record.model_construct``) that bypass validation.
    """

    name = "alternation"
    description = "no final response, an empty turn mid-conversation, turns that do not alternate"

    def check(self, record: Record) -> str | None:
        turns = record.turns
        if not turns:
            return "the record has no turns"
        problem = conversation_problem(turns)
        if problem:
            return problem
        if turns[-1].role == "user":
            if len(turns) == 1:
                return "no response: the record holds only the instruction"
            return f"the conversation ends with an unanswered user turn (turn {len(turns)})"
        last_user = record.last_user_index or 0
        for i in range(last_user):
            if is_blank(turns[i].content) and not turns[i].tool_calls and turns[i].role != "tool":
                return f"turn {i + 1} ({turns[i].role}) is empty in the middle of the conversation"
        return None


# ---------------------------------------------------------------------------
# non_text
# ---------------------------------------------------------------------------

DEFAULT_NON_TEXT_PATTERNS: tuple[str, ...] = (
    # URLs
    r"(?:https?|ftp)://\S+",
    r"www\.[\w-]+\.\S+",
    # bracketed media markers: <Picture Attached>, [image], (photo), <image 1>, [Attached Image]
    r"[<\[({]\s*(?:attached\s+)?(?:picture|image|img|photo|photograph|screenshot|video|audio|sound|file|attachment|figure)s?"
    r"(?:\s+(?:attached|here|omitted|removed|below|\d+))?\s*[>\])}]",
    # bare "picture attached" / "image attached"
    r"(?:picture|image|photo|screenshot|video|audio|file)s?\s+attached\.?",
    # an HTML image tag or a data URI
    r"<img\b[^>]*>",
    r"data:[a-z]+/[\w.+-]+;base64,\S+",
    # a bare file name of a media or document file
    r"\S+\.(?:png|jpe?g|gif|bmp|webp|svg|tiff?|heic|mp3|wav|ogg|flac|m4a|mp4|mov|avi|mkv|webm|pdf|docx?|xlsx?|pptx?)",
)
"""Regexes for things a text-only model cannot read. A field is non-text when it is
nothing but one or more of these, separated by whitespace."""

DEFAULT_URL_SUBJECT_WORDS: tuple[str, ...] = ("url", "urls", "domain", "hostname", "query string", "hyperlink")
"""Words that make a URL the text to work on ("Extract the domain of this URL")."""

MAX_NON_TEXT_CHARS = 2048
"""Longer fields are text whatever they contain (and are not matched, to keep the rule fast)."""

_URL_ONLY = re.compile(r"(?:(?:https?|ftp)://\S+|www\.[\w-]+\.\S+)(?:\s+(?:(?:https?|ftp)://\S+|www\.[\w-]+\.\S+))*", re.IGNORECASE)


@dataclass
class NonTextRule(Rule):
    """An instruction or input that is nothing but a URL, a media file name or an attachment marker.

    The WHOLE field must consist of such items (``non_text_patterns``,
    separated by whitespace): an input "https://example.com/article" or
    "<Picture Attached>" is removed; "Summarise https://example.com/article in
    one line" is kept, and so is any text that merely mentions an image. Every
    user turn and the input are checked; responses are not (a link can be a
    correct answer).

    A URL-only input is kept when the instruction talks about URLs as text
    (``url_subject_words``, whole words: "Extract the domain from this URL"):
    the URL is then the data, not a page the model would have to fetch.
    """

    name = "non_text"
    description = "an instruction or input that is only a URL, a file name or <Picture Attached>"

    non_text_patterns: tuple[str, ...] = DEFAULT_NON_TEXT_PATTERNS
    url_subject_words: tuple[str, ...] = DEFAULT_URL_SUBJECT_WORDS

    def __post_init__(self) -> None:
        self.non_text_patterns = text_tuple(self.name, "non_text_patterns", self.non_text_patterns)
        self.url_subject_words = text_tuple(self.name, "url_subject_words", self.url_subject_words)
        item = compile_patterns(self.name, "non_text_patterns", self.non_text_patterns)
        self._whole = (
            re.compile(rf"(?:{item.pattern})(?:\s+(?:{item.pattern}))*", re.IGNORECASE) if item is not None else None
        )
        words = [re.escape(w).replace(r"\ ", r"\s+") for w in self.url_subject_words if w.strip()]
        self._subject = re.compile(rf"\b(?:{'|'.join(words)})\b", re.IGNORECASE) if words else None

    def check(self, record: Record) -> str | None:
        if self._whole is None:
            return None
        for kind, label, text in iter_fields(record, assistant=False):
            stripped = text.strip()
            if not stripped or len(stripped) > MAX_NON_TEXT_CHARS or not self._whole.fullmatch(stripped):
                continue
            if (
                kind == "input"
                and self._subject is not None
                and _URL_ONLY.fullmatch(stripped)
                and self._subject.search(record.instruction)
            ):
                continue
            return f"{label} is not text: {quote(stripped)}"
        return None


# ---------------------------------------------------------------------------
# refusal
# ---------------------------------------------------------------------------

_I_CANT = (
    r"(?:i (?:cannot|can ?not|can't|won't|will not|am unable to|am not able to|am not allowed to|am not permitted to"
    r"|must decline|do not have (?:access|the ability)|don't have (?:access|the ability))"
    r"|i'm (?:unable to|not able to|not allowed to|not permitted to))"
)
_AS_AN_AI = r"(?:as an ai\b[^,.!?]{0,40},? )?"

DEFAULT_REFUSAL_OPENINGS: tuple[str, ...] = (
    # I'm sorry, but I can't... / I am afraid I cannot... / I'm sorry, as an AI, I cannot...
    rf"(?:i'm|i am) (?:so |very |truly |really )?(?:sorry|afraid)[,.!]? (?:but |however,? )?{_AS_AN_AI}{_I_CANT}",
    rf"(?:i apologi[sz]e|my apologies|apologies)[,.!]? (?:but |however,? )?{_AS_AN_AI}{_I_CANT}",
    rf"sorry[,.!]? (?:but |however,? )?{_AS_AN_AI}{_I_CANT}",
    rf"unfortunately,? {_AS_AN_AI}{_I_CANT}",
    # I cannot fulfill / comply with / assist with / help you with / ... that request
    r"(?:i (?:cannot|can ?not|can't|won't|will not|am unable to|am not able to)|i'm (?:unable|not able) to) "
    r"(?:fulfil+|comply|assist|help (?:you )?with|provide|create|generate|write|produce|engage in|answer|respond to"
    r"|complete|participate in|support|condone|promote|do that|do this)\b",
    r"i must (?:respectfully |politely )?(?:decline|refuse)\b",
    r"(?:i'm|i am) not comfortable (?:with|writing|creating|providing|generating|answering|doing)\b",
    r"it(?:'s| is| would be) (?:not appropriate|inappropriate|unethical) for me to\b",
)
"""Refusals, matched at the START of a response (after leading quotes, markdown and whitespace)."""

DEFAULT_BOILERPLATE: tuple[str, ...] = (
    r"\bas an ai language model\b",
    r"\bas an? (?:ai|large language|language) model,? i\b",
    r"\bas an ai(?: assistant| chatbot| model)?,? i (?:do not|don't|cannot|can't|am not|am unable|have no|am just|am only)\b",
    r"\bas an ai (?:developed|created|trained|made|built|designed) by\b",
    r"\bi(?:'m| am) (?:just |only |merely |simply )?an? (?:ai|artificial intelligence)"
    r"(?: language model| assistant| model| chatbot| program)?"
    r"(?=[,.;!]| and\b| so\b| that\b| who\b| developed\b| created\b| trained\b| designed\b| built\b| made\b| without\b| with no\b)",
    r"\bi (?:was|am|have been) (?:trained|created|developed|made|built|designed) by openai\b",
    r"\bmy (?:knowledge|training)(?: data)? (?:cutoff|cut-off)\b",
    r"\bas of my (?:last )?(?:knowledge|training)(?: data)? (?:update|cutoff|cut-off)\b",
    r"\bi (?:do not|don't) have personal (?:opinions|feelings|emotions|beliefs|preferences|experiences)\b",
    r"\bi (?:do not|don't|cannot|can't) (?:browse|access) the internet\b",
    r"\bi (?:do not|don't) have (?:access to )?real-time (?:information|data)\b",
)
"""Assistant boilerplate, matched ANYWHERE in a response."""

_CURLY = str.maketrans({"\u2018": "'", "\u2019": "'", "\u02bc": "'", "\u201c": '"', "\u201d": '"'})
_LEAD = " \t\r\n\"'`*_#>-"


def normalise_response(text: str) -> str:
    """Straight apostrophes and single spaces, so patterns can be written plainly."""
    return _WS.sub(" ", text.translate(_CURLY)).strip()


@dataclass
class RefusalRule(Rule):
    """A response that refuses, or that carries "As an AI language model" style boilerplate.

    Two lists of case-insensitive regexes, written against text with straight
    apostrophes and single spaces:

    - ``refusal_openings`` match only at the START of a response (after
      leading quotes, markdown and whitespace): "I'm sorry, but I can't help
      with that", "I cannot fulfill this request", "Unfortunately, I am unable
      to...". An apology alone is not a refusal ("I'm sorry to hear that. Here
      are some tips..."), and "sorry" or "I cannot" in the middle of a
      response is never matched by these.
    - ``boilerplate`` match ANYWHERE in a response: phrases that only an
      assistant talking about itself writes ("As an AI language model",
      "As a large language model, I", "my knowledge cutoff", "I don't have
      personal opinions"). Mentioning a language model is not enough: "GPT-4
      is a large language model" is kept.

    Every assistant turn of a conversation is checked.
    """

    name = "refusal"
    description = 'a refusal opening a response ("I\'m sorry, but I can\'t") or AI boilerplate in it ("As an AI language model")'

    refusal_openings: tuple[str, ...] = DEFAULT_REFUSAL_OPENINGS
    boilerplate: tuple[str, ...] = DEFAULT_BOILERPLATE

    def __post_init__(self) -> None:
        self.refusal_openings = text_tuple(self.name, "refusal_openings", self.refusal_openings)
        self.boilerplate = text_tuple(self.name, "boilerplate", self.boilerplate)
        self._opening = compile_patterns(self.name, "refusal_openings", self.refusal_openings)
        self._boilerplate = compile_patterns(self.name, "boilerplate", self.boilerplate)

    def check(self, record: Record) -> str | None:
        for i, turn in enumerate(record.turns):
            if turn.role != "assistant" or not turn.content:
                continue
            text = normalise_response(turn.content)
            if self._opening is not None:
                m = self._opening.match(text.lstrip(_LEAD))
                if m:
                    return f"{turn_label(record, i)} is a refusal: {quote(m.group(0))}"
            if self._boilerplate is not None:
                m = self._boilerplate.search(text)
                if m:
                    return f"{turn_label(record, i)} has assistant boilerplate: {quote(m.group(0))}"
        return None


# ---------------------------------------------------------------------------
# length
# ---------------------------------------------------------------------------

LengthUnit = Literal["words", "tokens"]
LENGTH_UNITS: tuple[str, ...] = ("words", "tokens")
LENGTH_BOUNDS: tuple[str, ...] = (
    "min_instruction",
    "max_instruction",
    "min_input",
    "max_input",
    "min_response",
    "max_response",
)


@dataclass
class LengthRule(Rule):
    """A field shorter than its minimum or longer than its maximum, in words or tokens.

    Bounds are inclusive and per field: ``*_instruction`` applies to every user
    turn, ``*_response`` to every assistant turn, ``*_input`` to the input
    (Alpaca ``input``, Dolly ``context``) only when the record has one, since
    an input is optional. Words are whitespace-separated (so a Chinese or
    Japanese sentence is one "word": use tokens for such data); tokens are
    counted with tiktoken's ``encoding`` (cl100k_base by default). With no
    bound set the rule would remove nothing, so building it then is an error.
    """

    name = "length"
    description = "a user turn, input or response outside min/max bounds, in words or tokens"

    min_instruction: int | None = None
    max_instruction: int | None = None
    min_input: int | None = None
    max_input: int | None = None
    min_response: int | None = None
    max_response: int | None = None
    length_unit: LengthUnit = "words"
    encoding: str = DEFAULT_ENCODING

    def __post_init__(self) -> None:
        for param in LENGTH_BOUNDS:
            check_bound(self.name, param, getattr(self, param))
        if all(getattr(self, p) is None for p in LENGTH_BOUNDS):
            raise UsageError(f"rule 'length' needs at least one bound: {', '.join(LENGTH_BOUNDS)}")
        for kind in ("instruction", "input", "response"):
            low, high = getattr(self, f"min_{kind}"), getattr(self, f"max_{kind}")
            if low is not None and high is not None and low > high:
                raise UsageError(f"rule 'length': min_{kind} ({low}) is greater than max_{kind} ({high})")
        if self.length_unit not in LENGTH_UNITS:
            raise UsageError(f"rule 'length': length_unit must be words or tokens, not {self.length_unit!r}")
        self._counter = TokenCounter(self.encoding) if self.length_unit == "tokens" else None
        self._bounds: dict[str, tuple[int | None, int | None]] = {
            kind: (getattr(self, f"min_{kind}"), getattr(self, f"max_{kind}"))
            for kind in ("instruction", "input", "response")
        }

    def measure(self, text: str) -> int:
        if self._counter is not None:
            return self._counter.count(text)
        return len(text.split())

    def check(self, record: Record) -> str | None:
        bounds = self._bounds
        unit = self.length_unit
        for kind, label, text in iter_fields(record):
            low, high = bounds[kind]
            if low is None and high is None:
                continue
            n = self.measure(text)
            if low is not None and n < low:
                return f"{label} has {n} {_unit(unit, n)}, fewer than min_{kind} {low}"
            if high is not None and n > high:
                return f"{label} has {n} {_unit(unit, n)}, more than max_{kind} {high}"
        return None


def _unit(unit: str, n: int) -> str:
    return unit[:-1] if n == 1 else unit


__all__ = [
    "AlternationRule",
    "DEFAULT_BOILERPLATE",
    "DEFAULT_NON_TEXT_PATTERNS",
    "DEFAULT_PLACEHOLDERS",
    "DEFAULT_REFUSAL_OPENINGS",
    "DEFAULT_URL_SUBJECT_WORDS",
    "EmptyRule",
    "LENGTH_BOUNDS",
    "LENGTH_UNITS",
    "LengthRule",
    "NonTextRule",
    "PlaceholderRule",
    "RefusalRule",
    "normalise_response",
    "placeholder_key",
]
