"""One schema: the shard Features are derived from SIFRecord, pinned here column by column, and
the Chain model enforces the grammar, so a chain that constructs is a chain that formats and
parses back."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from datasets import Features, Image, List, Value
from PIL import Image as PILImage
from pydantic import Field, ValidationError

from sifdata.chain import format_chain, parse_chain
from sifdata.schema import Chain, Column, Focus, Provenance, SIFRecord, Text
from sifdata.shards import FEATURES, features_of, iter_rows, record_row, write_shard

# The on-disk schema of every shard. A field added to SIFRecord changes FEATURES and fails
# here until this list (and so the published schema) says so too, and the other way round.
EXPECTED_COLUMNS = {
    "id": Value("string"),
    "source": Value("string"),
    "source_id": Value("string"),
    "question": Value("string"),
    "answer": Value("string"),
    "gt_boxes": List(List(Value("float64"), length=4)),
    "width": Value("int32"),
    "height": Value("int32"),
    "image": Image(),
    "depth_image": Image(),
    "chain": Value("string"),
    "box_frame": Value("string"),
    "provenance": {
        "writer_kind": Value("string"),
        "writer_model": Value("string"),
        "seed": Value("int64"),
        "depth_model": Value("string"),
        "library_version": Value("string"),
    },
    "extra": Value("string"),
}

CHAIN = (
    '<think>\n<area>[{"bbox_2d":[0.000,0.000,1.000,1.000],"depth":0.583}]</area>\n<text>Whole image.</text>\n'
    '<area>[{"bbox_2d":[0.250,0.250,0.500,0.500],"depth":0.412}]</area>\n<text>The cup.</text>\n</think>\n'
    "<answer>\nRed.\n</answer>"
)


def _record(**changes: object) -> SIFRecord:
    values: dict = {
        "id": "t/1",
        "source": "t",
        "source_id": "1",
        "question": "What colour is the cup?",
        "answer": "Red.",
        "gt_boxes": [(0.25, 0.25, 0.5, 0.5)],
        "width": 8,
        "height": 6,
        "chain": CHAIN,
        "provenance": Provenance(writer_kind="offline-template", seed=3, library_version="0"),
        "extra": {"z": 1, "a": [1, 2]},
    }
    return SIFRecord(**{**values, **changes})


def test_features_are_the_record_schema_column_by_column() -> None:
    assert list(FEATURES) == list(SIFRecord.model_fields) == list(EXPECTED_COLUMNS)
    for name, feature in EXPECTED_COLUMNS.items():
        assert FEATURES[name] == feature, name
    assert Features(EXPECTED_COLUMNS) == FEATURES


def test_a_field_added_to_the_record_is_a_column_and_an_unmapped_one_is_an_error() -> None:
    class Wider(SIFRecord):
        difficulty: float = 0.0
        tags: list[str] = Field(default_factory=list)

    derived = features_of(Wider)
    assert derived["difficulty"] == Value("float64") and derived["tags"] == List(Value("string"))
    assert {k: v for k, v in derived.items() if k in FEATURES} == dict(FEATURES)

    class Unmapped(SIFRecord):
        scores: dict[str, float] = Field(default_factory=dict)

    with pytest.raises(TypeError, match=r"dict\[str, float\]"):
        features_of(Unmapped)


def test_a_shard_on_disk_carries_exactly_the_features_and_rows_round_trip(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    PILImage.new("RGB", (8, 6), "red").save(buffer, format="PNG")
    record = _record()
    cell = {"bytes": buffer.getvalue(), "path": "x.png"}
    write_shard([record_row(record, {"image": cell, "depth_image": cell})], tmp_path / "s.parquet")
    metadata = pq.read_schema(tmp_path / "s.parquet").metadata
    assert json.loads(metadata[b"huggingface"])["info"]["features"] == FEATURES.to_dict()
    (row,) = list(iter_rows(tmp_path / "s.parquet"))
    assert row["image"]["bytes"] == buffer.getvalue()
    assert json.loads(row["extra"]) == {"z": 1, "a": [1, 2]} and list(json.loads(row["extra"])) == ["z", "a"]
    assert SIFRecord.from_row(row) == record


def test_column_marks_are_what_the_derivation_reads() -> None:
    marks = {name: [m for m in info.metadata if isinstance(m, Column)] for name, info in SIFRecord.model_fields.items()}
    assert {name for name, found in marks.items() if found} == {"width", "height", "image", "depth_image", "extra"}


@pytest.mark.parametrize(
    ("steps", "answer", "reason"),
    [
        ([], "x", "at least one area/text pair"),
        ([Text(text="a"), Focus(boxes=[(0, 0, 1, 1)], depths=[0.5])], "x", "step 1 is a text step"),
        ([Focus(boxes=[(0, 0, 1, 1)], depths=[0.5]), Text(text="a"), Text(text="b")], "x", "step 3 is a text step"),
        ([Focus(boxes=[(0, 0, 1, 1)], depths=[0.5])], "x", "end its thinking with a text step"),
        ([Focus(boxes=[(0, 0, 1, 1)], depths=[0.5]), Text(text="a")], "  ", "answer must not be empty"),
        ([Focus(boxes=[(0, 0, 1, 1)], depths=[0.5]), Text(text="a")], None, "needs an answer"),
        ([Focus(boxes=[(0, 0, 1, 1)], depths=[None]), Text(text="a")], "x", "every box needs its depth"),
        ([Focus(boxes=[(0, 0, 0.12345, 1)], depths=[0.5]), Text(text="a")], "x", "more than 3 decimals"),
        ([Focus(boxes=[(0, 0, 1, 1)], depths=[0.5]), Text(text="a")], "x</answer>", "must not contain the tag"),
    ],
)
def test_chain_refuses_what_the_grammar_refuses(steps: list, answer: str | None, reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        Chain(steps=steps, answer=answer)


def test_text_steps_refuse_tags_and_are_read_as_the_parser_reads_them() -> None:
    with pytest.raises(ValidationError, match="must not contain the tag <area>"):
        Text(text="see <area> here")
    with pytest.raises(ValidationError, match="must not be empty"):
        Text(text=" \n ")
    chain = Chain(steps=[Focus(boxes=[(0, 0, 1, 1)], depths=[0.5]), Text(text="  padded  ")], answer=" Red. ")
    assert parse_chain(format_chain(chain)) == chain


def test_a_lenient_reading_may_break_the_grammar_but_says_so() -> None:
    chain = parse_chain("<think><area>[0.1, 0.1, 0.5, 0.5]</area></think> no answer", strict=False)
    assert chain.answer is None and chain.issues
    assert Chain(steps=chain.steps, answer=None, issues=chain.issues) == chain
