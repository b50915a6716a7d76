"""`mistgrid run DIR`: run a node in the foreground until Ctrl-C or SIGTERM."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .options import directory_argument


@click.command()
@directory_argument
def run(directory: Path) -> None:
    """Run the node in DIRECTORY (refusing to start on any configuration problem)."""
    from ..node.runner import run_node  # noqa: PLC0415 (Twisted: only when running)

    problems = run_node(directory)
    for line in problems:
        click.echo(f"mistgrid: error: {line}", err=True)
    if problems:
        sys.exit(1)
