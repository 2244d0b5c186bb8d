from __future__ import annotations

import io
import json
from pathlib import Path

import datasets
import numpy as np
import pytest
from PIL import Image

from sifdata import export, parse_chain
from sifdata.depth import load_depth_png, model_depth_image
from sifdata.prompt import SIF_INSTRUCTION, sif_user_text
from sifdata.shards import iter_rows, shard_files


def _shard_rows(folder: Path) -> dict[str, dict]:
    return {row["id"]: row for path in shard_files(folder) for row in iter_rows(path)}


def test_llamafactory_sharegpt_export(demo_build: Path, tmp_path: Path) -> None:
    data_file = export.to_llamafactory(demo_build, tmp_path)
    records = json.loads(data_file.read_text())
    assert len(records) == 56
    first = records[0]
    assert [m["role"] for m in first["messages"]] == ["user", "assistant"]
    assert first["messages"][0]["content"].startswith("Original image: <image>\nDepth image: <image>\n")
    assert first["messages"][0]["content"].endswith(SIF_INSTRUCTION)
    parse_chain(first["messages"][1]["content"])
    assert len(first["images"]) == 2 and first["images"][1].endswith("_d.png")
    for path in first["images"]:
        assert (tmp_path / path).is_file()
    info = json.loads((tmp_path / "dataset_info.json").read_text())
    assert info["sif"]["formatting"] == "sharegpt" and info["sif"]["columns"] == {
        "messages": "messages",
        "images": "images",
    }
    assert info["sif"]["tags"]["assistant_tag"] == "assistant"


def test_trl_sft_export_loads_with_datasets(demo_build: Path, tmp_path: Path) -> None:
    export.to_trl_sft(demo_build, tmp_path)
    dataset = datasets.load_dataset(str(tmp_path), split="train")
    assert len(dataset) == 56 and set(dataset.column_names) == {"id", "messages", "images"}
    row = dataset[0]
    user, assistant = row["messages"]
    assert [part["type"] for part in user["content"]] == ["text", "image", "text", "image", "text"]
    assert sum(part["type"] == "image" for part in user["content"]) == len(row["images"]) == 2
    assert row["images"][0].mode == "RGB" and row["images"][1].mode == "RGB"  # depth rendered for models
    expected = model_depth_image(Image.open(io.BytesIO(_shard_rows(demo_build)[row["id"]]["depth_image"]["bytes"])))
    assert np.array_equal(np.asarray(row["images"][1]), np.asarray(expected))
    text = "".join(part["text"] if part["type"] == "text" else "<image>" for part in user["content"])
    shard_row = _shard_rows(demo_build)[row["id"]]
    assert text == sif_user_text(shard_row["question"])
    assert assistant["content"][0]["text"] == shard_row["chain"]


def test_trl_grpo_export_has_the_reward_columns(demo_build: Path, tmp_path: Path) -> None:
    export.to_trl_grpo(demo_build, tmp_path)
    dataset = datasets.load_dataset(str(tmp_path), split="train")
    assert {"prompt", "images", "gt_boxes", "answer", "question", "sample_id", "depth_map"} <= set(dataset.column_names)
    shard_rows = _shard_rows(demo_build)
    for row in dataset.select(range(5)):
        source = shard_rows[row["sample_id"]]
        assert row["gt_boxes"] == source["gt_boxes"] and row["answer"] == source["answer"]
        assert row["prompt"][0]["role"] == "user" and len(row["prompt"]) == 1
        assert np.array_equal(load_depth_png(row["depth_map"]), load_depth_png(source["depth_image"]["bytes"]))


def test_exports_without_depth(demo_build: Path, tmp_path: Path) -> None:
    records = json.loads(export.to_llamafactory(demo_build, tmp_path / "lf", with_depth=False).read_text())
    assert len(records[0]["images"]) == 1 and "Depth image" not in records[0]["messages"][0]["content"]
    export.to_trl_sft(demo_build, tmp_path / "sft", with_depth=False)
    row = datasets.load_dataset(str(tmp_path / "sft"), split="train")[0]
    assert len(row["images"]) == 1


# ----------------------------------------------------------------------------- round trips (issue 19)

