"""Append-only JSONL journals that survive a kill at any moment.

Each entry is one line written with a single ``write`` and flushed, so a killed process
leaves at most one partial last line; opening the journal again cuts that line off, and its
record is simply built again. An unreadable line in the middle means the file was edited or
corrupted by something else, and is an error naming the file and line.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class JournalError(RuntimeError):
    pass


class Journal:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.entries: list[dict[str, Any]] = list(self._recover())
        self._handle = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self._unsynced = 0

    def _recover(self) -> Iterator[dict[str, Any]]:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        good_end = 0
        lines = data.split(b"\n")
        # The piece after the last newline is a line whose write was cut short.
        for number, line in enumerate(lines[:-1], 1):
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                if number == len(lines) - 1 and not lines[-1]:
                    break  # the last complete-looking line is garbage too: cut it
                raise JournalError(f"{self.path}:{number}: unreadable journal line") from None
            good_end += len(line) + 1
            yield entry
        if good_end != len(data):
            with open(self.path, "r+b") as handle:
                handle.truncate(good_end)

    def append(self, entry: dict[str, Any], sync_every: int = 16) -> None:
        self._handle.write(json.dumps(entry, ensure_ascii=False) + "\n")
        self._handle.flush()
        self.entries.append(entry)
        self._unsynced += 1
        if self._unsynced >= sync_every:
            self.sync()

    def sync(self) -> None:
        os.fsync(self._handle.fileno())
        self._unsynced = 0

    def close(self) -> None:
        if not self._handle.closed:
            self.sync()
            self._handle.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
