"""Visual-CoT: the training file ``viscot_363k.json`` and the benchmark files (same layout).

Each record: ``dataset``, ``question_id``, ``image`` = [path, path + "###[x1,y1,x2,y2]"]
(pixel xyxy, truncated to integers), ``conversations`` = [question + instruction, box in
padded-square coordinates, "<image>", answer]. The detection variant
(``benchmark_det/*.jsonl``) adds the image size and the float pixel box.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
from pydantic import Field

from sifdata.chain_types import Box
from sifdata.files import confined_path, read_json, read_jsonl
from sifdata.sources.base import (
    BuildSource,
    Candidate,
    FileSourceOptions,
    RejectHandler,
    SourceRecord,
    bulk_allocation,
    image_size,
    keep_subsets,
    log_reject,
    make_record,
    resolve_all,
    resolving,
)

BOX_INSTRUCTION = (
    " Please provide the bounding box coordinate of the region that can help you answer the question better."
)
# Subsets the original generator dropped: their questions are about reading text.
TEXT_HEAVY_SUBSETS = frozenset({"docvqa", "dude", "textvqa", "sroie", "infographicsvqa", "textcap"})


@dataclass(frozen=True)
class VisCoTRecord(SourceRecord):
    question_id: int | str = -1
    # The box of conversation turn 2, in padded-square normalized coordinates.
    gt_boxes_padded: list[Box] = field(default_factory=list)


@dataclass(frozen=True)
class DetectionEntry:
    width: int
    height: int
    bbox: Box
    img_path: str


# The real files name one folder two ways: the question files ``cot/v7w/...``, the detection
# files ``cot/visual7w/...`` (viscot_benchmark/benchmark/visual7w.json against benchmark_det/).
IMAGE_FOLDER_ALIASES = {"cot/visual7w/": "cot/v7w/"}


def detection_key(image_path: str, question_id: object) -> str:
    """Question ids repeat across subsets; with the image path (its folder named one way) they
    identify a record."""
    for alias, name in IMAGE_FOLDER_ALIASES.items():
        if image_path.startswith(alias):
            image_path = name + image_path[len(alias) :]
    return f"{image_path}#{question_id}"


def read_detection(path: str | Path) -> dict[str, DetectionEntry]:
    """``benchmark_det``-style JSONL (or a folder of them): record -> image size and pixel box."""
    path = Path(path)
    if path.is_dir():
        merged: dict[str, DetectionEntry] = {}
        for file in sorted(path.glob("*.jsonl")):
            merged.update(read_detection(file))
        return merged
    entries: dict[str, DetectionEntry] = {}
    with open(path, encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                entries[detection_key(row["img_path"], row["question_id"])] = DetectionEntry(
                    width=int(row["width"]),
                    height=int(row["height"]),
                    bbox=tuple(float(v) for v in row["bbox"]),  # type: ignore[arg-type]
                    img_path=row["img_path"],
                )
            except (KeyError, TypeError, ValueError) as error:
                raise ValueError(f"{path}:{line_number}: not a detection record ({error})") from None
    return entries


def _rows(path: Path) -> Iterator[dict[str, Any]]:
    if path.is_dir():  # a folder of subset files, e.g. viscot_benchmark/benchmark
        for file in sorted(path.glob("*.json")) + sorted(path.glob("*.jsonl")):
            yield from _rows(file)
        return
    if path.suffix == ".jsonl":
        yield from (row for _, row in read_jsonl(path))
        return
    rows = read_json(path)
    if not isinstance(rows, list):
        raise ValueError(f"{path}: expected a JSON list of Visual-CoT records")
    yield from rows


def _question(raw: str) -> str:
    text = raw.replace("<image>", "").strip()
    if text.endswith(BOX_INSTRUCTION.strip()):
        text = text[: -len(BOX_INSTRUCTION.strip())]
    return text.strip()


def _parse_row(
    row: dict[str, Any], image_root: Path, size_table: Callable[[], dict[str, DetectionEntry] | None]
) -> VisCoTRecord:
    question_id = row["question_id"]
    image_field = row["image"]
    image_rel = image_field[0]
    marked = image_field[1] if len(image_field) > 1 else ""
    turns = [turn["value"] for turn in row["conversations"]]
    if len(turns) < 4:
        raise ValueError(f"expected 4 conversation turns, got {len(turns)}")
    padded = json.loads(turns[1])
    if "###" in marked:
        box_pixel: list[float] = [float(v) for v in json.loads(marked.split("###", 1)[1])]
    else:
        raise ValueError("image field has no '###[x1,y1,x2,y2]' box")
    image_path = confined_path(image_root, image_rel)  # OutsideRoot: this record's reject, with the path
    size = image_size(image_path)
    sizes = size_table()
    detection = sizes.get(detection_key(image_rel, question_id)) if sizes else None
    if size is None and detection is not None:
        size = (detection.width, detection.height)
    if size is None:
        raise ValueError(f"image size unknown: no file at {image_path} and no sizes entry")
    if detection is not None:
        box_pixel = list(detection.bbox)  # the float box; the '###' one is truncated
    width, height = size
    record = make_record(
        source=row.get("dataset", "viscot"),
        source_id=str(question_id),
        question=_question(turns[0]),
        answer=turns[3],
        boxes_pixel=[box_pixel],
        width=width,
        height=height,
        image_path=image_path,
    )
    return VisCoTRecord(
        **{f: getattr(record, f) for f in record.__dataclass_fields__},
        question_id=question_id,
        gt_boxes_padded=[tuple(float(v) for v in padded)],  # type: ignore[list-item]
    )


def index(
    path: str | Path,
    *,
    sizes: str | Path | dict[str, DetectionEntry] | None = None,
    image_root: str | Path | None = None,
) -> list[Candidate]:
    """The candidates of a Visual-CoT file (or a folder of subset files), in file order.

    Only the JSON is read here; a candidate's image header and boxes are read when it is
    resolved. Image sizes come from the image file under ``image_root`` (default: the file's
    folder) when it exists, else from ``sizes`` (a ``benchmark_det`` JSONL, a folder of them, or
    the parsed mapping), which is read once, on the first resolve that needs it.
    """
    path = Path(path)
    root = Path(image_root) if image_root is not None else (path if path.is_dir() else path.parent)
    size_table = functools.cache(lambda: read_detection(sizes) if isinstance(sizes, str | Path) else sizes)
    candidates = []
    with bulk_allocation():
        for position, row in enumerate(_rows(path)):
            fields = row if isinstance(row, dict) else {}
            subset = str(fields.get("dataset", "viscot"))
            key = f"{subset}/{fields.get('question_id', f'#{position}')}"
            candidates.append(Candidate(key, subset, resolving(key, _parse_row, row, root, size_table)))
    return candidates


def read(
    path: str | Path,
    *,
    sizes: str | Path | dict[str, DetectionEntry] | None = None,
    image_root: str | Path | None = None,
    on_reject: RejectHandler = log_reject,
) -> Iterator[VisCoTRecord]:
    """Yield the usable records of a Visual-CoT file (or a folder of subset files).

    Boxes overshooting the edge by rounding are clipped; broken records go to ``on_reject``
    with the reason (default: a warning in the log) and are not yielded. See :func:`index`
    for where image sizes come from.
    """
    records = resolve_all(index(path, sizes=sizes, image_root=image_root), on_reject)
    yield from cast(Iterator[VisCoTRecord], records)  # viscot candidates resolve to VisCoTRecord


class VisCoTOptions(FileSourceOptions):
    sizes: Path | None = Field(default=None, description="the benchmark_det JSONL (or folder) with image sizes")
    exclude_text_heavy: bool = Field(default=True, description="drop docvqa, dude, textvqa, sroie, ...")


class VisCoTSource(BuildSource):
    name = "viscot"
    description = "Visual-CoT's viscot_363k.json or benchmark files"
    Options = VisCoTOptions

    def candidates(self, *, n: int | None, seed: int, on_reject: RejectHandler) -> list[Candidate]:
        options = cast(VisCoTOptions, self.options)
        return index(options.path, sizes=options.sizes, image_root=options.image_root)

    def select(
        self, candidates: list[Candidate], *, n: int | None, rng: np.random.Generator, on_reject: RejectHandler
    ) -> list[Candidate]:
        options = cast(VisCoTOptions, self.options)
        kept = keep_subsets(
            candidates, options, rng, drop=lambda c: options.exclude_text_heavy and c.subset in TEXT_HEAVY_SUBSETS
        )
        return super().select(kept, n=n, rng=rng, on_reject=on_reject)
