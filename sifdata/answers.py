"""Does an answer agree with a reference? The one set of rules that needs no model.

The builder's writer check, the GRPO-SIF accuracy reward's rule judge, the offline match
judge and the evaluation adapters all read answers through this module, so that one answer
never gets two verdicts ("Correct, it is." against "yes" is agreement everywhere).

- :func:`rule_agreement`: the verdict of a rule where the reference's type has one (an option
  letter, yes/no, a number), ``None`` for a free-form reference;
- :func:`answers_agree`: that verdict, else the normalized reference stated in the answer;
- :func:`extract_choice` / :func:`read_choice`, :func:`yes_no`, :func:`first_number`: how an
  answer is read.

Readings are literal: the first yes/no word said, the first number written, the option
letter committed to. A hedge ("yes or no") counts as its first word, never as both.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from typing import Literal

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)
NUMBER_WORDS = {
    "zero": 0,
    "none": 0,
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
YES_WORDS = frozenset({"yes", "true", "correct"})
NO_WORDS = frozenset({"no", "false", "incorrect"})
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_OPTION_REFERENCE = re.compile(r"^\(?([A-Z])\)?(?:[.:)]\s*.*)?$")


def normalize_answer(text: str) -> str:
    """Lower case, no punctuation, no articles, single spaces."""
    return " ".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCTUATION)).split())


def first_number(text: str) -> float | None:
    """The first number written in digits, else the first small English number word.

    "no" is not read as zero here: it is the answer to a yes/no question.
    """
    match = _NUMBER.search(text.replace(",", ""))
    if match:
        return float(match.group(0))
    for word in normalize_answer(text).split():
        if word in NUMBER_WORDS:
            return float(NUMBER_WORDS[word])
    return None


def yes_no(text: str) -> Literal["yes", "no"] | None:
    """The first yes/no word the text says ("Correct, it is." -> yes), or None."""
    for word in normalize_answer(text).split():
        if word in YES_WORDS:
            return "yes"
        if word in NO_WORDS:
            return "no"
    return None


# ----------------------------------------------------------------------------- option letters

_BOXED = re.compile(r"\\boxed\s*\{\s*(?:\\text(?:bf)?\s*\{)?\s*([^{}]*?)\s*\}?\s*\}")
_MARKUP = re.compile(r"[*_`$]+")
_ARTICLE_LETTERS = frozenset("aAI")  # letters that are English words: "a cat", "A cat", "I think"
LETTERS = string.ascii_uppercase


def _strip_markup(text: str) -> str:
    """``**C**`` -> ``C``, ``\\boxed{C}`` -> ``C``, ``$\\boxed{\\text{B}}$`` -> ``B``."""
    return _MARKUP.sub("", _BOXED.sub(r"\1", text)).strip()


_HEDGE = re.compile(r"\s*\)?\s*(?:,|or|and|/)\s*(?:\(?[A-Z]\b|\([a-z]\))")


def _is_article(letter: str, after: str) -> bool:
    """``a`` or ``A`` (or ``I``) followed by a lower-case word is English, not an option; but
    "A or B", "A and C" name options."""
    if _HEDGE.match(after):
        return False
    return letter in _ARTICLE_LETTERS and re.match(r"\s+[a-z]", after) is not None


def extract_choice(text: str, letters: str = "ABCDEFGH") -> str | None:
    """The option letter (upper case) a reply commits to, or None when it commits to none.

    The one reader of option letters, for every multiple-choice benchmark and the rule judge.
    ``letters`` are the valid options (``"ABCD"`` for four choices). In order:

    =====================================  ======  =============================================
    reply                                  letter  rule
    =====================================  ======  =============================================
    ``C`` ``c`` ``(c)`` ``c.`` ``c)``      C       the whole reply is one letter, any case
    ``**C**`` ``\\boxed{C}``                C       markdown and LaTeX wrappers are removed first
    ``Answer: c`` ``option c``             C       after "answer", "option" or "choice" (the last
    ``The answer is (C).``                         such statement wins)
    ``C) the left one`` ``c. blue``        C       a letter opening the reply, then ``.``, ``:``, ``)``
    ``Based on the image, B``              B       exactly one capital letter standing alone, or
    ``I pick (b) here``                    B       exactly one letter in brackets
    ``B or C`` ``A or B`` ``A and C``      None    two candidates: no commitment
    ``A white cup.`` ``the answer is a``   None    ``a``/``A``/``I`` before a lower-case word is
    ``cube``                                       English, never an option
    ``Based on the picture``               None    never the first letter of a word
    =====================================  ======  =============================================

    :func:`read_choice` adds the options' texts ("The white one." is the option "white").
    """
    valid = "".join(dict.fromkeys(letters.upper()))
    cleaned = _strip_markup(text)
    if not cleaned or not valid:
        return None
    lone = cleaned.strip(" \t\n.:;,!?()[]\"'")
    if len(lone) == 1 and lone.upper() in valid:
        return lone.upper()
    either_case = f"[{valid}{valid.lower()}]"
    stated = []
    marker = re.compile(
        rf"\b(?:answer|option|choice)(?:\s+is)?\s*[:\-]?\s*(?:option\s+|choice\s+)?([\(\[])?({either_case})"
        r"(?=[\)\]]|\s*[.,;:!?]|\s*$|\s+\S)",
        re.IGNORECASE,
    )
    for match in marker.finditer(cleaned):
        letter, after = match.group(2), cleaned[match.end() :]
        if _HEDGE.match(after):
            return None  # "the answer is A or B": no commitment
        if match.group(1) is None and _is_article(letter, after):
            continue  # "the answer is a cube"
        stated.append(letter.upper())
    if stated:
        return stated[-1]
    opening = re.match(rf"^[\(\[]?({either_case})(?:[\)\]]|[.:](?=\s|$))", cleaned)
    if opening:
        return opening.group(1).upper()
    bracketed = {letter.upper() for letter in re.findall(rf"[\(\[]({either_case})[\)\]]", cleaned)}
    if bracketed:
        return bracketed.pop() if len(bracketed) == 1 else None
    alone = {
        match.group(1)
        for match in re.finditer(rf"(?<![\w'’-])([{valid}])(?![\w'’-])", cleaned)
        if not _is_article(match.group(1), cleaned[match.end() :])
    }
    return alone.pop() if len(alone) == 1 else None


def read_choice(text: str | None, choices: Sequence[str]) -> str | None:
    """The option a reply commits to: its letter (:func:`extract_choice`), else the text of
    exactly one option stated in it ("The white one." with options black, white: B)."""
    if not text:
        return None
    letter = extract_choice(text, LETTERS[: len(choices)] if choices else "ABCDEFGH")
    if letter is not None:
        return letter
    said = normalize_answer(text)
    options = [normalize_answer(choice) for choice in choices]
    matches = [i for i, option in enumerate(options) if option and re.search(rf"\b{re.escape(option)}\b", said)]
    return LETTERS[matches[0]] if len(matches) == 1 else None


def reference_option(reference: str) -> str | None:
    """The option letter a reference names ("(B)", "B", "B. a cat"), or None."""
    stripped = reference.strip()
    match = _OPTION_REFERENCE.match(stripped)
    if match and (stripped.startswith("(") or len(stripped) == 1 or stripped[1] in ".:)"):
        return match.group(1)
    return None


def reference_number(reference: str) -> float | None:
    """The number a reference is ("3", "-1.5", "three"), or None when it is anything else."""
    truth = normalize_answer(reference).replace(" ", "")
    if re.fullmatch(r"-?\d+(?:\.\d+)?", truth):
        return float(truth)
    if truth in NUMBER_WORDS:
        return float(NUMBER_WORDS[truth])
    return None


def rule_agreement(answer: str, reference: str) -> bool | None:
    """The verdict of the rule the reference's type calls for, or None for free-form references.

    Option letters are compared as letters, yes/no as the first yes/no word said, numbers as
    the first number written (digits or a small number word).
    """
    option = reference_option(reference)
    if option is not None:
        return extract_choice(answer) == option
    said_truth = yes_no(reference)
    if said_truth is not None and normalize_answer(reference) in YES_WORDS | NO_WORDS:
        return yes_no(answer) == said_truth
    number = reference_number(reference)
    if number is not None:
        said = first_number(answer)
        return said is not None and abs(said - number) < 1e-9
    return None


def answers_agree(answer: str, reference: str) -> bool:
    """True when ``answer`` states ``reference``: by rule where one applies, else the normalized
    reference appears in the normalized answer as whole words."""
    verdict = rule_agreement(answer, reference)
    if verdict is not None:
        return verdict
    truth, said = normalize_answer(reference), normalize_answer(answer)
    if not truth:
        return False
    return said == truth or re.search(rf"\b{re.escape(truth)}\b", said) is not None
