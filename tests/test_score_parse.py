"""The judge-answer parser of ``itkit score``: what is read as a score, what is rejected (and retried)."""

from __future__ import annotations

import pytest

from itkit.llm.responses import CUT_OFF_REASON
from itkit.methods.score.parse import REASON_MAX_CHARS, Rejected, parse_score


@pytest.mark.parametrize(
    "answer, score, reason",
    [
        ("Score: 4/5", 4.0, None),
        ("**4**", 4.0, None),
        ("4.5", 4.5, None),
        ("Rating: 4 out of 5", 4.0, None),
        ("Score: 4\nReason: Accurate and complete.", 4.0, "Accurate and complete."),
        ("**Score:** 3\n**Reason:** Misses the second part.", 3.0, "Misses the second part."),
        ("4.5\n\nThe response is accurate but misses one detail.", 4.5, "The response is accurate but misses one detail."),
        ("Rating: [[2]]", 2.0, None),
        ("[[5]]", 5.0, None),
        ('{"score": 5, "reason": "Perfect."}', 5.0, "Perfect."),
        ('```json\n{"rating": "4/5", "explanation": "ok"}\n```', 4.0, "ok"),
        ("On a scale of 1 to 5, I rate it 4.", 4.0, None),
        ("Score (1-5): 2\nThe answer gets 1 fact wrong.", 2.0, "The answer gets 1 fact wrong."),
        ("I would give this response a 3 because it skips a step.", 3.0, "because it skips a step."),
        ("The response lists 3 examples. Score: 4", 4.0, "The response lists 3 examples."),
        ("Score: 4\nReason: It cites the 1990 census correctly.", 4.0, "It cites the 1990 census correctly."),
        ("Score: 4 ... overall score: 4/5", 4.0, None),
        ("<think>2 or 3? Let me see.</think>\nScore: 3", 3.0, None),
        ("My rating is 5.", 5.0, None),
        ("Score:\n\n1", 1.0, None),
        ("Score: 1.0", 1.0, None),
    ],
)
def test_scores_judges_write_are_read(answer, score, reason):
    judgement = parse_score(answer, 1, 5)
    assert judgement.score == score and isinstance(judgement.score, float)
    assert judgement.reason == reason


@pytest.mark.parametrize(
    "answer, why",
    [
        ("Score: 3\nOn reflection, final score: 4", "more than one labelled score (3, 4)"),
        ("3 or 4", "more than one number (3, 4)"),
        ("It lists 2 tips and 3 warnings.", "more than one number (2, 3)"),
        ("Score: 7", "the score 7 is outside the scale 1-5"),
        ("Score: 0", "the score 0 is outside the scale 1-5"),
        ("Score: -1", "the score -1 is outside the scale 1-5"),
        ("Score: 8/10", "another scale (8/10)"),
        ("Rating: 4 out of 10", "another scale (4/10)"),
        ("A solid answer overall.", "the answer gives no score"),
        ("<think>I think 4", "the answer gives no score"),
        ('{"score": true}', "the answer gives no score"),
    ],
)
def test_answers_without_one_score_in_the_scale_are_rejected(answer, why):
    with pytest.raises(Rejected) as caught:
        parse_score(answer, 1, 5)
    assert why in caught.value.reason
    assert caught.value.raw == answer


def test_an_answer_cut_off_before_its_score_asks_for_more_tokens():
    with pytest.raises(Rejected) as caught:
        parse_score("<think>First, the response", 1, 5, finish_reason="length")
    assert caught.value.reason == CUT_OFF_REASON  # the engine's retry then doubles max_tokens
    # a score given before the cut is a score
    assert parse_score("Score: 4\nReason: The response is accu", 1, 5, finish_reason="length").score == 4.0


def test_other_scales_and_long_reasons():
    assert parse_score("Score: 85/100", 0, 100).score == 85.0
    assert parse_score("Score: 0", 0, 10).score == 0.0
    long = parse_score("Score: 3\nReason: " + "word " * 200, 1, 5).reason
    assert long is not None and len(long) == REASON_MAX_CHARS and long.endswith("\u2026")
