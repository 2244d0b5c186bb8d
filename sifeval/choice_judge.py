"""The opt-in choice judge: a model maps the replies that the rules cannot map onto an option.

VLMEvalKit's convention for multiple-choice benchmarks (open-compass/VLMEvalKit at 028a6e7,
``vlmeval/dataset/utils/multiple_choice.py``: ``extract_answer_from_item`` tries its rules,
``can_infer``, first and asks a judge model only when they find nothing; ``build_prompt`` gives
the judge the question, the options and the answer, and asks for one option letter, or Z when
the answer matches none). Here, as there, the rules go first and only what they cannot map goes
to the judge; the judge's prompt is our own wording of that convention (:func:`choice_messages`).

Deliberate differences from VLMEvalKit: a judge reply that names no option letter and no Z, or a
judge that cannot be reached, is a judge failure (counted, left out of the graded figures, and
asked again by ``sifeval rescore``), where VLMEvalKit retries three times and then picks an option
at random; the answer shown to the judge is the reply's answer part
(:func:`sifdata.answers.answer_part`: its thinking left out), never the whole reasoning.

No official protocol of the five benchmarks has a judge: a run with ``--choice-judge`` records the
judge in ``run.json`` (part of the run's identity), counts its calls (``choice_judge_calls``) in
``results.json``, and the report flags the run as differing from the official protocol.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from sifdata.answers import LETTERS, extract_choice
from sifmodel.judge import Asked, JudgePrompt, LLMJudge

NO_OPTION = "Z"


@dataclass(frozen=True)
class ChoiceItem:
    """One answer to map: the question, its options in the order asked, the answer's text."""

    question: str
    choices: tuple[str, ...]
    answer: str


def choice_messages(item: ChoiceItem) -> list[dict[str, Any]]:
    options = "\n".join(f"{LETTERS[i]}. {choice}" for i, choice in enumerate(item.choices))
    letters = ", ".join(LETTERS[: len(item.choices)])
    text = (
        "You match the answer a model gave to a single-choice question with the option it chose.\n"
        f"Question: {item.question}\n"
        f"Options:\n{options}\n"
        f"Answer: {item.answer}\n"
        f"Which option does the answer choose? Reply with its letter only ({letters}). If the answer "
        f"chooses none of the options, or more than one, or refuses, reply with {NO_OPTION}."
    )
    return [{"role": "user", "content": text}]


def parse_choice_reply(reply: str, count: int) -> str:
    """The option letter of a judge reply, or ``Z`` for none; ``ValueError`` (a judge failure) when
    the reply names neither."""
    letter = extract_choice(reply, LETTERS[:count] + NO_OPTION)
    if letter is None:
        raise ValueError(f"the choice judge's reply names no option: {reply[:120]!r}")
    return letter


@dataclass(frozen=True)
class ChoiceVerdict:
    """The judge's reading of one answer: an option letter, None for "no option", or an error."""

    option: str | None
    error: str | None = None


class ChoiceJudge:
    """Maps answers onto options with a judge model (``SIF_JUDGE_*``, like the VisCoT judge)."""

    prompt_name = "choice-v1"  # part of every cache key: change it when the prompt changes

    def __init__(self, judge: LLMJudge) -> None:
        self.judge = judge

    @property
    def model(self) -> str:
        return str(self.judge.model)

    @property
    def concurrency(self) -> int:
        return self.judge.concurrency

    def map_many(self, items: Sequence[ChoiceItem]) -> list[ChoiceVerdict]:
        """Each answer's option, concurrently (cached by the judge's identity and the prompt)."""
        verdicts: list[ChoiceVerdict] = []
        # One prompt per option count: the parser knows which letters are options.
        counts = sorted({len(item.choices) for item in items})
        answers: dict[int, Asked[str]] = {}
        for count in counts:
            indices = [i for i, item in enumerate(items) if len(item.choices) == count]
            prompt: JudgePrompt[str] = JudgePrompt(
                f"{self.prompt_name}/{count}", choice_messages, partial(parse_choice_reply, count=count)
            )
            for index, asked in zip(indices, self.judge.ask_many([items[i] for i in indices], prompt), strict=True):
                answers[index] = asked
        for index in range(len(items)):
            asked = answers[index]
            if asked.value is None:
                verdicts.append(ChoiceVerdict(None, f"choice judge: {asked.error}"))
            else:
                verdicts.append(ChoiceVerdict(None if asked.value == NO_OPTION else asked.value))
        return verdicts
