"""`mistgrid put` and `mistgrid get`: files in and out through a node's web API.

As in Tahoe-LAFS: `-d NODEDIR` (default ~/.mistgrid) names the node whose `node.url` the
command talks to. Progress bars (bytes, rate, ETA) show on a terminal; piped, they don't.
Only a web API on this machine (loopback) is used: the data and the cap never leave it.
"""

from __future__ import annotations

import base64
import sys
import threading
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import IO

import click

from ..errors import MistgridError
from ..fileutil import atomic_output
from .aliases import load_aliases, web_path
from .localhttp import NodeConnection, NodeResponse, loopback_address
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


def connect_local(node_dir: Path) -> tuple[NodeConnection, str]:
    url_file = node_dir / "node.url"
    if not url_file.exists():
        raise MistgridError(f"{node_dir} has no node.url: is the node running? "
                            f"(mistgrid run {node_dir})")
    url = urllib.parse.urlparse(url_file.read_text().strip())
    host = url.hostname or ""
    if loopback_address(host) is None:
        raise MistgridError(f"{node_dir}/node.url is not on this machine ({host}); the CLI "
                            "only talks to a local node")
    return NodeConnection(host, url.port or 80, timeout=3600), url.path or "/"


class KeptConnection:
    """One connection to the local node per thread, kept open between requests (a `cp -r`
    of many small files made one TCP connection per file). `close_all` closes every
    thread's, once their work is done."""

    def __init__(self) -> None:
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: list[NodeConnection] = []

    @property
    def conn(self) -> tuple[NodeConnection, str] | None:
        """This thread's kept connection (and the web API's base path), if any."""
        return getattr(self._local, "conn", None)

    def keep(self, conn: tuple[NodeConnection, str] | None) -> None:
        """Keep `conn` for this thread's next request (None: keep none)."""
        self._local.conn = conn
        if conn is not None:
            with self._lock:
                self._all.append(conn[0])

    def close_all(self) -> None:
        with self._lock:
            kept, self._all = self._all, []
        for conn in kept:
            conn.close()


def send_body(node_dir: Path, method: str, path: str, stream: IO[bytes], size: int,
              advance: Callable[[int], None], kept: KeptConnection | None = None) -> str:
    """Send `size` bytes of `stream` to the local node's web API in chunks; its answer
    (a cap). One line of error for a failed request. With `kept`, the thread's kept
    connection is used (and kept); the request must then be one that is safe to send again
    (PUT /uri): a kept connection the node closed meanwhile fails it, and it is repeated
    once on a new connection."""
    reuse = kept.conn if kept is not None else None
    reused = reuse is not None
    conn, base = reuse if reuse is not None else connect_local(node_dir)
    start = stream.tell() if reused else 0
    try:
        conn.putrequest(method, base + path)
        conn.putheader("Content-Length", str(size))
        conn.endheaders()
        sent = 0
        while chunk := stream.read(CHUNK):
            conn.send(chunk)
            sent += len(chunk)
            advance(len(chunk))
        response = conn.getresponse()
        answer = response.read().decode("utf-8", "replace").strip()
    except OSError as err:
        conn.close()
        if kept is not None:
            kept.keep(None)
            if reused:  # closed by the node while idle: once more, on a new connection
                stream.seek(start)
                advance(-sent)
                return send_body(node_dir, method, path, stream, size, advance, kept)
        raise MistgridError(f"cannot reach the node's web API: {err}") from err
    if kept is None or response.will_close:
        conn.close()
        if kept is not None:
            kept.keep(None)
    elif not reused:
        kept.keep((conn, base))
    if response.status not in (200, 201):
        raise MistgridError(f"upload failed: {answer}")
    return answer


@click.command()
@click.argument("source", default="-")
@click.argument("target", required=False)
@click.option("--mutable", "-m", is_flag=True,
              help="Make a mutable file (format from [client] mutable.format).")
@click.option("--format", "fmt", type=click.Choice(["chk", "sdmf", "mdmf"],
              case_sensitive=False), help="CHK (immutable), SDMF or MDMF (mutable).")
@click.option("--private-key-path", type=click.Path(exists=True, dir_okay=False,
              path_type=Path), help="The RSA key (PEM) of a new mutable file.")
@node_option
def put(source: str, target: str | None, mutable: bool, fmt: str | None,
        private_key_path: Path | None, node_dir: Path) -> None:
    """Store SOURCE (a file, or - for stdin) and print its cap. TARGET: a name to link it
    at (ALIAS:path, DIRCAP/path, or a path below tahoe:), or a mutable file's write cap
    whose contents it replaces."""
    query = _put_query(target, mutable, fmt, private_key_path)
    where = "uri"
    if target is not None:
        where, names = web_path(target, load_aliases(node_dir))
        if not names and not target.startswith(("URI:SSK:", "URI:MDMF:")):
            raise MistgridError("TARGET must be a mutable file's write cap or a name in a "
                                "directory (ALIAS:path, or DIRCAP/path)")
    if source == "-":  # spool stdin (bounded memory) to learn its size
        import tempfile  # noqa: PLC0415 (only here: a short command need not import it)

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
    with stream, byte_progress("uploading", size) as advance:
        answer = send_body(node_dir, "PUT", where + query, stream, size, advance)
    click.echo(answer)


def _put_query(target: str | None, mutable: bool, fmt: str | None,
               key_path: Path | None) -> str:
    if target is not None and target.startswith(("URI:SSK:", "URI:MDMF:")) \
            and "/" not in target:
        if mutable or fmt or key_path:
            raise MistgridError("--mutable, --format and --private-key-path make a new "
                                "file: not with a mutable file's write cap")
        return ""
    args = {}
    if fmt:
        args["format"] = fmt.upper()
    elif mutable or key_path:
        args["mutable"] = "true"
    if key_path is not None:
        if fmt and fmt.lower() == "chk":
            raise MistgridError("--private-key-path is for mutable files, not --format=chk")
        from ..crypto import rsa  # noqa: PLC0415 (cryptography is slow to import)

        try:
            key = rsa.load_private_pem(key_path.read_bytes())
        except MistgridError as err:
            raise MistgridError(f"{key_path}: {err}") from None
        args["private-key"] = base64.urlsafe_b64encode(rsa.private_der(key)).decode()
    return "?" + urllib.parse.urlencode(args) if args else ""


@click.command()
@click.argument("cap")
@click.argument("target", default="-")
@node_option
def get(cap: str, target: str, node_dir: Path) -> None:
    """Read the file CAP names (a cap, ALIAS:path or DIRCAP/path) into TARGET (a file,
    or - for stdout)."""
    where, _ = web_path(cap, load_aliases(node_dir))
    conn, base = connect_local(node_dir)
    try:
        conn.request("GET", base + where)
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


def _copy(response: NodeResponse, out: IO[bytes], size: int) -> None:
    received = 0
    with byte_progress("downloading", size) as advance:
        while chunk := response.read(CHUNK):
            out.write(chunk)
            received += len(chunk)
            advance(len(chunk))
    if size and received != size:
        raise MistgridError(f"the node sent {received} of {size} bytes (see its logs)")
