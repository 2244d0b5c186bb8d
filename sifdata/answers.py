"""Does an answer agree with a reference? The one set of rules that needs no model.

The builder's writer check, the GRPO-SIF accuracy reward's rule judge, the offline match
judge and the evaluation adapters all read answers through this module, so that one answer
never gets two verdicts ("Correct, it is." against "yes" is agreement everywhere).

- :func:`answer_part`: where a reply's answer is (the last ``<answer>``, else after the
  thinking, else ``\\boxed{}``, else the whole reply): the one answer reader of every mode;
- :func:`rule_agreement`: the verdict of a rule where the reference's type has one (an option
  letter, yes/no, a number), ``None`` for a free-form reference;
- :func:`answers_agree`: that verdict, else the normalized reference stated in the answer;
- :func:`extract_choice` / :func:`read_option` / :func:`read_choice`, :func:`yes_no`,
  :func:`first_number`: how an answer is read.

Readings are literal: the first yes/no word said, the first number written, the option
letter committed to. A hedge ("yes or no") counts as its first word, never as both.
Normalization turns punctuation into spaces (``<answer>white</answer>`` holds the word
"white", ``Answer:white`` too), never glues words together.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

_ARTICLES = re.compile(r"\b(a|an|the)\b")
# Punctuation becomes a space: deleting it glued "<answer>white</answer>" into "answerwhiteanswer".
_PUNCTUATION = str.maketrans(string.punctuation, " " * len(string.punctuation))
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
    """Lower case, punctuation turned into spaces, no articles, single spaces."""
    return " ".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCTUATION)).split())


# ----------------------------------------------------------------------------- the answer part

_ANSWER_OPEN = re.compile(r"<answer\s*>", re.IGNORECASE)
_ANSWER_CLOSE = re.compile(r"</answer\s*>", re.IGNORECASE)
_THINK_OPEN = re.compile(r"<think\s*>", re.IGNORECASE)
_THINK_CLOSE = re.compile(r"</think\s*>", re.IGNORECASE)
_BOXED_START = re.compile(r"\\boxed\s*\{")
_TEXT_WRAPPER = re.compile(r"\\(?:text|textbf|textrm|mathrm|mathbf|mbox)\s*\{([^{}]*)\}")


def answer_part(reply: str | None) -> str | None:
    """The part of a reply that is its answer, found the same way in every prompt mode, before
    any benchmark's rule reads it; None when the reply holds no answer.

    1. The last ``<answer>`` (to its ``</answer>``, or to the end: the closing tag is optional,
       as in SIF chains), even when empty: an empty last answer is no answer, never an earlier
       one in its place.
    2. Else what follows the last ``</think>`` (lmms-eval's ``reasoning_tags`` convention,
       ``lmms_eval/api/reasoning.py`` ``strip_reasoning_tags``, which removes whole
       ``<think>...</think>`` blocks). A closing tag alone counts too: chat templates that open
       the thinking block in the prompt (DeepSeek-R1, Qwen3) make the reply start inside it,
       where lmms-eval would keep the whole reply. A reply that opens ``<think>`` and never
       closes it was cut off while thinking: it has no answer (None), as lmms-eval's tags
       would leave the thinking itself to be read.
    3. Else the whole reply.

    Then, in that part, the content of the last ``\\boxed{...}`` when there is one (braces
    matched; ``\\text{...}`` wrappers removed): ``\\boxed{B}`` is "B".
    """
    if reply is None:
        return None
    opened = _last(_ANSWER_OPEN, reply)
    if opened is not None:
        closed = _ANSWER_CLOSE.search(reply, opened.end())
        part = reply[opened.end() : closed.start() if closed else len(reply)]
    else:
        thought = _last(_THINK_CLOSE, reply)
        if thought is not None:
            part = reply[thought.end() :]
        elif _THINK_OPEN.search(reply):
            return None
        else:
            part = reply
    part = unboxed(part).strip()
    return part or None


def _last(pattern: re.Pattern[str], text: str) -> re.Match[str] | None:
    found = None
    for found in pattern.finditer(text):  # noqa: B007 - the last match is the one wanted
        pass
    return found


def unboxed(text: str) -> str:
    """The content of the last ``\\boxed{...}`` in ``text`` (its braces matched, an unclosed one
    read to the end, ``\\text{...}`` wrappers removed), or ``text`` when it has none."""
    start = _last(_BOXED_START, text)
    if start is None:
        return text
    depth, position = 1, start.end()
    while position < len(text) and depth:
        depth += {"{": 1, "}": -1}.get(text[position], 0)
        position += 1
    content = text[start.end() : position - 1 if depth == 0 else len(text)]
    previous = None
    while previous != content:
        previous, content = content, _TEXT_WRAPPER.sub(r"\1", content)
    return content


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


@dataclass(frozen=True)
class ChoiceReading:
    """How a reply's answer maps onto the options of a multiple-choice question.

    ``letter``: the option letter it states (:func:`extract_choice`). ``by_text``: the option its
    words state (:func:`option_by_text`), or None. ``option``: the option it commits to, the
    letter first (the letter protocols' rule), else its text. ``how``: which of the two decided
    (``letter``, ``text``, ``content``), ``none`` when neither did.
    """

    option: str | None
    letter: str | None = None
    by_text: str | None = None
    how: Literal["letter", "text", "content", "none"] = "none"

    @property
    def conflicting(self) -> bool:
        """The letter names one option and the words another ("A. The bag is red." where A is
        blue): scored by the letter, and counted."""
        return self.letter is not None and self.by_text is not None and self.by_text != self.letter


def read_option(text: str | None, choices: Sequence[str]) -> ChoiceReading:
    """The option an answer commits to: its letter (:func:`extract_choice`), else the option its
    words state (:func:`option_by_text`); both are read, so that a letter contradicted by the
    words is seen (:attr:`ChoiceReading.conflicting`)."""
    if not text:
        return ChoiceReading(None)
    letter = extract_choice(text, LETTERS[: len(choices)] if choices else "ABCDEFGH")
    named, how = option_by_text(text, choices)
    if letter is not None:
        return ChoiceReading(letter, letter, named, "letter")
    return ChoiceReading(named, None, named, how)


def read_choice(text: str | None, choices: Sequence[str]) -> str | None:
    """The option letter a reply commits to (:func:`read_option`), or None."""
    return read_option(text, choices).option


def option_by_text(text: str, choices: Sequence[str]) -> tuple[str | None, Literal["text", "content", "none"]]:
    """The option (its letter) whose text an answer states, and how it was found.

    1. ``text``: the one option whose whole text appears in the answer as whole words ("The
       white one." with options black, white). An option found only inside a longer option
       that is also found does not count ("black and white" names the option "black and white",
       not "white"); two options found: none.
    2. ``content``, when no option's whole text appears: the one option whose distinguishing
       words (the words no other option has) all appear ("Blue" or "blue bag" for the options
       "The color of the bag is blue." and "The color of the bag is red."), or whose varying
       words (those not every option has) all appear, where its distinguishing words alone do not
       set it apart ("The life buoy is red and white." for "... red and white.", "... blue and
       white.", "... yellow and red.": no word is the first option's alone, but "red" and
       "white" together are). Two such options, or none: none.
    """
    said = normalize_answer(text)
    options = [normalize_answer(choice) for choice in choices]
    found: dict[int, list[tuple[int, int]]] = {}
    for index, option in enumerate(options):
        if option:
            spans = [m.span() for m in re.finditer(rf"(?<![^ ]){re.escape(option)}(?![^ ])", said)]
            if spans:
                found[index] = spans
    stated = [
        index
        for index, spans in found.items()
        if not all(
            any(
                other != index and len(options[other]) > len(options[index]) and a <= start and end <= b
                for other, outer in found.items()
                for a, b in outer
            )
            for start, end in spans
        )
    ]
    if found:
        return (LETTERS[stated[0]], "text") if len(stated) == 1 else (None, "none")
    words = set(said.split())
    vocabularies = [set(option.split()) for option in options]
    shared_by_all = set.intersection(*vocabularies) if vocabularies else set()
    named = []
    for index, vocabulary in enumerate(vocabularies):
        others = set().union(*(v for other, v in enumerate(vocabularies) if other != index))
        distinguishing, varying = vocabulary - others, vocabulary - shared_by_all
        if (distinguishing and distinguishing <= words) or (varying and varying <= words):
            named.append(index)
    return (LETTERS[named[0]], "content") if len(named) == 1 else (None, "none")


def reference_option(reference: str) -> str | None:
    """The option letter a reference names ("(B)", "B", "B. a cat"), or None."""
    stripped = reference.strip()
    match = _OPTION_REFERENCE.match(stripped)
    if match and (stripped.startswith("(") or len(stripped) == 1 or stripped[1] in ".:)"):
        return match.group(1)
    return None


def reference_number(reference: str) -> float | None:
    """The number a reference is ("3", "-1.5", "(3)", "3.", "three"), or None when it is anything else."""
    stripped = reference.strip().replace(",", "")
    match = re.fullmatch(r"\(?\s*(-?\d+(?:\.\d+)?)\s*\)?\.?", stripped)
    if match:
        return float(match.group(1))
    truth = normalize_answer(reference)
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
