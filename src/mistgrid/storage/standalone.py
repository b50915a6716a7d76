"""Run one GBS storage server by itself: `python -m mistgrid.storage.standalone`.

For tests, benchmarks and trying the protocol: it keeps a node-like directory (`private/`
with the TLS identity and swissnum, `storage/` with the shares), listens with TLS on
127.0.0.1 and writes its NURL to `<dir>/nurl` once it is listening. A full node
(`mistgrid run`) will wire the same parts through the node configuration.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path
from typing import Any, cast

from twisted.internet import endpoints
from twisted.internet import reactor as _reactor

from ..caps import base32
from ..crypto.spki import spki_hash
from ..gbs.nurl import Nurl
from ..net.tls import TLSFactory, server_context
from .backend import UPLOAD_IDLE_TIMEOUT, DiskBackend
from .server import make_site
from .tls import create_identity, load_certificate

reactor = cast(Any, _reactor)  # Twisted's reactor is typed by interfaces mypy cannot see


def load_or_create_swissnum(private_dir: Path) -> str:
    path = private_dir / "storage-swissnum"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(base32.b2a(secrets.token_bytes(20)) + "\n")
    return path.read_text().strip()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="a standalone mistgrid GBS storage server")
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    parser.add_argument("--reserved-space", type=int, default=0)
    parser.add_argument("--upload-idle-timeout", type=float, default=UPLOAD_IDLE_TIMEOUT,
                        help="seconds an upload may go without a write before it is aborted")
    args = parser.parse_args(argv)
    private = args.dir / "private"
    private.mkdir(parents=True, exist_ok=True, mode=0o700)
    pem = create_identity(private)
    swissnum = load_or_create_swissnum(private)
    backend = DiskBackend(args.dir / "storage", reserved_space=args.reserved_space,
                          upload_idle_timeout=args.upload_idle_timeout)
    endpoint = endpoints.TCP4ServerEndpoint(reactor, args.port, interface="127.0.0.1")

    def listening(port: object) -> None:
        number = port.getHost().port  # type: ignore[attr-defined]
        nurl = Nurl("pb", spki_hash(load_certificate(pem)), "127.0.0.1", number, swissnum)
        temp = args.dir / "nurl.tmp"
        temp.write_text(nurl.to_text() + "\n")
        temp.replace(args.dir / "nurl")
        print(f"storage server listening on 127.0.0.1:{number}", flush=True)

    def failed(failure: object) -> None:
        print(f"cannot listen: {failure}", file=sys.stderr)
        reactor.stop()

    site = make_site(backend, swissnum.encode("ascii"))
    endpoint.listen(TLSFactory(site, server_context(str(pem)), server_side=True)).addCallbacks(
        listening, failed)
    reactor.run()


if __name__ == "__main__":
    main()
