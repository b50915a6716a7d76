"""Shared option parsing: sizes with units and convergence-secret files."""

from __future__ import annotations

import re
from pathlib import Path

import click

from ..caps import base32
from ..errors import MistgridError

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


def read_convergence(path: Path) -> bytes:
    """A convergence secret: Tahoe's `private/convergence` (base32 text: 32 bytes as
    Tahoe-LAFS writes it, 52 characters; 16 bytes in older mistgrid nodes) or 16 raw
    bytes. Used as it is: the same secret gives the same caps as Tahoe's."""
    raw = path.read_bytes()
    text = raw.strip()
    if 26 <= len(text) <= 104:
        try:
            secret = base32.a2b(text.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            secret = b""
        if len(secret) >= 16:
            return secret
    if len(raw) == 16:
        return raw
    raise MistgridError(
        f"{path}: not a convergence secret; expected base32 text (as in a node's "
        "private/convergence: 52 characters from Tahoe-LAFS, 26 from older mistgrid) or "
        "exactly 16 bytes")


def _directory(ctx: click.Context, _param: click.Parameter, value: Path | None) -> Path:
    if value is not None:
        return value
    given = (ctx.find_root().obj or {}).get("node_dir")
    return Path(given) if given else Path(".")


# DIRECTORY of run/start/stop/restart/status: given, else `mistgrid -d NODEDIR`, else ".".
directory_argument = click.argument("directory", required=False, default=None,
                                    callback=_directory,
                                    type=click.Path(file_okay=False, path_type=Path))
