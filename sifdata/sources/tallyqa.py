"""TallyQA via GRIT (``filtered_tallyqa_sampled.json``): counting questions with every counted
object boxed in pixels (``bboxs``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sifdata.files import confined_path, read_json
from sifdata.sources.base import (
    Candidate,
    RejectHandler,
    SourceRecord,
    bulk_allocation,
    image_size,
    log_reject,
    make_record,
    resolve_all,
    resolving,
)


def _parse_row(row: dict[str, Any], position: int, image_root: Path) -> SourceRecord:
    image_path = confined_path(image_root, row["image"])  # OutsideRoot: this record's reject
    size = image_size(image_path)
    if size is None and "width" in row and "height" in row:
        size = (int(row["width"]), int(row["height"]))
    if size is None:
        raise ValueError(f"image size unknown: no file at {image_path} and no width/height")
    source_id = str(row.get("question_id", row.get("id", position)))
    return make_record(
        source=row.get("dataset", "tallyqa"),
        source_id=source_id,
        question=row["question"],
        answer=str(row["answer"]),
        boxes_pixel=row["bboxs"],
        width=size[0],
        height=size[1],
        image_path=image_path,
    )


def index(path: str | Path, *, image_root: str | Path | None = None) -> list[Candidate]:
    """The candidates of a TallyQA file, in file order (images are read when resolved)."""
    path = Path(path)
    root = Path(image_root) if image_root is not None else path.parent
    with bulk_allocation():
        rows = read_json(path)
        if not isinstance(rows, list):
            raise ValueError(f"{path}: expected a JSON list of TallyQA records")
        candidates = []
        for position, row in enumerate(rows):
            fields = row if isinstance(row, dict) else {}
            subset = str(fields.get("dataset", "tallyqa"))
            key = f"{subset}/{fields.get('question_id', fields.get('id', f'#{position}'))}"
            candidates.append(Candidate(key, subset, resolving(key, _parse_row, row, position, root)))
    return candidates


def read(
    path: str | Path, *, image_root: str | Path | None = None, on_reject: RejectHandler = log_reject
) -> Iterator[SourceRecord]:
    """Yield the usable records; broken ones go to ``on_reject`` with the reason."""
    yield from resolve_all(index(path, image_root=image_root), on_reject)
