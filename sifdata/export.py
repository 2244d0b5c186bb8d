"""Exports of a SIF shard folder for training tools.

- LLaMA-Factory: a sharegpt JSON (``messages`` + ``images``, RGB then depth) and the
  ``dataset_info.json`` entry that registers it (the paper's SFT stage used this layout).

Depth goes to training tools as an 8-bit picture (closer = brighter), since they convert
every image to 8-bit RGB; the lossless 16-bit map stays in the shards, in the published
layout, and in GRPO's ``depth_map`` column for the rewards.
- TRL SFT: a dataset folder with ``messages`` (typed content: image, image, text) and
  ``images``, loadable with ``datasets.load_dataset(folder)``.
- TRL GRPO: ``prompt`` (conversational), ``images``, ``gt_boxes``, ``answer``, ``question``,
  ``sample_id`` and ``depth_map`` (path of the 16-bit depth PNG), the columns the GRPO-SIF
  rewards read.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sifdata.files import atomic_write, safe_name
from sifdata.images import open_image
from sifdata.prompt import sif_user_parts, sif_user_text
from sifdata.shards import iter_rows, shard_files


def _rows(folder: str | Path) -> Iterator[dict[str, Any]]:
    files = shard_files(folder)
    if not files:
        raise FileNotFoundError(f"{folder} has no data/train-*.parquet shards")
    for path in files:
        yield from iter_rows(path)


_SUFFIXES = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "GIF": ".gif", "BMP": ".bmp", "TIFF": ".tif"}


def _image_suffix(cell: dict[str, Any]) -> str:
    """The file suffix of an Image cell's bytes, by their format (cells hold no file names)."""

    try:
        with open_image(cell["bytes"], decode=False) as image:
            return _SUFFIXES.get(image.format or "", ".png")
    except (OSError, KeyError, TypeError):
        return ".png"


class MissingImage(ValueError):
    """A record lacks an image the export needs."""


def _require_image(row: dict[str, Any], column: str) -> None:
    if not row.get(column) or not row[column].get("bytes"):
        what = "depth image" if column == "depth_image" else "RGB image"
        hint = " (export with --no-depth to leave depth out)" if column == "depth_image" else ""
        raise MissingImage(f"record {row['id']} has no {what}{hint}")


def _write_image(row: dict[str, Any], column: str, folder: Path) -> Path:
    """The row's image bytes as a file named after the record (``<stem>_d.png`` for depth)."""
    _require_image(row, column)
    stem = safe_name(row["id"])
    path = folder / (f"{stem}_d.png" if column == "depth_image" else f"{stem}{_image_suffix(row[column])}")
    if not path.is_file():
        atomic_write(path, row[column]["bytes"])
    return path


def _model_depth_png(row: dict[str, Any]) -> bytes:
    """The depth image as models see it (8-bit RGB, closer = brighter), PNG-encoded.

    Training tools convert images to 8-bit RGB, which would saturate a 16-bit depth PNG.
    """
    import io

    from sifdata.depth import model_depth_image

    _require_image(row, "depth_image")
    buffer = io.BytesIO()
    with open_image(row["depth_image"]["bytes"]) as depth:
        model_depth_image(depth).save(buffer, format="PNG")
    return buffer.getvalue()


def _images(row: dict[str, Any], with_depth: bool) -> list[dict[str, Any]]:
    """Model-input image cells: RGB then (optionally) the rendered depth; both must exist."""
    _require_image(row, "image")
    cells = [{"bytes": row["image"]["bytes"], "path": None}]
    if with_depth:
        cells.append({"bytes": _model_depth_png(row), "path": None})
    return cells


def to_llamafactory(folder: str | Path, out: str | Path, *, name: str = "sif", with_depth: bool = True) -> Path:
    """Write ``out/<name>.json`` (sharegpt), ``out/images/`` and ``out/dataset_info.json``."""
    out = Path(out)
    images_dir = out / "images"
    records = []
    for row in _rows(folder):
        images = [str(_write_image(row, "image", images_dir).relative_to(out))]
        if with_depth:
            rendered = atomic_write(images_dir / f"{safe_name(row['id'])}_d.png", _model_depth_png(row))
            images.append(str(rendered.relative_to(out)))
        records.append(
            {
                "messages": [
                    {"role": "user", "content": sif_user_text(row["question"], with_depth=with_depth)},
                    {"role": "assistant", "content": row["chain"]},
                ],
                "images": images,
            }
        )
    data_file = out / f"{name}.json"
    data_file.write_text(json.dumps(records, ensure_ascii=False, indent=1), encoding="utf-8")
    info_path = out / "dataset_info.json"
    info = json.loads(info_path.read_text(encoding="utf-8")) if info_path.is_file() else {}
    info[name] = {
        "file_name": data_file.name,
        "formatting": "sharegpt",
        "columns": {"messages": "messages", "images": "images"},
        "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"},
    }
    info_path.write_text(json.dumps(info, indent=2), encoding="utf-8")
    return data_file


