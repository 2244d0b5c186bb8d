from __future__ import annotations

import io
import json
from pathlib import Path

import datasets
import numpy as np
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
