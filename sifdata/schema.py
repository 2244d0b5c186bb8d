"""Typed SIF records: the one schema every package reads and writes.

A chain is a sequence of focus steps (one or more boxes, each with the mean depth inside it)
and text steps, followed by an answer. Boxes are ``[x1, y1, x2, y2]`` normalized per axis
(x / width, y / height); depth is in [0, 1] with lower = closer to the camera.

The chain models are built by the parser, which has already checked everything, without
pydantic's validation so that parsing stays fast. Built with the normal constructors, the
same rules are validated here: a :class:`Chain` without ``issues`` obeys the strict grammar
(area/text pairs in order, at most 3 decimals, every depth given, a non-empty answer, no tag
inside a text), so ``parse_chain(format_chain(chain))`` gives the chain back.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
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


class Provenance(BaseModel):
    """How a record was made, so that nobody mistakes template text for a model's."""

    model_config = ConfigDict(frozen=True)
    writer_kind: Literal["offline-template", "openai-compatible", "imported"]
    writer_model: str | None = None
    seed: int | None = None
    depth_model: str | None = None
    library_version: str


@dataclass(frozen=True)
class Column:
    """How a field is stored in a shard where its Python type does not say it.

    ``image``: a ``datasets.Image`` column (the bytes travel with the row); ``json``: a
    string column holding the value as JSON; ``int32``: a 32-bit integer column. The shard
    ``Features`` are derived from :class:`SIFRecord` with these marks
    (:func:`sifdata.shards.features_of`), so the schema is written once.
    """

    kind: Literal["image", "json", "int32"]


BoxFrame = Literal["per-axis", "padded-square"]
"""The frame of a record's boxes. ``per-axis``: x / width, y / height (the SIF format).
``padded-square``: the published SIF-50K's values kept as published (Visual-CoT's padded-square
boxes, which its generator used as if they were per-axis; see ``sif-format.md``)."""


class SIFRecord(BaseModel):
    """One SIF record: a question on an image, its answer, ground-truth boxes and SIF chain.

    ``image`` and ``depth_image`` are references: a path (relative to the dataset folder or
    absolute) when the record lives in JSON, ``None`` when the bytes live in a shard's Image
    column. ``box_frame`` names the frame of ``gt_boxes`` and of the chain's boxes. ``extra``
    keeps source fields that have no column of their own (the published file's
    ``illegal_content`` flag, the published values of a converted record) so that imports
    round-trip.
    """

    model_config = ConfigDict(frozen=True)
    id: Annotated[str, Field(description="unique across sources: source/source_id")]
    source: Annotated[str, Field(description="the source subset (gqa, flickr30k, synthetic, ...)")]
    source_id: Annotated[str, Field(description="the record's id in its source")]
    question: Annotated[str, Field(description="the question about the image")]
    answer: Annotated[str, Field(description="the ground-truth answer")]
    gt_boxes: Annotated[list[Box], Field(description="ground-truth boxes [x1, y1, x2, y2] in the box_frame")]
    width: Annotated[int, Column("int32"), Field(gt=0, description="pixel width of the RGB image")]
    height: Annotated[int, Column("int32"), Field(gt=0, description="pixel height of the RGB image")]
    image: Annotated[str | None, Column("image"), Field(description="the RGB image")] = None
    depth_image: Annotated[str | None, Column("image"), Field(description="the depth map (lower = closer)")] = None
    chain: Annotated[str, Field(description="the SIF chain: <think> area/text steps </think><answer>")]
    box_frame: Annotated[BoxFrame, Field(description="per-axis, or padded-square (published values kept)")] = "per-axis"
    provenance: Annotated[Provenance, Field(description="writer kind and model, seed, depth model, version")]
    extra: Annotated[
        dict[str, Any],
        Column("json"),
        Field(default_factory=dict, description="JSON of source fields without a column of their own"),
    ]

    @field_validator("gt_boxes")
    @classmethod
    def _boxes_valid(cls, boxes: list[Box]) -> list[Box]:
        if not boxes:
            raise ValueError("a record needs at least one ground-truth box")
        for box in boxes:
            reason = check_normalized_box(box)
            if reason:
                raise ValueError(f"ground-truth box: {reason}")
        return boxes

    @field_validator("chain")
    @classmethod
    def _chain_strict(cls, text: str) -> str:
        # Imported here: chain.py imports this module.
        from sifdata.chain import ChainError, parse_chain

        try:
            parse_chain(text, strict=True)
        except ChainError as error:
            raise ValueError(f"chain: {error}") from error
        return text

    def parsed_chain(self) -> Chain:
        from sifdata.chain import parse_chain

        return parse_chain(self.chain, strict=True)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> SIFRecord:
        """Build a record from a shard row (images stay in the row; references become None)."""
        fields = {name: row[name] for name in cls.model_fields if name in row}
        for name, kind in column_kinds(cls).items():
            if kind == "image" and not isinstance(fields.get(name), str):
                fields[name] = None
            elif kind == "json" and isinstance(fields.get(name), str):
                fields[name] = json.loads(fields[name]) if fields[name] else {}
        fields["gt_boxes"] = [tuple(box) for box in fields.get("gt_boxes", [])]
        return cls.model_validate(fields)


def column_kinds(model: type[BaseModel]) -> dict[str, str]:
    """The fields of ``model`` marked with a :class:`Column`, by kind."""
    kinds: dict[str, str] = {}
    for name, info in model.model_fields.items():
        for mark in info.metadata:
            if isinstance(mark, Column):
                kinds[name] = mark.kind
    return kinds


def record_json_schema() -> dict[str, Any]:
    """JSON Schema of :class:`SIFRecord`, for tools outside Python."""
    return SIFRecord.model_json_schema()


def chain_json_schema() -> dict[str, Any]:
    """JSON Schema of :class:`Chain`."""
    return Chain.model_json_schema()
