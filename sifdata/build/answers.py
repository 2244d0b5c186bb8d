"""Does a written answer agree with the ground truth? Rules that need no model."""

from __future__ import annotations

import re
import string

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_NUMBER_WORDS = {
    "zero": 0,
    "none": 0,
    "no": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
}
_YES_NO = {"yes": "yes", "no": "no", "true": "yes", "false": "no"}


def normalize_answer(text: str) -> str:
    """Lower case, no punctuation, no articles, single spaces."""
    text = text.lower().translate(str.maketrans("", "", string.punctuation))
    return " ".join(_ARTICLES.sub(" ", text).split())


def first_number(text: str) -> float | None:
    """The first number written in digits or as a small English word."""
    match = re.search(r"-?\d+(?:\.\d+)?", text.replace(",", ""))
    if match:
        return float(match.group(0))
    for word in normalize_answer(text).split():
        if word in _NUMBER_WORDS and word != "no":
            return float(_NUMBER_WORDS[word])
    return None


def answers_agree(answer: str, ground_truth: str) -> bool:
    """True when ``answer`` states ``ground_truth``: same yes/no, same number, or contains it."""
    truth, said = normalize_answer(ground_truth), normalize_answer(answer)
    if not truth:
        return False
    if truth in _YES_NO:
        words = said.split()
        return bool(words) and _YES_NO.get(words[0]) == _YES_NO[truth]
    truth_number = first_number(ground_truth)
    if truth_number is not None and re.fullmatch(r"-?\d+(?:\.\d+)?|[a-z]+", truth):
        said_number = first_number(answer)
        if said_number is not None or truth.isdigit():
            return said_number == truth_number
    return said == truth or re.search(rf"\b{re.escape(truth)}\b", said) is not None
