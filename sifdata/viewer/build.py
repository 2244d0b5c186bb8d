"""The viewer's items for a dataset build: each record with its chain drawn (every focus step's
boxes with their depths, the ground truth dashed, the depth map beside), and each rejected
candidate with its stage and reason. Filters: kind (record or reject), source, chain length,
box frame, reject stage."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sifdata.chain import parse_chain
from sifdata.depth import depth_to_image, load_depth_png
from sifdata.files import read_jsonl
from sifdata.geometry import Box, padded_square_to_normalized
from sifdata.images import open_image
from sifdata.shards import iter_rows, shard_files
from sifdata.viewer.site import FocusBox, Panel, Picture, SiteReport, ViewItem, write_site

FACETS = ("kind", "source", "chain length", "box frame", "reject stage")


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def _picture(cell: Any) -> Picture | None:
    data = cell.get("bytes") if isinstance(cell, dict) else None
    if not data:
        return None
    return Picture(_digest(data), lambda: open_image(data))


def _depth_picture(cell: Any) -> Picture | None:
    data = cell.get("bytes") if isinstance(cell, dict) else None
    if not data:
        return None
    # the 16-bit map as people read it (brighter = closer); keyed apart from an RGB of the same bytes
    return Picture("d" + _digest(data), lambda: depth_to_image(load_depth_png(data)))


def record_item(row: dict[str, Any]) -> ViewItem:
    """A record (a raw shard row) as a viewer item; boxes in the padded-square frame (a
    published record kept in its frame) are brought to the image frame for drawing."""
    width, height = int(row["width"]), int(row["height"])
    frame = row.get("box_frame") or "per-axis"

    def to_image(box: Any) -> Box:
        box = tuple(float(v) for v in box)
        return padded_square_to_normalized(box, width, height) if frame == "padded-square" else box  # type: ignore[return-value]

    chain = parse_chain(row["chain"], strict=False)
    steps = tuple(
        tuple(FocusBox(to_image(box), depth) for box, depth in zip(step.boxes, step.depths, strict=True))
        for step in chain.focus_steps
    )
    provenance = row.get("provenance") or {}
    fields = [
        ("answer", str(row["answer"])),
        ("chain's answer", chain.answer or "(none)"),
        ("chain", row["chain"]),
        ("writer", " ".join(str(v) for v in (provenance.get("writer_kind"), provenance.get("writer_model")) if v)),
        ("depth model", str(provenance.get("depth_model") or "-")),
        ("box frame", frame),
    ]
    if chain.issues:
        fields.append(("parser notes", "; ".join(chain.issues)))
    return ViewItem(
        id=row["id"],
        question=row["question"],
        category=row["source"],
        panels=(Panel("record", "record", tuple(fields), steps),),
        image=_picture(row.get("image")),
        depth=_depth_picture(row.get("depth_image")),
        truth=tuple(to_image(box) for box in row["gt_boxes"]),
        depth_caption="depth: the record's map (brighter = closer)",
        facets={
            "kind": "record",
            "source": row["source"],
            "chain length": f"{len(steps)} step{'s' if len(steps) != 1 else ''}",
            "box frame": frame,
        },
    )


def reject_items(folder: Path) -> Iterator[ViewItem]:
    """Every rejected candidate of a build: the shards' (writer, checks) and the sources'."""
    work = folder / "work"
    files = sorted(work.glob("shard-*/rejects.jsonl"))
    if (work / "source_rejects.jsonl").is_file():
        files.append(work / "source_rejects.jsonl")
    for path in files:
        for number, entry in read_jsonl(path):
            key = str(entry.get("id", f"{path.parent.name}:{number}"))
            stage = str(entry.get("stage", "?"))
            where = f"{path.relative_to(folder)}:{number}"
            fields = [("stage", stage), ("reason", str(entry.get("reason", ""))), ("file", where)]
            if entry.get("attempts"):
                fields.append(("attempts", str(entry["attempts"])))
            yield ViewItem(
                id=f"reject:{key}",
                question=str(entry.get("reason", "")),
                category=key.split("/", 1)[0],
                panels=(Panel("rejected candidate", "reject", tuple(fields)),),
                facets={"kind": "reject", "source": key.split("/", 1)[0], "reject stage": stage},
                note="rejected before a record was written: no image is kept for it",
            )


def _shards(folder: Path) -> list[Path]:
    shards = shard_files(folder)
    if not shards:
        raise FileNotFoundError(f"{folder} has no shards (data/train-*-of-*.parquet): is it a build folder?")
    return shards


def build_items(folder: str | Path, limit: int | None = None) -> Iterator[ViewItem]:
    folder = Path(folder)
    shards = _shards(folder)
    taken = 0
    for path in shards:
        for row in iter_rows(path):
            if limit is not None and taken >= limit:
                break
            yield record_item(row)
            taken += 1
    yield from reject_items(folder)


def count_records(folder: str | Path) -> int:
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(path).metadata.num_rows for path in _shards(Path(folder)))


def count_rejects(folder: str | Path) -> int:
    return sum(1 for _ in reject_items(Path(folder)))


def view_build(
    folder: str | Path, out: str | Path, *, limit: int | None = None, progress: bool = True, force: bool = False
) -> SiteReport:
    """Write the viewer site of a build folder under ``out`` (``force``: beside foreign files)."""
    folder = Path(folder)
    if limit is not None and limit < 1:
        raise ValueError(f"--limit must be at least 1, got {limit}")
    records = count_records(folder)  # before anything is written: a folder that is no build writes nothing
    rejects = count_rejects(folder)
    shown = min(records, limit) if limit is not None else records
    subtitle = f"{folder.resolve()}: {records} records" + (f" ({shown} shown)" if shown != records else "")
    subtitle += f", {rejects} rejected candidate{'s' if rejects != 1 else ''}"
    return write_site(
        build_items(folder, limit),
        out,
        title=f"SIF build: {folder.name}",
        subtitle=subtitle,
        facets=FACETS,
        total=shown + rejects,
        progress=progress,
        force=force,
    )
