"""The SIF chain as values: focus steps (boxes with their depths), text steps and the answer.

A chain is a sequence of focus steps (one or more boxes, each with the mean depth inside it)
and text steps, followed by an answer. Boxes are ``[x1, y1, x2, y2]`` normalized per axis
(x / width, y / height); depth is in [0, 1] with lower = closer to the camera.

This module is the bottom of the chain's layers: the parser (:mod:`sifdata.chain`) builds these
values, and the stored record (:mod:`sifdata.schema`) holds a chain's text and is checked by
the parser. The chain models are built by the parser, which has already checked everything,
without pydantic's validation so that parsing stays fast. Built with the normal constructors,
the same rules are validated here: a :class:`Chain` without ``issues`` obeys the strict grammar
(area/text pairs in order, at most 3 decimals, every depth given, a non-empty answer, no tag
inside a text), so ``parse_chain(format_chain(chain))`` gives the chain back.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MAX_DECIMALS = 3  # for boxes and depths in a chain
_GRAMMAR_TAG = re.compile(r"</?(?:think|area|text|answer)>")

Box = tuple[float, float, float, float]
"""``(x1, y1, x2, y2)``; which convention is meant is said by the name of what holds it."""


def check_normalized_box(box: tuple[float, ...] | list[float]) -> str | None:
    """The reason a box is not a valid per-axis normalized box, or None if it is."""
    if len(box) != 4:
        return f"a box needs 4 numbers, got {len(box)}"
    x1, y1, x2, y2 = box
    if not all(0.0 <= v <= 1.0 for v in box):
        return f"coordinates must lie in [0, 1], got {list(box)}"
    if not (x1 < x2 and y1 < y2):
        return f"a box needs x1 < x2 and y1 < y2, got {list(box)}"
    return None


class Focus(BaseModel):
    """One ``<area>`` step: the boxes looked at, each with its mean depth."""

    model_config = ConfigDict(frozen=True)
    kind: Literal["focus"] = "focus"
    boxes: list[Box]
    # None only where the lenient parser could read a box but not its depth.
    depths: list[float | None]

    @model_validator(mode="after")
    def _check(self) -> Focus:
        if not self.boxes:
            raise ValueError("a focus step needs at least one box")
        if len(self.boxes) != len(self.depths):
            raise ValueError(f"{len(self.boxes)} boxes but {len(self.depths)} depths")
        for box in self.boxes:
            reason = check_normalized_box(box)
            if reason:
                raise ValueError(reason)
        for depth in self.depths:
            if depth is not None and not 0.0 <= depth <= 1.0:
                raise ValueError(f"depth must lie in [0, 1], got {depth}")
        return self


class Text(BaseModel):
    """One ``<text>`` step: the narration between two focus steps."""

    model_config = ConfigDict(frozen=True)
    kind: Literal["text"] = "text"
    text: str

    @field_validator("text")
    @classmethod
    def _non_empty(cls, value: str) -> str:
        # Stripped, as the parser reads it, so that formatting and parsing give it back.
        return _plain_text(value, "a text step")


def _plain_text(value: str, what: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError(f"{what} must not be empty")
    tag = _GRAMMAR_TAG.search(value)
    if tag:
        raise ValueError(f"{what} must not contain the tag {tag.group(0)}")
    return value


Step = Annotated[Focus | Text, Field(discriminator="kind")]


class Chain(BaseModel):
    """A parsed SIF chain: steps in order, then the answer.

    ``issues`` lists what the lenient parser had to forgive; it is empty for a chain that
    passed the strict grammar.
    """

    model_config = ConfigDict(frozen=True)
    steps: list[Step]
    answer: str | None
    issues: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _strict_grammar(self) -> Chain:
        """A chain that claims the strict grammar (no ``issues``) must obey it."""
        if self.issues:
            return self  # a lenient reading, which says what it forgave
        if not self.steps:
            raise ValueError("a chain needs at least one area/text pair")
        for index, step in enumerate(self.steps):
            wanted = "focus" if index % 2 == 0 else "text"
            if step.kind != wanted:
                raise ValueError(f"step {index + 1} is a {step.kind} step where the grammar needs a {wanted} step")
        if self.steps[-1].kind != "text":
            raise ValueError("a chain must end its thinking with a text step after the last focus step")
        for number, focus in enumerate(self.focus_steps, 1):
            if any(depth is None for depth in focus.depths):
                raise ValueError(f"area {number}: every box needs its depth")
            values = [v for box in focus.boxes for v in box] + [d for d in focus.depths if d is not None]
            for value in values:
                if round(value, MAX_DECIMALS) != value:
                    raise ValueError(f"area {number}: {value} has more than {MAX_DECIMALS} decimals")
        if self.answer is None:
            raise ValueError("a chain needs an answer")
        _plain_text(self.answer, "the answer")
        return self

    @field_validator("answer")
    @classmethod
    def _stripped_answer(cls, value: str | None) -> str | None:
        return value.strip() if value is not None else None

    @property
    def focus_steps(self) -> list[Focus]:
        return [step for step in self.steps if isinstance(step, Focus)]

    @property
    def last_boxes(self) -> list[Box]:
        """The boxes of the last focus step (the predicted region), or [] if none."""
        focus = self.focus_steps
        return list(focus[-1].boxes) if focus else []


def chain_json_schema() -> dict[str, Any]:
    """JSON Schema of :class:`Chain`."""
    return Chain.model_json_schema()
