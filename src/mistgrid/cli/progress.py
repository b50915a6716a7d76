"""Progress bars on a terminal (bytes, rate, ETA); nothing at all when stderr is piped."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def byte_progress(description: str, total: int) -> Iterator[Callable[[int], None]]:
    """Yield an `advance(nbytes)` callback that drives a bar on an interactive stderr."""
    if not sys.stderr.isatty():  # piped: no bar, and no need to import rich at all
        yield lambda _n: None
        return
    from rich.console import Console  # noqa: PLC0415 (kept off the piped path)
    from rich.progress import (  # noqa: PLC0415
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    console = Console(stderr=True)
    if not console.is_terminal or total <= 0:
        yield lambda _n: None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
               TransferSpeedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)


@contextmanager
def count_progress(description: str) -> Iterator[Callable[[], None]]:
    """Yield a `tick()` callback that counts things done on an interactive stderr (for
    work of unknown size: a walk of a directory tree)."""
    if not sys.stderr.isatty():
        yield lambda: None
        return
    from rich.console import Console  # noqa: PLC0415 (kept off the piped path)
    from rich.progress import Progress, SpinnerColumn, TextColumn  # noqa: PLC0415

    console = Console(stderr=True)
    if not console.is_terminal:
        yield lambda: None
        return
    columns = (SpinnerColumn(), TextColumn("{task.description}: {task.completed} objects"))
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(description, total=None)
        yield lambda: bar.advance(task, 1)


def is_interactive() -> bool:
    return sys.stderr.isatty()
