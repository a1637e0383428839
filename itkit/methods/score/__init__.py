"""LLM-as-judge scores for choosing the data (``itkit score``): quality after AlpaGasus, complexity after Deita.

- :mod:`.scorers`: a scorer is a prompt file under ``prompts/score/`` (or one's own) with its scale;
- :mod:`.parse`: the one score in a judge's answer, or a rejection the engine retries; never a made-up score;
- :mod:`.run`: the command as a library call (read, check, judge, write, report);
- :mod:`.distribution`: the score distribution the summaries and ``itkit stats`` show.

A score is stored as a float in ``record.metadata["scores"][<scorer name>]``, the judge's reason in
``metadata["score_reasons"][<scorer name>]``, and a provenance step ``{method: "score", scorer, score,
model, template, template_hash}`` says who gave it (:mod:`itkit.records`).
"""

from itkit.methods.score.parse import Judgement, parse_score
from itkit.methods.score.run import ScoreResult, score_file
from itkit.methods.score.scorers import Scorer, builtin_scorers, load_scorer, load_scorer_file, load_scorers

__all__ = [
    "Judgement",
    "ScoreResult",
    "Scorer",
    "builtin_scorers",
    "load_scorer",
    "load_scorer_file",
    "load_scorers",
    "parse_score",
    "score_file",
]
