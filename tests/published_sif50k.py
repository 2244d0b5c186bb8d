"""Records in the published SIF-50K's format, made the way its generator made them.

The generator is ``data_generation/produce.py`` of zhangquanchen/SIFThinker at cce0042
(``process_data``): it took Visual-CoT's turn-2 box (padded-square normalized), turned it into
pixels with the image's width and height as if it were per-axis (``denormalize_bboxes``:
``int(b * W)``), normalized back with 3 decimals, read each step's depth from the colour depth
PNG (``depth_est.py``: ``load_depth_from_color`` gives ``1 - i / 255`` for Spectral_r index i,
``calculate_avg_depth`` averages the floor/ceil pixel span) and had an LLM write the chain,
which copies the boxes and depths. It stored ``bbox_3d`` as the turn-2 box, unchanged.

These helpers reproduce that arithmetic independently of ``sifdata`` (no ``DepthMap``, no
``geometry``), so that the import is checked against numbers it did not compute itself.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from sifdata.depth import spectral_r_palette
from sifdata.prompt import sif_user_text


def generator_box(box: list[float], width: int, height: int) -> list[float]:
    """A box as the generator wrote it into a chain: through int pixels, 3 decimals."""
    pixels = [int(box[0] * width), int(box[1] * height), int(box[2] * width), int(box[3] * height)]
    return [
        round(pixels[0] / width, 3),
        round(pixels[1] / height, 3),
        round(pixels[2] / width, 3),
        round(pixels[3] / height, 3),
    ]


def generator_depth(depth: np.ndarray, box: list[float]) -> float:
    """``calculate_avg_depth``: the mean over floor(x1 * w)..ceil(x2 * w), clamped, 3 decimals."""
    h, w = depth.shape
    x1 = max(0, min(math.floor(box[0] * w), w - 1))
    y1 = max(0, min(math.floor(box[1] * h), h - 1))
    x2 = max(0, min(math.ceil(box[2] * w), w))
    y2 = max(0, min(math.ceil(box[3] * h), h))
    return round(float(depth[y1:y2, x1:x2].mean()), 3)


def scene_depth(width: int, height: int) -> np.ndarray:
    """A depth map (SIF polarity, on the Spectral_r grid of 256 levels) that varies in x and y."""
    ys, xs = np.mgrid[0:height, 0:width]
    levels = np.round(255 * (0.15 + 0.7 * (0.6 * xs / width + 0.4 * ys / height))).astype(np.int32)
    return (levels / 255.0).astype(np.float32)


def spectral_png(depth: np.ndarray, path: Path) -> None:
    """The depth map as Depth Anything's colour PNG: index i = round((1 - depth) * 255) in Spectral_r."""
    index = np.round((1.0 - depth) * 255).astype(np.int64)
    Image.fromarray(spectral_r_palette()[index]).save(path)


def area(box: list[float], depth: float) -> str:
    return "<area>" + json.dumps([{"bbox_2d": box, "depth": depth}]) + "</area>"


def published_record(
    *,
    dataset: str,
    image: str,
    question: str,
    answer: str,
    padded_box: list[float],
    width: int,
    height: int,
    depth: np.ndarray,
) -> dict[str, Any]:
    """One published row for a Visual-CoT record: full image, an expansion, the ground truth."""
    stem = image.rsplit(".", 1)[0]
    grown = [
        max(0.0, padded_box[0] - 0.1),
        max(0.0, padded_box[1] - 0.1),
        min(1.0, padded_box[2] + 0.1),
        min(1.0, padded_box[3] + 0.1),
    ]
    steps = [[0.0, 0.0, 1.0, 1.0], generator_box(grown, width, height), generator_box(padded_box, width, height)]
    texts = ["I look at the whole image first.", "The region around the object.", "Focusing on the object."]
    body = "\n".join(
        f"{area(box, generator_depth(depth, box))}\n<text>{text}</text>" for box, text in zip(steps, texts, strict=True)
    )
    chain = f"<think>\n{body}\n</think>\n<answer>\n{answer}\n</answer>"
    image_path = f"../data/{dataset}/{image}"
    depth_path = f"../data/{dataset}/{stem}_d.png"
    return {
        "dataset": dataset,
        "image": image_path,
        "depth_image": depth_path,
        "problem": question,
        "normalized_solution_round": {"bbox_3d": [padded_box], "illegal_content": False},
        "response": answer,
        "messages": [{"content": sif_user_text(question), "role": "user"}, {"content": chain, "role": "assistant"}],
        "images": [image_path, depth_path],
    }


def write_release(
    folder: Path, viscot_rows: list[dict[str, Any]], sizes: dict[str, tuple[int, int]], *, images: bool = True
) -> Path:
    """A release as the Hub has it: ``SIF-50K.json`` and ``images/<dataset>/...`` beside it.

    ``viscot_rows``: Visual-CoT benchmark records; ``sizes``: image path -> (width, height).
    Returns the JSON's path.
    """
    rows = []
    for viscot_row in viscot_rows:
        image_rel = viscot_row["image"][0]  # cot/gqa/2316539.jpg
        width, height = sizes[image_rel]
        depth = scene_depth(width, height)
        name = image_rel.rsplit("/", 1)[-1]
        row = published_record(
            dataset=viscot_row["dataset"],
            image=name,
            question=viscot_row["conversations"][0]["value"].replace("<image>\n", "").split(" Please provide")[0],
            answer=viscot_row["conversations"][3]["value"],
            padded_box=json.loads(viscot_row["conversations"][1]["value"]),
            width=width,
            height=height,
            depth=depth,
        )
        rows.append(row)
        if images:
            target = folder / "images" / viscot_row["dataset"]
            target.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (width, height), (90, 120, 150)).save(target / name)
            spectral_png(depth, target / f"{name.rsplit('.', 1)[0]}_d.png")
    path = folder / "SIF-50K.json"
    path.write_text(json.dumps(rows, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return path
