"""`check` and `deep-check`, as Tahoe's CLI has them: each asks the local node's web API
(`t=check`, `t=stream-deep-check`) and prints Tahoe's words (or the node's JSON with
--raw). Exit status 0 whatever the files' health, as Tahoe's; 1 when the walk stops."""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path
from typing import Any

import click

from ..health.words import describe
from .aliases import load_aliases, split_where, uri_path
from .data import node_option
from .files import call, checked, stream_units


def _flags(t: str, verify: bool, repair: bool, add_lease: bool) -> str:
    query = {"t": t, "output": "JSON"}
    for name, on in (("verify", verify), ("repair", repair), ("add-lease", add_lease)):
        if on:
            query[name] = "true"
    return urllib.parse.urlencode(query)


def _options(fn: Any) -> Any:
    for option in reversed([
        click.option("--verify", is_flag=True,
                     help="Read and check every byte of every share (slower)."),
        click.option("--repair", is_flag=True,
                     help="Put back missing or corrupt shares of an unhealthy file."),
        click.option("--add-lease", is_flag=True,
                     help="Add or renew this client's lease on every share found."),
        click.option("--raw", is_flag=True, help="Print the node's JSON."),
    ]):
        fn = option(fn)
    return fn


@click.command()
@click.argument("where", nargs=-1)
@_options
@node_option
def check(where: tuple[str, ...], verify: bool, repair: bool, add_lease: bool, raw: bool,
          node_dir: Path) -> None:
    """Check the health of files or directories (a cap or ALIAS:PATH each; default: the
    tahoe: alias)."""
    aliases = load_aliases(node_dir)
    for place in where or (None,):
        cap, names = split_where(place, aliases)
        body = checked(*call(node_dir, "POST", uri_path(cap, names) + "?"
                             + _flags("check", verify, repair, add_lease)), "check")
        if raw:
            click.echo(body.decode())
            continue
        for line in describe(json.loads(body)):
            click.echo(line)


@click.command("deep-check")
@click.argument("where", nargs=-1)
@_options
@click.option("-v", "--verbose", is_flag=True, help="A line for every object checked.")
@node_option
def deep_check(where: tuple[str, ...], verify: bool, repair: bool, add_lease: bool,
               raw: bool, verbose: bool, node_dir: Path) -> None:
    """Check (and repair) everything below directories, streaming as it goes."""
    aliases = load_aliases(node_dir)
    for place in where or (None,):
        cap, names = split_where(place, aliases)
        _deep_check_one(node_dir, uri_path(cap, names) + "?" + _flags(
            "stream-deep-check", verify, repair, add_lease), repair, raw, verbose)


def _deep_check_one(node_dir: Path, path: str, repair: bool, raw: bool,
                    verbose: bool) -> None:
    from ..health.deep import DeepCheck  # noqa: PLC0415

    totals = DeepCheck(repair)
    for unit in stream_units(node_dir, path, "deep-check", "checked"):
        if raw:
            click.echo(json.dumps(unit))
            continue
        if unit.get("type") not in ("file", "directory"):
            continue
        data = unit.get("check-and-repair-results") or unit.get("check-results") or {}
        totals.add_json(unit["path"], data)
        _print_unit(unit["path"], data, repair, verbose)
    if not raw:
        for closing in totals.lines():
            click.echo(closing)


def _print_unit(path: list[str], data: dict[str, Any], repair: bool, verbose: bool) -> None:
    pre = data.get("pre-repair-results", data) if repair else data
    results = pre.get("results", {})
    if verbose:
        name = "/".join(path) or "<root>"
        if repair:
            click.echo(f"{name}: {'healthy' if results.get('healthy', True) else 'not healthy'}")
        else:
            click.echo(f"{name}: {data.get('summary', 'Healthy (LIT)')}")
    for server, si, number in results.get("list-corrupt-shares", []):
        click.echo(f" corrupt: server {server}, SI {si}, shnum {number}")
    if repair and data.get("repair-attempted"):
        problem = data.get("repair-problem")
        click.echo(" repair successful" if data.get("repair-successful") else
                   f" repair failed: {'/'.join(path) or '<root>'}"
                   + (f": {problem}" if problem else ""))