FORMATS = (("JPEG", ".jpg"), ("PNG", ".png"), ("WEBP", ".webp"), ("BMP", ".bmp"), ("TIFF", ".tif"), ("GIF", ".gif"))


def _multi_format_build(tmp_path: Path, depth_model: Path) -> Path:
    """A build from photos of every format the builder reads, on non-square images (where the
    padded square and per-axis frames differ)."""
    from sifdata.builder.pipeline import BuildConfig, build

    source = tmp_path / "src"
    source.mkdir()
    rows = []
    for index, (name, suffix) in enumerate(FORMATS):
        picture = Image.effect_noise((96 + 8 * index, 60), 40).convert("RGB")
        picture.save(source / f"{index}{suffix}", format=name)
        rows.append({"question": f"How many {index}?", "bboxs": [[10 + index, 8, 60, 40]], "answer": 1,
                     "image": f"{index}{suffix}", "question_id": index})  # fmt: skip
    (source / "tally.json").write_text(json.dumps(rows))
    config = BuildConfig(source="tallyqa", source_path=source / "tally.json", depth_model=str(depth_model),
                         depth_device="cpu")  # fmt: skip
    report = build(config, tmp_path / "built", progress=False)
    assert report.records == len(FORMATS) and report.dataset_complete
    return tmp_path / "built"


def test_sif50k_export_then_import_gives_the_same_records(tmp_path: Path, tiny_depth_model: Path) -> None:
    from typer.testing import CliRunner

    from sifdata.cli import app
    from sifdata.geometry import normalized_to_padded_square
    from sifdata.schema import SIFRecord

    built = _multi_format_build(tmp_path, tiny_depth_model)
    runner = CliRunner()
    exported = runner.invoke(app, ["export", str(built), "--format", "sif50k", "--out", str(tmp_path / "rel")])
    assert exported.exit_code == 0, exported.output
    published = json.loads((tmp_path / "rel" / "SIF-50K.json").read_text())
    before = {row["id"]: row for row in _shard_rows(built).values()}
    # The published layout holds the published frame: what the original code and anyone's scripts read.
    for row in published:
        record = SIFRecord.from_row(before[row["sifthinker"]["id"]])
        path = tmp_path / "rel" / "images" / row["image"].removeprefix("../data/")
        assert (
            path.is_file()
            and Image.open(path).format == Image.open(io.BytesIO(before[record.id]["image"]["bytes"])).format
        )
        expected = [round(v, 3) for v in normalized_to_padded_square(record.gt_boxes[0], record.width, record.height)]
        assert row["normalized_solution_round"]["bbox_3d"][0] == pytest.approx(expected, abs=0.0011)
        chain = parse_chain(row["messages"][1]["content"])
        assert chain.focus_steps[-1].depths == record.parsed_chain().focus_steps[-1].depths  # depths kept
    assert sorted(Path(r["image"]).suffix for r in published) == sorted(s for _, s in FORMATS)
    imported = runner.invoke(app, ["import", str(tmp_path / "rel" / "SIF-50K.json"), "--out", str(tmp_path / "back")])
    assert imported.exit_code == 0, imported.output
    after = {row["id"]: row for row in _shard_rows(tmp_path / "back").values()}
    assert sorted(after) == sorted(before)  # every row, every id
    for record_id, row in before.items():
        again = after[record_id]
        for field in ("gt_boxes", "chain", "box_frame", "question", "answer", "width", "height", "source"):
            assert again[field] == row[field], (record_id, field)
        assert again["image"]["bytes"] == row["image"]["bytes"]  # byte for byte
        assert again["depth_image"]["bytes"] == row["depth_image"]["bytes"]
    # A file edited since (our key gone) is read from its published fields, per-axis within rounding.
    for row in published:
        row.pop("sifthinker")
    (tmp_path / "rel" / "SIF-50K.json").write_text(json.dumps(published))
    assert (
        runner.invoke(app, ["import", str(tmp_path / "rel" / "SIF-50K.json"), "--out", str(tmp_path / "ext")]).exit_code
        == 0
    )
    external = sorted(_shard_rows(tmp_path / "ext").values(), key=lambda r: r["question"])
    for row, original in zip(external, sorted(before.values(), key=lambda r: r["question"]), strict=True):
        assert row["gt_boxes"][0] == pytest.approx(original["gt_boxes"][0], abs=0.003)
