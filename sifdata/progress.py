"""One progress bar style for long work: count, rate and ETA."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text


class RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.1f}/s" if speed else "-/s", style="progress.data.speed")


@contextmanager
def progress_bar(
    description: str, total: int, *, enabled: bool = True, fields: dict[str, Any] | None = None
) -> Iterator[Callable[..., None]]:
    """Yield ``advance(n, **fields)``; draws a bar with count, rate and ETA on stderr when
    enabled, and the running ``fields`` (``errors`` so far, ...) beside it."""
    if not enabled:
        yield lambda n, **updates: None
        return
    columns: list[ProgressColumn | str] = [
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    ]
    columns += [TextColumn(f"{name} {{task.fields[{name}]}}") for name in fields or {}]
    from rich.console import Console

    with Progress(*columns, console=Console(file=sys.stderr), transient=False) as progress:
        task = progress.add_task(description, total=total, **(fields or {}))
        yield lambda n, **updates: progress.update(task, advance=n, **updates)
