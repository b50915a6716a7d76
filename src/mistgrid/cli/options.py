"""Shared option parsing: sizes with units."""

from __future__ import annotations

import re
from pathlib import Path

import click

_UNITS = {"": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 1000**2, "mb": 1000**2,
          "mib": 1024**2, "g": 1000**3, "gb": 1000**3, "gib": 1024**3}


def parse_size(text: str) -> int:
    """`131072`, `128KiB`, `1MiB`, `5M` -> bytes."""
    match = re.fullmatch(r"\s*(\d+)\s*([a-zA-Z]*)\s*", text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _UNITS:
        raise click.BadParameter(f"{text!r} is not a size (examples: 131072, 128KiB, 1MiB)")
    return int(match.group(1)) * _UNITS[unit]


def size_option(ctx: click.Context, param: click.Parameter, value: object) -> int:
    """click callback: a size option's text (or default) to bytes."""
    return value if isinstance(value, int) else parse_size(str(value))


def _directory(ctx: click.Context, _param: click.Parameter, value: Path | None) -> Path:
    if value is not None:
        return value
    given = (ctx.find_root().obj or {}).get("node_dir")
    return Path(given) if given else Path(".")


# DIRECTORY of run/start/stop/restart/status: given, else `mistgrid -d NODEDIR`, else ".".
directory_argument = click.argument("directory", required=False, default=None,
                                    callback=_directory,
                                    type=click.Path(file_okay=False, path_type=Path))
