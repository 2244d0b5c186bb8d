"""Typed SIF records: the one schema every package reads and writes.

A chain is a sequence of focus steps (one or more boxes, each with the mean depth inside it)
and text steps, followed by an answer. Boxes are ``[x1, y1, x2, y2]`` normalized per axis
(x / width, y / height); depth is in [0, 1] with lower = closer to the camera.

The chain models are built by the parser, which has already checked everything, through
``model_construct`` so that parsing stays fast; build them yourself with the normal
constructors and pydantic validates the same rules.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

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
        if not value.strip():
            raise ValueError("a text step must not be empty")
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


class SIFRecord(BaseModel):
    """One SIF-50K record.

    ``image`` and ``depth_image`` are references: a path (relative to the dataset folder or
    absolute) when the record lives in JSON, ``None`` when the bytes live in a shard's Image
    column. ``extra`` keeps source fields that have no column of their own (for example the
    published file's ``illegal_content`` flag) so that imports round-trip.
    """

    model_config = ConfigDict(frozen=True)
    id: str
    source: str
    source_id: str
    question: str
    answer: str
    gt_boxes: list[Box]
    # Pixel size of the RGB image; None only for imported records whose image is absent.
    width: int | None = Field(default=None, gt=0)
    height: int | None = Field(default=None, gt=0)
    image: str | None = None
    depth_image: str | None = None
    chain: str
    provenance: Provenance
    extra: dict[str, Any] = Field(default_factory=dict)

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
        for image_field in ("image", "depth_image"):
            if not isinstance(fields.get(image_field), str):
                fields[image_field] = None
        if isinstance(fields.get("extra"), str):
            fields["extra"] = json.loads(fields["extra"]) if fields["extra"] else {}
        fields["gt_boxes"] = [tuple(box) for box in fields.get("gt_boxes", [])]
        return cls.model_validate(fields)


def record_json_schema() -> dict[str, Any]:
    """JSON Schema of :class:`SIFRecord`, for tools outside Python."""
    return SIFRecord.model_json_schema()


def chain_json_schema() -> dict[str, Any]:
    """JSON Schema of :class:`Chain`."""
    return Chain.model_json_schema()
