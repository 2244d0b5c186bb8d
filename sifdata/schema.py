"""Typed SIF records: the one schema every package reads and writes.

A record is a question on an image, its answer, its ground-truth boxes and its SIF chain, kept
as the chain's text and checked by the strict parser. The chain's values (:class:`Focus`,
:class:`Text`, :class:`Chain`, ``Box``) live one layer below, in :mod:`sifdata.chain_types`, and
are importable from here as before.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from sifdata.chain import ChainError, parse_chain
from sifdata.chain_types import (
    MAX_DECIMALS,
    Box,
    Chain,
    Focus,
    Text,
    chain_json_schema,
    check_normalized_box,
)

__all__ = [
    "MAX_DECIMALS",
    "Box",
    "BoxFrame",
    "Chain",
    "Column",
    "Focus",
    "Provenance",
    "SIFRecord",
    "Text",
    "chain_json_schema",
    "check_normalized_box",
    "column_kinds",
    "parsed_chain_context",
    "record_json_schema",
]


PARSED_CHAIN = "parsed_chain"


def parsed_chain_context(text: str, parsed: Chain | None) -> dict[str, Any] | None:
    """The validation context of a record whose chain ``text`` was already parsed strictly into
    ``parsed`` (``SIFRecord.model_validate(fields, context=...)``): the chain is not parsed again.
    None (parse it) when there is no parsed chain."""
    return {PARSED_CHAIN: (text, parsed)} if parsed is not None else None


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
    def _chain_strict(cls, text: str, info: ValidationInfo) -> str:
        given = (info.context or {}).get(PARSED_CHAIN)
        if given is not None and given[0] == text:  # parsed strictly by who built the record
            return text
        try:
            parse_chain(text, strict=True)
        except ChainError as error:
            raise ValueError(f"chain: {error}") from error
        return text

    def parsed_chain(self) -> Chain:
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
