"""Aliases (`NODEDIR/private/aliases`, Tahoe's file and format) and `ALIAS:path` names.

A line is `name: cap`. A path argument is `ALIAS:path`, a cap optionally followed by
`/path` (or `:./path`), or a bare path below the default alias `tahoe:`.
"""

from __future__ import annotations

import os
import urllib.parse
from pathlib import Path

from ..errors import MistgridError

DEFAULT_ALIAS = "tahoe"


def aliases_file(node_dir: Path) -> Path:
    return node_dir / "private" / "aliases"


def load_aliases(node_dir: Path) -> dict[str, str]:
    path = aliases_file(node_dir)
    if not path.exists():
        return {}
    aliases: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or ":" not in line:
            continue
        name, cap = line.split(":", 1)
        aliases[name.strip()] = cap.strip()
    return aliases


def check_alias_name(name: str) -> str:
    name = name[:-1] if name.endswith(":") else name
    if not name or ":" in name or "/" in name or any(c.isspace() for c in name):
        raise MistgridError(f"{name!r} is not an alias name (no ':', '/' or spaces)")
    return name


def add_alias(node_dir: Path, name: str, cap: str) -> None:
    """Append `name: cap` (refusing a name already there), 0600 as Tahoe keeps it."""
    name = check_alias_name(name)
    if name in load_aliases(node_dir):
        raise MistgridError(f"alias {name!r} already exists")
    path = aliases_file(node_dir)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as handle:
        handle.write(f"{name}: {cap}\n")


def split_where(where: str | None, aliases: dict[str, str]) -> tuple[str, list[str]]:
    """(directory or file cap, path names below it) of a CLI path argument."""
    if where is None or where == "":
        where = DEFAULT_ALIAS + ":"
    if where.startswith("URI:"):
        if ":./" in where:
            cap, _, rest = where.partition(":./")
        else:
            cap, _, rest = where.partition("/")
        return cap, [n for n in rest.split("/") if n]
    alias, colon, rest = where.partition(":")
    if not colon or "/" in alias:
        alias, rest = DEFAULT_ALIAS, where
    if alias not in aliases:
        raise MistgridError(f"unknown alias {alias!r}; make it with 'mistgrid create-alias "
                            f"{alias}' (or add one with add-alias)")
    return aliases[alias], [n for n in rest.split("/") if n]


def uri_path(cap: str, names: list[str]) -> str:
    """The web API path of a cap and names below it."""
    return "uri/" + urllib.parse.quote(cap, safe=":") + "".join(
        "/" + urllib.parse.quote(n, safe="") for n in names)


def web_path(where: str, aliases: dict[str, str]) -> tuple[str, list[str]]:
    """The web API path of a CLI argument: a bare cap, a cap with a path, or ALIAS:path;
    and the names below the cap."""
    if where.startswith("URI:") and "/" not in where and ":./" not in where:
        return uri_path(where, []), []
    cap, names = split_where(where, aliases)
    return uri_path(cap, names), names