def user_content(question: str, *, with_depth: bool = True) -> list[dict[str, Any]]:
    """The SIF user turn as typed content parts (image, [image,] text) for chat templates."""
    return [{"type": kind, "text": text} for kind, text in sif_user_parts(question, with_depth=with_depth)]


def _write_dataset(rows: list[dict[str, Any]], features: Any, out: Path) -> Path:
    import datasets

    dataset = datasets.Dataset.from_list(rows, features=features)
    (out / "data").mkdir(parents=True, exist_ok=True)
    dataset.to_parquet(str(out / "data" / "train-00000-of-00001.parquet"))
    from sifdata.cards import plain_dataset_card

    atomic_write(out / "README.md", str(plain_dataset_card(out.name)).encode("utf-8"))
    return out


def _content_feature() -> Any:
    from datasets import List, Value

    return List({"type": Value("string"), "text": Value("string")})


def to_trl_sft(folder: str | Path, out: str | Path, *, with_depth: bool = True) -> Path:
    """A dataset folder with ``messages`` and ``images`` as TRL's ``SFTTrainer`` takes them."""
    from datasets import Features, Image, List, Value

    rows = []
    for row in _rows(folder):
        images = _images(row, with_depth)
        rows.append(
            {
                "id": row["id"],
                "messages": [
                    {"role": "user", "content": user_content(row["question"], with_depth=with_depth)},
                    {"role": "assistant", "content": [{"type": "text", "text": row["chain"]}]},
                ],
                "images": images,
            }
        )
    features = Features(
        {
            "id": Value("string"),
            "messages": List({"role": Value("string"), "content": _content_feature()}),
            "images": List(Image()),
        }
    )
    return _write_dataset(rows, features, Path(out))


def to_trl_grpo(folder: str | Path, out: str | Path, *, with_depth: bool = True) -> Path:
    """A dataset folder for TRL's ``GRPOTrainer`` with the columns the SIF rewards read.

    ``depth_map`` is the absolute path of the 16-bit depth PNG written under ``out/depth``.
    """
    from datasets import Features, Image, List, Value

    out = Path(out)
    rows = []
    for row in _rows(folder):
        depth = _write_image(row, "depth_image", out / "depth")
        images = _images(row, with_depth)
        rows.append(
            {
                "sample_id": row["id"],
                "prompt": [{"role": "user", "content": user_content(row["question"], with_depth=with_depth)}],
                "images": images,
                "question": row["question"],
                "answer": row["answer"],
                "gt_boxes": row["gt_boxes"],
                "depth_map": str(depth.resolve()),
            }
        )
    features = Features(
        {
            "sample_id": Value("string"),
            "prompt": List({"role": Value("string"), "content": _content_feature()}),
            "images": List(Image()),
            "question": Value("string"),
            "answer": Value("string"),
            "gt_boxes": List(List(Value("float64"), length=4)),
            "depth_map": Value("string"),
        }
    )
    return _write_dataset(rows, features, out)


def to_sif50k(folder: str | Path, out: str | Path, *, file_name: str = "SIF-50K.json") -> Path:
    """The published SIF-50K layout: ``out/SIF-50K.json`` naming images ``../data/<dataset>/<file>``
    and the files under ``out/images/`` (the Hub release's layout, which import reads back).

    The layout holds the published frame (:func:`sifdata.sources.sif50k.record_to_published`):
    imported records get their published values back (import then export is the same file);
    records built here are converted onto the padded square and carry themselves under
    ``sifthinker``, so that export then import gives the same records. Every image file has the
    extension of its bytes' format, the one the JSON names.
    """
    from sifdata.files import confined_path
    from sifdata.schema import SIFRecord
    from sifdata.sources import sif50k

    out = Path(out)
    records, suffixes = [], []
    for row in _rows(folder):
        record = SIFRecord.from_row(row)
        _require_image(row, "image")
        suffix = _image_suffix(row["image"])
        paths = sif50k.published_paths(record, suffix)
        for column, path in zip(("image", "depth_image"), paths, strict=True):
            _require_image(row, column)
            target = confined_path(out / "images", sif50k.strip_published_prefix(path))
            atomic_write(target, row[column]["bytes"])
        records.append(record)
        suffixes.append(suffix)
    return sif50k.write(records, out / file_name, suffixes)
