"""SIF shards: parquet files that carry their schema (datasets ``Features``), a manifest with
counts and checksums, and the dataset card that makes ``datasets.load_dataset(folder)`` work.

Layout of a dataset folder::

    README.md            card; its YAML ``configs:`` point at data/train-*.parquet
    manifest.json        shards, record counts, sha256, build settings, reject counts
    data/train-00000-of-00004.parquet
    work/                (builder only: per-shard journals, depth PNGs, rejects; never pushed)
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from datasets import Features, Image, List, Value

from sifdata.version import __version__

FEATURES = Features(
    {
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
        "provenance": {
            "writer_kind": Value("string"),
            "writer_model": Value("string"),
            "seed": Value("int64"),
            "depth_model": Value("string"),
            "library_version": Value("string"),
        },
        "extra": Value("string"),
    }
)
ROW_GROUP_SIZE = 256
MANIFEST = "manifest.json"


def shard_name(index: int, count: int, split: str = "train") -> str:
    return f"{split}-{index:05d}-of-{count:05d}.parquet"


def write_shard(rows: Iterable[dict[str, Any]], path: str | Path) -> int:
    """Write rows (already in :data:`FEATURES` layout) atomically; returns the row count.

    The file appears under its final name only when complete, so a killed build never
    leaves a truncated shard that looks finished.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    schema = FEATURES.arrow_schema
    count = 0
    try:
        with pq.ParquetWriter(tmp, schema) as writer:
            batch: list[dict[str, Any]] = []
            for row in rows:
                batch.append(FEATURES.encode_example(row))
                if len(batch) == ROW_GROUP_SIZE:
                    writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                    count += len(batch)
                    batch = []
            if batch or count == 0:
                writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                count += len(batch)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return count


def iter_rows(path: str | Path, columns: list[str] | None = None) -> Iterator[dict[str, Any]]:
    """Raw rows of one shard (images as ``{"bytes", "path"}``), a row group at a time."""
    parquet = pq.ParquetFile(path)
    for group in range(parquet.num_row_groups):
        yield from parquet.read_row_group(group, columns=columns).to_pylist()


def shard_files(folder: str | Path, split: str = "train") -> list[Path]:
    return sorted((Path(folder) / "data").glob(f"{split}-*-of-*.parquet"))


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(folder: str | Path, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Scan ``data/`` and write ``manifest.json``: shards, counts, checksums, build info."""
    folder = Path(folder)
    shards = []
    for path in shard_files(folder):
        shards.append(
            {
                "file": str(path.relative_to(folder)),
                "records": pq.ParquetFile(path).metadata.num_rows,
                "bytes": path.stat().st_size,
                "sha256": sha256_file(path),
            }
        )
    manifest = {
        "format": "sif-shards/1",
        "library_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "records": sum(shard["records"] for shard in shards),
        "shards": shards,
        "features": FEATURES.to_dict(),
        **(extra or {}),
    }
    tmp = folder / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    tmp.replace(folder / MANIFEST)
    return manifest


def read_manifest(folder: str | Path) -> dict[str, Any] | None:
    path = Path(folder) / MANIFEST
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
