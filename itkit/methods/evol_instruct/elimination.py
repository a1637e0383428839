"""Elimination: the four rules that make an evolution fail (Xu et al. 2023, section 3.3).

1. ``no_information_gain``: the evolved instruction brings nothing new over its
   parent. The model judges it with the equality prompt ("Equal" / "Not
   Equal"); an evolved instruction identical to its parent (ignoring case and
   whitespace) fails without asking.
2. ``sorry_response``: the evolved instruction's RESPONSE contains "sorry" and
   is under 80 words: the model could not answer it.
3. ``stop_words_response``: the RESPONSE holds only punctuation and stop words.
4. ``copied_markers``: the evolved INSTRUCTION copies the evolution prompt's own
   markers ("given prompt", "#Rewritten Prompt#"...).

Rules 2 and 3 look at the response, never at the instruction: an instruction
may well say "sorry" ("Write a sorry note to a neighbour"). Each rule is a pure
function with its thresholds as parameters; :class:`EliminationRules` bundles
the values of a run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

NO_INFORMATION_GAIN = "no_information_gain"
SORRY_RESPONSE = "sorry_response"
STOP_WORDS_RESPONSE = "stop_words_response"
COPIED_MARKERS = "copied_markers"
RULES: tuple[str, ...] = (NO_INFORMATION_GAIN, SORRY_RESPONSE, STOP_WORDS_RESPONSE, COPIED_MARKERS)
"""The rules in the paper's order (also the order of the summary)."""

SORRY_WORD = "sorry"
SORRY_MAX_WORDS = 80
"""Rule 2 fires when the response contains SORRY_WORD and has fewer than this many words."""

DEFAULT_MARKERS: tuple[str, ...] = (
    "#The Given Prompt#",
    "#Given Prompt#",
    "#Rewritten Prompt#",
    "#Created Prompt#",
    "given prompt",
    "rewritten prompt",
    "created prompt",
)
"""Rule 4: the paper's markers; each template adds its own (``data.markers``)."""

STOP_WORDS: frozenset[str] = frozenset(
    """
    i me my myself we our ours ourselves you you're you've you'll you'd your yours yourself yourselves
    he him his himself she she's her hers herself it it's its itself they them their theirs themselves
    what which who whom this that that'll these those am is are was were be been being have has had having
    do does did doing a an the and but if or because as until while of at by for with about against between
    into through during before after above below to from up down in out on off over under again further
    then once here there when where why how all any both each few more most other some such no nor not only
    own same so than too very s t can will just don don't should should've now d ll m o re ve y ain aren
    aren't couldn couldn't didn didn't doesn doesn't hadn hadn't hasn hasn't haven haven't isn isn't ma
    mightn mightn't mustn mustn't needn needn't shan shan't shouldn shouldn't wasn wasn't weren weren't
    won won't wouldn wouldn't
    """.split()
)
"""Rule 3: English stop words (the common NLTK list)."""

_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'"})
_SPACE = re.compile(r"\s+")


def words(text: str) -> list[str]:
    """Lower-cased words (letters and digits, inner apostrophes kept); punctuation and symbols are not words."""
    return _WORD.findall(text.translate(_APOSTROPHES).lower())


def copied_marker(instruction: str, markers: tuple[str, ...] = DEFAULT_MARKERS) -> str | None:
    """Rule 4: the first marker the instruction contains (case-insensitive), or None."""
    folded = instruction.casefold()
    for marker in markers:
        if marker.casefold() in folded:
            return marker
    return None


def is_identical(parent: str, evolved: str) -> bool:
    """Rule 1 without asking the model: the same text up to case and whitespace."""
    return _SPACE.sub(" ", parent).strip().casefold() == _SPACE.sub(" ", evolved).strip().casefold()


def is_sorry_response(response: str, word: str = SORRY_WORD, max_words: int = SORRY_MAX_WORDS) -> bool:
    """Rule 2: the response contains ``word`` (case-insensitive) and has fewer than ``max_words`` words."""
    return word.casefold() in response.casefold() and len(response.split()) < max_words


def is_only_stop_words(response: str, stop_words: frozenset[str] = STOP_WORDS) -> bool:
    """Rule 3: every word of the response is a stop word (a response of punctuation alone counts too)."""
    for token in words(response):
        if token in stop_words:
            continue
        if "'" in token and all(part in stop_words for part in token.split("'")):
            continue  # "i'm" -> i, m
        return False
    return True


@dataclass(frozen=True)
class EliminationRules:
    """The tunable values of the four rules for one run."""

    markers: tuple[str, ...] = DEFAULT_MARKERS
    sorry_word: str = SORRY_WORD
    sorry_max_words: int = SORRY_MAX_WORDS
    stop_words: frozenset[str] = field(default=STOP_WORDS)

    def instruction_rule(self, parent: str, evolved: str, extra_markers: tuple[str, ...] = ()) -> tuple[str, str] | None:
        """The rule the evolved instruction fails on its own (4, then 1 for an identical copy), with a detail."""
        marker = copied_marker(evolved, (*self.markers, *extra_markers))
        if marker is not None:
            return COPIED_MARKERS, f"the instruction contains the marker '{marker}'"
        if is_identical(parent, evolved):
            return NO_INFORMATION_GAIN, "the instruction is identical to its parent"
        return None

    def response_rule(self, response: str) -> tuple[str, str] | None:
        """The rule the evolved instruction's response fails (2, then 3), with a detail."""
        if is_sorry_response(response, self.sorry_word, self.sorry_max_words):
            return SORRY_RESPONSE, f"the response says '{self.sorry_word}' in {len(response.split())} words"
        if is_only_stop_words(response, self.stop_words):
            return STOP_WORDS_RESPONSE, "the response is only punctuation and stop words"
        return None
