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
