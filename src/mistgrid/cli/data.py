"""`mistgrid put` and `mistgrid get`: files in and out through a node's web API.

As in Tahoe-LAFS: `-d NODEDIR` (default ~/.mistgrid) names the node whose `node.url` the
command talks to. Progress bars (bytes, rate, ETA) show on a terminal; piped, they don't.
Only a web API on this machine (loopback) is used: the data and the cap never leave it.
"""

from __future__ import annotations

import http.client
import sys
import tempfile
import urllib.parse
from pathlib import Path
from typing import IO

import click

from ..errors import MistgridError
from ..fileutil import atomic_output
from .progress import byte_progress

CHUNK = 1024 * 1024
DEFAULT_NODE = Path.home() / ".mistgrid"


def _node_dir(ctx: click.Context, _param: click.Parameter, value: Path | None) -> Path:
    """-d after the command, else `mistgrid -d NODEDIR` before it (Tahoe's habit), else
    ~/.mistgrid."""
    if value is not None:
        return value
    given = (ctx.find_root().obj or {}).get("node_dir")
    return Path(given) if given else DEFAULT_NODE


node_option = click.option("-d", "--node-directory", "node_dir", type=click.Path(
    file_okay=False, path_type=Path), default=None, callback=_node_dir,
    help=f"The node whose web API to use (default: mistgrid -d, else {DEFAULT_NODE}).")


def connect_local(node_dir: Path) -> tuple[http.client.HTTPConnection, str]:
    url_file = node_dir / "node.url"
    if not url_file.exists():
        raise MistgridError(f"{node_dir} has no node.url: is the node running? "
                            f"(mistgrid run {node_dir})")
    url = urllib.parse.urlparse(url_file.read_text().strip())
    host = url.hostname or ""
    if not (host.startswith("127.") or host in ("localhost", "::1")):
        raise MistgridError(f"{node_dir}/node.url is not on this machine ({host}); the CLI "
                            "only talks to a local node")
    return http.client.HTTPConnection(host, url.port or 80, timeout=3600), url.path or "/"


@click.command()
@click.argument("source", default="-")
@node_option
def put(source: str, node_dir: Path) -> None:
    """Store SOURCE (a file, or - for stdin) and print its cap."""
    conn, base = connect_local(node_dir)
    if source == "-":  # spool stdin (bounded memory) to learn its size
        stream: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 (closed below)
        while chunk := sys.stdin.buffer.read(CHUNK):
            stream.write(chunk)
        size = stream.tell()
        stream.seek(0)
    else:
        path = Path(source)
        if not path.is_file():
            raise MistgridError(f"{source}: no such file")
        size, stream = path.stat().st_size, path.open("rb")
    try:
        conn.putrequest("PUT", base + "uri")
        conn.putheader("Content-Length", str(size))
        conn.endheaders()
        with stream, byte_progress("uploading", size) as advance:
            while chunk := stream.read(CHUNK):
                conn.send(chunk)
                advance(len(chunk))
        response = conn.getresponse()
        answer = response.read().decode("utf-8", "replace").strip()
    except OSError as err:
        raise MistgridError(f"cannot reach the node's web API: {err}") from err
    finally:
        conn.close()
    if response.status != 200:
        raise MistgridError(f"upload failed: {answer}")
    click.echo(answer)


@click.command()
@click.argument("cap")
@click.argument("target", default="-")
@node_option
def get(cap: str, target: str, node_dir: Path) -> None:
    """Read the file of CAP into TARGET (a file, or - for stdout)."""
    conn, base = connect_local(node_dir)
    try:
        conn.request("GET", base + "uri/" + urllib.parse.quote(cap, safe=":"))
        response = conn.getresponse()
        if response.status != 200:
            raise MistgridError(f"download failed: "
                                f"{response.read().decode('utf-8', 'replace').strip()}")
        size = int(response.getheader("content-length") or 0)
        if target == "-":
            _copy(response, sys.stdout.buffer, size)
        else:
            with atomic_output(Path(target)) as out:
                _copy(response, out, size)
    except OSError as err:
        raise MistgridError(f"cannot reach the node's web API: {err}") from err
    finally:
        conn.close()


def _copy(response: http.client.HTTPResponse, out: IO[bytes], size: int) -> None:
    received = 0
    with byte_progress("downloading", size) as advance:
        while chunk := response.read(CHUNK):
            out.write(chunk)
            received += len(chunk)
            advance(len(chunk))
    if size and received != size:
        raise MistgridError(f"the node sent {received} of {size} bytes (see its logs)")
