"""One progress bar style for long work (count, rate and ETA), and consoles that print text as
text: data (a category named ``$\\badmacro{x}$``, a server message holding ``[/]``, a path) is
never read as rich markup, so printing can never crash nor change what it shows."""

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


def plain_console(*, stderr: bool = False, **options: Any) -> Any:
    """A rich console that prints strings as they are (no markup, no emoji codes)."""
    from rich.console import Console

    return Console(stderr=stderr, markup=False, emoji=False, **options)


def labelled(label: str, style: str, message: str) -> Text:
    """``label`` in ``style``, then ``message`` as plain text (``error: ...``, ``warning: ...``)."""
    return Text.assemble((label, style), " ", message)


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
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    ]
    columns += [TextColumn(f"{name} {{task.fields[{name}]}}", markup=False) for name in fields or {}]
    with Progress(*columns, console=plain_console(file=sys.stderr), transient=False) as progress:
        task = progress.add_task(description, total=total, **(fields or {}))
        yield lambda n, **updates: progress.update(task, advance=n, **updates)
