"""One answer-agreement module: the writer's check, the rule judge inside the accuracy reward,
the offline match judge and evaluation give one answer one verdict."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sifdata.answers import (
    answers_agree,
    extract_choice,
    first_number,
    read_choice,
    read_option,
    reference_option,
    rule_agreement,
    unboxed,
    yes_no,
)
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
    assert read_choice("The white one.", ["black", "white"]) == "B"  # evaluation reads options the same way


# The reply shapes of issue 8, with what the upstream parsers make of them (worked out by hand):
# Cambrian extract_mcq_answer (cambrian-mllm/cambrian@539ffc3 eval/eval/ade/ade_test.py L21-31:
# lower-case, text after the last "answer is"/"answer:", strip ".()", first character) and
# lmms-eval cv_bench _extract_answer_letter (lmms-eval@75571cf lmms_eval/tasks/cv_bench/utils.py
# L6-24: re.match(r"[\(\s]*([A-Z])[\)\.\s]*", IGNORECASE) at the start). Ours reads what the reply
# commits to; where the upstream parsers read a first character of prose, ours says None.
@pytest.mark.parametrize(
    ("reply", "ours", "cambrian", "lmms_eval"),
    [
        ("(c)", "C", "c", "C"),
        ("c.", "C", "c", "C"),
        ("c)", "C", "c", "C"),
        ("Answer: c", "C", "c", "A"),
        ("option c", "C", "o", "O"),
        ("**C**", "C", "*", ""),
        ("\\boxed{C}", "C", "\\", ""),
        ("A white cup.", None, "a", "A"),
        ("The answer is a cube.", None, "a", "T"),
        ("Based on the image, B", "B", "b", "B"),
        ("B", "B", "b", "B"),
        ("b", "B", "b", "B"),
        ("", None, "", ""),
    ],
)
def test_option_letters_in_every_shape(reply: str, ours: str | None, cambrian: str, lmms_eval: str) -> None:
    assert extract_choice(reply, "ABCD") == ours


def test_option_text_commits_only_when_one_option_matches() -> None:
    assert read_choice("A white cup.", ["black cup", "white cup"]) == "B"
    assert read_choice("The answer is a cube.", ["sphere", "cube"]) == "B"
    assert read_choice("a cube or a sphere", ["sphere", "cube"]) is None
    assert read_choice("B or C", ["x", "y", "z"]) is None


@pytest.mark.parametrize(
    "hedge", ["A or B", "The answer is A or B", "I would say A or D", "Both A and C", "Options A and B"]
)
def test_a_hedge_between_options_commits_to_none(hedge: str) -> None:
    """Found by running the upstream parsers beside ours: "A" before "or"/"and" is an option."""
    assert extract_choice(hedge, "ABCD") is None


# ----------------------------------------------------------------------------- the table, whole (issue 23)

DOCSTRING_TABLE = [  # extract_choice's docstring, row by row, and the cases beside its rules
    ("C", "C"),
    ("c", "C"),
    ("(c)", "C"),
    ("c.", "C"),
    ("c)", "C"),
    ("**C**", "C"),
    ("\\boxed{C}", "C"),
    ("Answer: c", "C"),
    ("option c", "C"),
    ("The answer is (C).", "C"),
    ("C) the left one", "C"),
    ("c. blue", "C"),
    ("c: blue", "C"),
    ("[c] blue", "C"),
    ("Based on the image, B", "B"),
    ("I pick (b) here", "B"),
    ("It is [d] then", "D"),
    ("B or C", None),
    ("A or B", None),
    ("A and C", None),
    ("between (a) and (c) I cannot tell", None),
    ("A white cup.", None),
    ("the answer is a cube", None),
    ("Based on the picture", None),
    ("the answer is a cube; the answer is B", "B"),  # an article skipped, the next statement read
    ("I think the cup is on the left, (b)", "B"),
    (" \t(C).\n", "C"),
    ("'C'", "C"),
    ('"d"!', "D"),
]


@pytest.mark.parametrize(("reply", "letter"), DOCSTRING_TABLE)
def test_every_row_of_the_reader_table(reply: str, letter: str | None) -> None:
    assert extract_choice(reply, "ABCD") == letter


def test_letters_outside_the_options_and_empty_replies() -> None:
    assert extract_choice("Based on the image, B looks right", "ABCD") == "B"  # only a, A, I are articles
    assert extract_choice("the answer is a cube, so the answer is B, not (C)", "ABCD") == "B"
    assert extract_choice("X", "ABCD") is None and extract_choice("CX", "ABCD") is None
    assert extract_choice("X") is None and extract_choice("The answer is H") == "H"  # A-H by default
    assert read_option("X", ()).letter is None
    assert extract_choice("E", "ABCD") is None and extract_choice("(e) is it", "ABCD") is None
    assert extract_choice("", "ABCD") is None and extract_choice("A", "") is None
    assert extract_choice("The answer is E", "ABCDE") == "E"
    assert extract_choice("The answer is (e)", "abcde") == "E"  # lower-case option letters are the same options
    assert read_option("The answer is (F).", ()).letter == "F"  # no options given: A-H


def test_references_and_rule_verdicts_by_hand() -> None:
    for reference, letter in (("(B)", "B"), ("B", "B"), ("B. a cat", "B"), ("B: a cat", "B"), ("B) a cat", "B")):
        assert reference_option(reference) == letter, reference
    for reference in ("Bob", "Blue", "B cat", "", "(Bob)"[1:]):
        assert reference_option(reference) is None, reference
    assert rule_agreement("(B) for sure", "(B)") is True and rule_agreement("A", "(B)") is False
    assert rule_agreement("Yes, it is.", "yes") is True and rule_agreement("No.", "Yes") is False
    assert rule_agreement("There are 3.", "3") is True and rule_agreement("3.0000001", "3") is False
    assert rule_agreement("about 4", "3") is False and rule_agreement("none written", "3") is False
    assert rule_agreement("yes", "Yes, the cup") is None  # a free-form reference: no rule
    assert answers_agree("a red cup", "") is False  # nothing to agree with
    assert answers_agree("It is the red cup.", "red cup") is True and answers_agree("a redcup", "red cup") is False


def test_boxed_wrappers_are_removed_to_the_last_one() -> None:
    assert unboxed("\\boxed{\\text{\\textbf{B}}}") == "B"
    assert unboxed("\\boxed{A} then \\boxed{\\mathrm{C}}") == "C"
    assert unboxed("\\boxed{\\text{x} and \\text{y}}") == "x and y"
    assert unboxed("no box") == "no box"
