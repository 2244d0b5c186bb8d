"""Small file helpers shared by the builder, imports and exports."""

from __future__ import annotations

import os
import re
from pathlib import Path


def atomic_write(path: str | Path, data: bytes) -> Path:
    """Write ``data`` so that ``path`` is either absent, the old file, or complete."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return path


def safe_name(key: str) -> str:
    """A file name for a record key (``gqa/7`` -> ``gqa__7``)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", key.replace("/", "__"))


class DiskCache:
    """Text values by hex key under ``folder`` (two-character subfolders), written atomically.

    The writer caches its LLM's replies and the evaluation runner its models' responses here.
    """

    def __init__(self, folder: str | Path, suffix: str = ".txt") -> None:
        self.folder = Path(folder)
        self.suffix = suffix

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}{self.suffix}"

    def get(self, key: str) -> str | None:
        path = self._path(key)
        return path.read_text(encoding="utf-8") if path.is_file() else None

    def put(self, key: str, text: str) -> None:
        atomic_write(self._path(key), text.encode("utf-8"))


class OutsideRoot(ValueError):
    """A path read from a data file that would leave the folder it is relative to."""


def confined_path(root: str | Path, relative: str) -> Path:
    """``root / relative``, refusing a path from a data file that leaves ``root``.

    Absolute paths and ``..`` steps that climb above ``root`` raise :class:`OutsideRoot`, so a
    record can never make the program read or write a file outside the folder it names.
    """
    if not relative or Path(relative).is_absolute() or re.match(r"^[A-Za-z]:[\\/]", relative):
        raise OutsideRoot(f"path {relative!r} is not relative to {root}")
    depth = 0
    for part in re.split(r"[\\/]+", relative):
        if part == "..":
            depth -= 1
        elif part not in ("", "."):
            depth += 1
        if depth < 0:
            raise OutsideRoot(f"path {relative!r} leaves {root}")
    return Path(root) / relative
