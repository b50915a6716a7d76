"""The file-manager verbs, as Tahoe's CLI has them: create-alias, add-alias, list-aliases,
mkdir, ls, rm/unlink, ln, mv. Each talks to the local node's web API."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from ..errors import MistgridError
from .aliases import add_alias, check_alias_name, load_aliases, split_where, uri_path
from .data import connect_local, node_option
from .progress import count_progress


def call(node_dir: Path, method: str, path: str, body: bytes | None = None
         ) -> tuple[int, bytes]:
    conn, base = connect_local(node_dir)
    try:
        conn.request(method, base + path, body=body)
        response = conn.getresponse()
        return response.status, response.read()
    except OSError as err:
        raise MistgridError(f"cannot reach the node's web API: {err}") from err
    finally:
        conn.close()


def checked(status: int, body: bytes, what: str) -> bytes:
    if status >= 400:
        raise MistgridError(f"{what} failed: {body.decode('utf-8', 'replace').strip()}")
    return body


@click.command("create-alias")
@click.argument("alias")
@node_option
def create_alias(alias: str, node_dir: Path) -> None:
    """Make a new directory and remember it as ALIAS."""
    name = check_alias_name(alias)
    if name in load_aliases(node_dir):
        raise MistgridError(f"alias {name!r} already exists")
    cap = checked(*call(node_dir, "POST", "uri?t=mkdir"), "mkdir").decode().strip()
    add_alias(node_dir, name, cap)
    click.echo(f"Alias '{name}' created")


@click.command("add-alias")
@click.argument("alias")
@click.argument("cap")
@node_option
def add_alias_command(alias: str, cap: str, node_dir: Path) -> None:
    """Remember directory CAP as ALIAS."""
    if not cap.startswith("URI:DIR2"):
        raise MistgridError("CAP must be a directory cap (URI:DIR2...)")
    add_alias(node_dir, alias, cap)
    click.echo(f"Alias '{check_alias_name(alias)}' added")


@click.command("list-aliases")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--readonly-uri", is_flag=True, help="Show read-only caps.")
@node_option
def list_aliases(as_json: bool, readonly_uri: bool, node_dir: Path) -> None:
    """Show every alias and its directory cap."""
    aliases = load_aliases(node_dir)
    if readonly_uri:
        aliases = {n: _read_only(c) for n, c in aliases.items()}
    if as_json:
        click.echo(json.dumps({n: {"readwrite": c, "readonly": _read_only(c)}
                               for n, c in aliases.items()}, indent=1))
        return
    width = max((len(n) for n in aliases), default=0)
    for name, cap in sorted(aliases.items()):
        click.echo(f"{name + ':':>{width + 1}} {cap}")


def _read_only(cap: str) -> str:
    try:
        from ..caps.directory import parse_directory_cap  # noqa: PLC0415 (slow import)

        return parse_directory_cap(cap).read_only().to_string()
    except MistgridError:
        return cap


@click.command()
@click.argument("where", required=False)
@click.option("--format", "fmt", type=click.Choice(["sdmf", "mdmf"], case_sensitive=False))
@node_option
def mkdir(where: str | None, fmt: str | None, node_dir: Path) -> None:
    """Make a directory: unlinked (its cap is printed), or at ALIAS:PATH."""
    query = f"&format={fmt.upper()}" if fmt else ""
    if where is None:
        click.echo(checked(*call(node_dir, "POST", "uri?t=mkdir" + query), "mkdir")
                   .decode().strip())
        return
    cap, names = split_where(where, load_aliases(node_dir))
    if not names:
        raise MistgridError("give the new directory's name (e.g. tahoe:photos)")
    click.echo(checked(*call(node_dir, "PUT", uri_path(cap, names) + "?t=mkdir" + query),
                        "mkdir").decode().strip())


@click.command()
@click.argument("where", required=False)
@click.option("-l", "--long", "long_", is_flag=True,
              help="Mode, size and link time too (Tahoe's columns).")
@click.option("--json", "as_json", is_flag=True, help="Print the node's JSON.")
@click.option("--uri", "show_uri", is_flag=True, help="Show each child's cap.")
@click.option("--readonly-uri", is_flag=True, help="Show each child's read-only cap.")
@click.option("-F", "--classify", is_flag=True,
              help="Mark directories '/', writable files '*', unknown kinds '?'.")
@node_option
def ls(where: str | None, long_: bool, as_json: bool, show_uri: bool, readonly_uri: bool,
       classify: bool, node_dir: Path) -> None:
    """List a directory (the tahoe: alias by default)."""
    cap, names = split_where(where, load_aliases(node_dir))
    body = checked(*call(node_dir, "GET", uri_path(cap, names) + "?t=json"), "ls")
    if as_json:
        click.echo(body.decode())
        return
    kind, info = json.loads(body)
    if kind != "dirnode":
        entries: dict[str, Any] = {names[-1] if names else cap: [kind, info]}
    else:
        entries = info.get("children", {})
    now = time.time()
    rows = [listing_row(name, entries[name][0], entries[name][1], long_, show_uri,
                        readonly_uri, classify, now) for name in sorted(entries)]
    text = format_rows(rows)
    click.echo(text, nl=False)


def listing_row(name: str, kind: str, child: dict[str, Any], long_: bool, show_uri: bool,
                readonly_uri: bool, classify: bool, now: float) -> list[str]:
    """One line of `ls`, in Tahoe's columns: mode, size, link time, name, caps."""
    rw, ro = child.get("rw_uri"), child.get("ro_uri")
    mark = {"dirnode": "/", "filenode": "*" if rw else ""}.get(kind, "?")
    row = []
    if long_:
        meta = child.get("metadata") or {}
        when = (meta.get("tahoe") or {}).get("linkcrtime") or meta.get("ctime")
        if when:
            old = now - when > 6 * 30 * 24 * 60 * 60  # as GNU ls: the year for old links
            when_text = _link_time(int(when // 60), old)
        else:
            when_text = "-"
        size = child.get("size")
        size_text = "-" if kind == "dirnode" else "?" if size is None or kind != "filenode" \
            else str(size)
        mode = ({"dirnode": "d", "filenode": "-"}.get(kind, "?") + ("r" if ro else "-")
                + ("w" if rw else "-") + ("x" if kind == "dirnode" else "-"))
        row += [mode, size_text, when_text]
    row.append(name + (mark if classify else ""))
    if show_uri:
        row.append(rw or ro or "")
    if readonly_uri:
        row.append(ro or "-")
    return row


@functools.lru_cache(maxsize=4096)
def _link_time(minute: int, old: bool) -> str:
    """A link time as `ls -l` shows it (the entries of a directory made at once share
    their minutes: each is formatted once)."""
    return time.strftime("%b %d  %Y" if old else "%b %d %H:%M", time.localtime(minute * 60))


def format_rows(rows: list[list[str]]) -> str:
    """Columns as Tahoe lays them out: right-justified, caps and a lone column left."""
    if not rows:
        return ""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    left = [len(widths) == 1 or any(row[i].startswith("URI") for row in rows)
            for i in range(len(widths))]
    lines = [" ".join(cell.ljust(w) if lj else cell.rjust(w)
                      for cell, w, lj in zip(row, widths, left, strict=True)).rstrip()
             for row in rows]
    return "\n".join(lines) + "\n"


@click.command()
@click.argument("where")
@node_option
def rm(where: str, node_dir: Path) -> None:
    """Unlink ALIAS:PATH from its directory."""
    cap, names = split_where(where, load_aliases(node_dir))
    if not names:
        raise MistgridError("give the name to unlink (e.g. tahoe:old.txt)")
    checked(*call(node_dir, "DELETE", uri_path(cap, names)), "rm")


def _cap_of(node_dir: Path, where: str) -> str:
    cap, names = split_where(where, load_aliases(node_dir))
    if not names:
        return cap
    _kind, info = json.loads(checked(*call(node_dir, "GET", uri_path(cap, names) + "?t=json"),
                                      "lookup"))
    found: str | None = info.get("rw_uri") or info.get("ro_uri")
    if not found:
        raise MistgridError(f"{where}: no cap found")
    return found


@click.command()
@click.argument("source")
@click.argument("target")
@node_option
def ln(source: str, target: str, node_dir: Path) -> None:
    """Link what SOURCE names at TARGET too."""
    _link(node_dir, source, target, "ln")


def _link(node_dir: Path, source: str, target: str, what: str) -> None:
    cap = _cap_of(node_dir, source)
    dircap, names = split_where(target, load_aliases(node_dir))
    if not names:
        raise MistgridError("give the target name (e.g. tahoe:new.txt)")
    checked(*call(node_dir, "PUT", uri_path(dircap, names) + "?t=uri", cap.encode()), what)


@click.command()
@click.argument("source")
@click.argument("target")
@node_option
def mv(source: str, target: str, node_dir: Path) -> None:
    """Move SOURCE to TARGET (link there, then unlink here)."""
    _link(node_dir, source, target, "mv")
    source_cap, source_names = split_where(source, load_aliases(node_dir))
    checked(*call(node_dir, "DELETE", uri_path(source_cap, source_names)), "mv")


def stream_units(node_dir: Path, path: str, what: str, counting: str
                 ) -> Iterator[dict[str, Any]]:
    """The JSON lines of a streaming walk (`path` on the node's web API: stream-manifest,
    stream-deep-check) as they arrive, with a count on a terminal; an "ERROR:" line stops
    it with that reason."""
    conn, base = connect_local(node_dir)
    try:
        conn.request("POST", base + path)
        response = conn.getresponse()
        if response.status >= 400:
            checked(response.status, response.read(), what)
        with count_progress(counting) as tick:
            while line := response.readline():
                text = line.decode("utf-8", "replace").strip()
                if text.startswith("ERROR:"):
                    raise MistgridError(f"the walk stopped: {text[6:].strip()}")
                if text:
                    tick()
                    yield json.loads(text)
    except OSError as err:
        raise MistgridError(f"cannot reach the node's web API: {err}") from err
    finally:
        conn.close()


def _stream_manifest(node_dir: Path, where: str | None) -> Iterator[dict[str, Any]]:
    """The walk's units as the node sends them (the last one: the statistics)."""
    cap, names = split_where(where, load_aliases(node_dir))
    return stream_units(node_dir, uri_path(cap, names) + "?t=stream-manifest", "manifest",
                        "walking")


def _deep_stats(node_dir: Path, where: str | None) -> dict[str, Any]:
    last: dict[str, Any] = {}
    for unit in _stream_manifest(node_dir, where):
        last = unit
    if last.get("type") != "stats":
        raise MistgridError("the walk ended early (the node stopped answering)")
    stats: dict[str, Any] = last["stats"]
    return stats


@click.command()
@click.argument("where", required=False)
@click.option("--storage-index", "show", flag_value="storage-index", help="Storage indexes.")
@click.option("--verify-cap", "show", flag_value="verifycap", help="Verify caps.")
@click.option("--repair-cap", "show", flag_value="repaircap", help="Repair caps.")
@click.option("--raw", "show", flag_value="raw", help="The node's JSON lines.")
@node_option
def manifest(where: str | None, show: str | None, node_dir: Path) -> None:
    """Every object below a directory: its path and cap (or the asked-for field)."""
    for unit in _stream_manifest(node_dir, where):
        if show == "raw":
            click.echo(json.dumps(unit))
        elif unit["type"] == "stats":
            continue
        elif show:
            value = unit.get(show)
            if value:
                click.echo(value)
        else:
            click.echo(f"{unit['cap']} {'/'.join(unit['path'])}".rstrip())


@click.command("deep-size")
@click.argument("where", required=False)
@node_option
def deep_size(where: str | None, node_dir: Path) -> None:
    """Bytes in the directories and immutable files below a directory (Tahoe's deep-size:
    mutable files are not counted)."""
    stats = _deep_stats(node_dir, where)
    click.echo(str(stats["size-immutable-files"] + stats["size-literal-files"]
                   + stats["size-directories"]))


@click.command()
@click.argument("where", required=False)
@click.option("--raw", is_flag=True, help="The JSON.")
@node_option
def stats(where: str | None, raw: bool, node_dir: Path) -> None:
    """Counts and sizes of everything below a directory (Tahoe's deep-stats)."""
    result = _deep_stats(node_dir, where)
    if raw:
        click.echo(json.dumps(result, indent=1))
        return
    for key, value in result.items():
        if key != "size-files-histogram":
            click.echo(f"{key:>24}: {value}")
