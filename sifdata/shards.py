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
import types
import typing
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from datasets import Features, Image, List, Value
from pydantic import BaseModel

from sifdata.images import read_image_bytes
from sifdata.schema import Column, SIFRecord, column_kinds
from sifdata.version import __version__


def _feature(annotation: Any, marks: Sequence[object] = ()) -> Any:
    """The ``datasets`` feature that stores values of a pydantic field's ``annotation``."""
    for mark in marks:
        if isinstance(mark, Column):
            return {"image": Image(), "json": Value("string"), "int32": Value("int32")}[mark.kind]
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        present = [arg for arg in args if arg is not type(None)]
        if len(present) != 1:
            raise TypeError(f"no column type for the union {annotation}")
        return _feature(present[0])
    if origin is typing.Literal:
        if all(isinstance(arg, str) for arg in args):
            return Value("string")
        raise TypeError(f"no column type for {annotation}")
    if origin is list:
        return List(_feature(args[0]))
    if origin is tuple:
        if Ellipsis in args or len({arg for arg in args}) != 1:
            raise TypeError(f"no column type for {annotation}: tuples must be of one type and fixed length")
        return List(_feature(args[0]), length=len(args))
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return {name: _feature(info.annotation, info.metadata) for name, info in annotation.model_fields.items()}
    scalars = {str: Value("string"), int: Value("int64"), float: Value("float64"), bool: Value("bool")}
    if annotation in scalars:
        return scalars[annotation]
    raise TypeError(f"no column type for {annotation}: mark the field with sifdata.schema.Column")


def features_of(model: type[BaseModel]) -> Features:
    """The shard ``Features`` of a pydantic record model, one column per field, in field order.

    The parquet schema is derived from :class:`SIFRecord` rather than written beside it, so
    the two cannot drift apart: a field added to the record is a column of every new shard.
    """
    return Features({name: _feature(info.annotation, info.metadata) for name, info in model.model_fields.items()})


FEATURES = features_of(SIFRecord)
ROW_GROUP_SIZE = 256
MANIFEST = "manifest.json"


def shard_name(index: int, count: int, split: str = "train") -> str:
    return f"{split}-{index:05d}-of-{count:05d}.parquet"


ImageCell = dict[str, Any]
"""An Image column's value: ``{"bytes": ..., "path": None}``."""


def image_cell(path: Path) -> ImageCell:
    """The Image cell of a file: its bytes, and no path.

    ``datasets.Image`` keeps only the path, dropping the bytes, when that path names a file
    relative to the *current* folder: a shard written from a folder holding a file of the same
    name would have lost every image. The format is read from the bytes where a name is needed.
    """
    return bytes_cell(read_image_bytes(path))


def bytes_cell(data: bytes) -> ImageCell:
    return {"bytes": data, "path": None}


def record_row(record: SIFRecord, images: Mapping[str, ImageCell | None]) -> dict[str, Any]:
    """A record as a shard row: image columns from ``images``, JSON columns serialized."""
    row = record.model_dump(mode="json")
    for name, kind in column_kinds(SIFRecord).items():
        if kind == "image":
            row[name] = images.get(name)
        elif kind == "json":
            row[name] = json.dumps(row[name], ensure_ascii=False)  # key order kept: it is data
    return row


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
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
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
