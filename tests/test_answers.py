"""One answer-agreement module: the writer's check, the rule judge inside the accuracy reward,
the offline match judge and evaluation give one answer one verdict."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sifdata.answers import answers_agree, extract_choice, first_number, rule_agreement, yes_no
from sifeval.adapters import choice_letter
from sifmodel.judge import JudgeItem, MatchJudge, judge_answers, rule_score


def _verdicts(answer: str, reference: str) -> dict[str, float | None]:
    """Every place that decides whether ``answer`` states ``reference``."""
    match = MatchJudge().score_many([JudgeItem("q", reference, answer)])[0].score
    rewarded = judge_answers([JudgeItem("q", reference, answer)], MatchJudge())[0].score
    rule = rule_score(answer, reference)
    return {
        "writer check": float(answers_agree(answer, reference)),
        "match judge": match,
        "accuracy reward (rules, then the match judge)": rewarded,
        "rule judge": rule if rule is not None else float(answers_agree(answer, reference)),
    }


@pytest.mark.parametrize(
    ("answer", "reference", "agree"),
    [
        ("Correct, it is.", "yes", True),  # the reported disagreement: 1.0 by one rule set, 0 by another
        ("It is true.", "Yes.", True),
        ("Incorrect.", "no", True),
        ("The answer is yes.", "Yes", True),
        ("No, it is not.", "yes", False),
        ("There are 3 dogs.", "three", True),
        ("two", "2", True),
        ("There are none.", "0", True),
        ("12", "2", False),
        ("(B)", "(B)", True),
        ("The answer is C", "B", False),
        ("The cup is red", "Red.", True),
        ("Reddish", "red", False),
    ],
)
def test_every_consumer_gives_the_same_verdict(answer: str, reference: str, agree: bool) -> None:
    verdicts = _verdicts(answer, reference)
    assert set(verdicts.values()) == {float(agree)}, verdicts


words = st.sampled_from(["yes", "no", "correct", "false", "3", "three", "2", "red", "cup", "B", "(C)", "none", "a"])
texts = st.lists(words, min_size=1, max_size=4).map(" ".join)


@given(texts, texts)
def test_the_rules_and_the_agreement_never_disagree(answer: str, reference: str) -> None:
    verdicts = _verdicts(answer, reference)
    assert len(set(verdicts.values())) == 1, verdicts


def test_readings_are_literal() -> None:
    assert yes_no("Correct, it is.") == "yes" and yes_no("no idea, yes") == "no" and yes_no("maybe") is None
    assert first_number("No, there are 4.") == 4 and first_number("no") is None and first_number("none") == 0
    assert extract_choice("Based on the image") is None and extract_choice("The answer is (D).") == "D"
    assert rule_agreement("a red cup", "red") is None  # free-form: no rule, containment decides
    assert choice_letter("The white one.", ["black", "white"]) == "B"  # evaluation reads options the same way
