"""The published SIF-50K JSON (``SIF-50K.json``, Hub ``jankin123/SIF-50K``): import and export.

Import keeps every published field (fields without a column of their own go to
``SIFRecord.extra``), so that ``export(import(file))`` writes the same bytes as a canonical
file: a JSON list, ``indent=2``, UTF-8 unescaped, keys in the published order.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from sifdata.prompt import sif_user_text
from sifdata.schema import Provenance, SIFRecord
from sifdata.sources.base import RejectHandler, SourceReject, image_size, log_reject
from sifdata.version import __version__

PUBLISHED_FILES = ("SIF-50K.json", "SIF-50K-sampled-200.json")


def record_from_published(row: dict[str, Any], index: int, image_root: Path | None = None) -> SIFRecord:
    """One published row as a :class:`SIFRecord` (``ValidationError``/``KeyError`` if broken)."""
    messages = row["messages"]
    user = next(m["content"] for m in messages if m["role"] == "user")
    assistant = next(m["content"] for m in messages if m["role"] == "assistant")
    solution = row["normalized_solution_round"]
    width = height = None
    if image_root is not None and row.get("image"):
        size = image_size(image_root / row["image"])
        if size is not None:
            width, height = size
    extra: dict[str, Any] = {"illegal_content": solution.get("illegal_content", False)}
    if user != sif_user_text(row["problem"]):
        extra["user_prompt"] = user
    if row.get("images") != [row.get("image"), row.get("depth_image")]:
        extra["images"] = row.get("images")
    return SIFRecord(
        id=f"sif50k/{index:06d}",
        source=row["dataset"],
        source_id=str(index),
        question=row["problem"],
        answer=row["response"],
        gt_boxes=[tuple(box) for box in solution["bbox_3d"]],
        width=width,
        height=height,
        image=row.get("image"),
        depth_image=row.get("depth_image"),
        chain=assistant,
        provenance=Provenance(writer_kind="imported", library_version=__version__),
        extra=extra,
    )


def read(
    path: str | Path, *, image_root: str | Path | None = None, on_reject: RejectHandler = log_reject
) -> Iterator[SIFRecord]:
    """Yield the valid records of a published file; broken ones go to ``on_reject``."""
    path = Path(path)
    root = Path(image_root) if image_root is not None else path.parent
    with open(path, encoding="utf-8") as handle:
        rows = json.load(handle)
    if not isinstance(rows, list):
        raise ValueError(f"{path}: expected a JSON list of SIF-50K records")
    for index, row in enumerate(rows):
        try:
            yield record_from_published(row, index, root)
        except (KeyError, TypeError, StopIteration) as error:
            on_reject(SourceReject(f"sif50k/{index:06d}", f"missing or malformed field: {error!r}"))
        except ValidationError as error:
            reasons = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
            on_reject(SourceReject(f"sif50k/{index:06d}", reasons))


def _round3(value: float) -> float:
    return round(float(value), 3)


def record_to_published(record: SIFRecord) -> dict[str, Any]:
    """The published layout of one record (keys in the published order)."""
    images = record.extra.get("images") or [record.image, record.depth_image]
    return {
        "dataset": record.source,
        "image": record.image,
        "depth_image": record.depth_image,
        "problem": record.question,
        "normalized_solution_round": {
            "bbox_3d": [[_round3(v) for v in box] for box in record.gt_boxes],
            "illegal_content": bool(record.extra.get("illegal_content", False)),
        },
        "response": record.answer,
        "messages": [
            {"role": "user", "content": record.extra.get("user_prompt") or sif_user_text(record.question)},
            {"role": "assistant", "content": record.chain},
        ],
        "images": images,
    }


def dumps(records: Iterable[SIFRecord]) -> str:
    """The canonical published file text."""
    return json.dumps([record_to_published(r) for r in records], ensure_ascii=False, indent=2) + "\n"


def write(records: Iterable[SIFRecord], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(dumps(records), encoding="utf-8")
    tmp.replace(path)
    return path
