"""Small file helpers shared by the builder, imports and exports."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

LOCK_FILE = ".lock"


def atomic_write(path: str | Path, data: bytes) -> Path:
    """Write ``data`` so that ``path`` is either absent, the old file, or complete."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # per process and thread: two threads writing the same file never share a temporary
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
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
        """The value, or None: absent, or unreadable (then removed with a warning naming it, so
        that one damaged entry costs one request, never every later run)."""
        path = self._path(key)
        if not path.is_file():
            return None
        try:
            return path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            self.discard(key, f"unreadable ({error})")
            return None

    def get_json(self, key: str) -> Any:
        """The JSON value, or None: absent or damaged (removed with a warning, as :meth:`get`)."""
        text = self.get(key)
        if text is None:
            return None
        try:
            return json.loads(text)
        except json.JSONDecodeError as error:
            self.discard(key, f"not JSON ({error.msg} at character {error.pos})")
            return None

    def discard(self, key: str, reason: str) -> None:
        """Remove a damaged entry, saying which and why."""
        path = self._path(key)
        logging.getLogger(__name__).warning("cache entry %s is %s: removed, its value is made again", path, reason)
        path.unlink(missing_ok=True)

    def put(self, key: str, text: str) -> None:
        atomic_write(self._path(key), text.encode("utf-8"))


class FolderBusy(RuntimeError):
    """Another process holds a folder's lock: two writers would lose each other's work."""


@contextlib.contextmanager
def exclusive_lock(folder: str | Path, what: str = "this command") -> Iterator[Path]:
    """Hold ``folder``'s exclusive lock (an OS file lock on ``folder/.lock``, which the kernel
    releases when the process ends, however it ends) while the block runs; a second process
    asking for it is refused at once with :class:`FolderBusy`, naming the holder's pid.

    The folder is created if needed; the lock file stays (it blocks nothing once released).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    handle = open(folder / LOCK_FILE, "a+", encoding="utf-8")  # noqa: SIM115 - closed below
    try:
        try:
            _lock(handle)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise FolderBusy(
                f"{folder} is in use by another process (pid {holder}): {what} would mix its writes with that "
                "one's. Wait for it to end (or stop it), then run again."
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield folder
    finally:
        handle.close()  # closing the descriptor releases the lock


def _lock(handle: Any) -> None:
    try:
        import fcntl
    except ImportError:  # Windows: a byte-range lock on the file's first byte
        import msvcrt

        msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
        return
    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)


class OutsideRoot(ValueError):
    """A path read from a data file that would leave the folder it is relative to."""


def confined_path(root: str | Path, relative: str) -> Path:
    """``root / relative``, refusing a path from a data file that leaves ``root``.

    Absolute paths, ``..`` steps that climb above ``root`` and symbolic links inside ``root``
    that point outside it raise :class:`OutsideRoot`, so a record can never make the program
    read or write a file outside the folder it names. (``root`` itself may be a link.)
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
    path = Path(root) / relative
    if path.exists() or path.is_symlink():
        real_root = Path(root).resolve()
        if not path.resolve().is_relative_to(real_root):
            raise OutsideRoot(f"path {relative!r} is a link out of {root} (to {path.resolve()})")
    return path


class DataFileError(ValueError):
    """A data file that cannot be read, with the file, the line and the reason."""


def read_json(path: str | Path) -> Any:
    """The JSON in ``path``; :class:`DataFileError` names the file, line and column otherwise."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except json.JSONDecodeError as error:
        where = f"line {error.lineno}, column {error.colno}"
        raise DataFileError(f"{path}: {where}: not valid JSON ({error.msg})") from None
    except UnicodeDecodeError as error:
        raise DataFileError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None


def read_jsonl(path: str | Path) -> Iterator[tuple[int, Any]]:
    """(line number, value) for each non-empty line of a JSON Lines file; a bad line (not JSON,
    not UTF-8) is a :class:`DataFileError` naming the file and line."""
    path = Path(path)
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise DataFileError(f"{path}: line {number}: not UTF-8 text ({error.reason})") from None
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as error:
                raise DataFileError(f"{path}: line {number}: not valid JSON ({error.msg})") from None
