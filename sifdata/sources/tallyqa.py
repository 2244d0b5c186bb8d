"""TallyQA via GRIT (``filtered_tallyqa_sampled.json``): counting questions with every counted
object boxed in pixels (``bboxs``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import numpy as np

from sifdata.files import confined_path, read_json
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


class TallyQASource(BuildSource):
    name = "tallyqa"
    description = "a TallyQA JSON file (counting questions with boxes)"
    Options = FileSourceOptions

    def candidates(self, *, n: int | None, seed: int, on_reject: RejectHandler) -> list[Candidate]:
        options = cast(FileSourceOptions, self.options)
        return index(options.path, image_root=options.image_root)

    def select(
        self, candidates: list[Candidate], *, n: int | None, rng: np.random.Generator, on_reject: RejectHandler
    ) -> list[Candidate]:
        kept = keep_subsets(candidates, cast(FileSourceOptions, self.options), rng)
        return super().select(kept, n=n, rng=rng, on_reject=on_reject)
