"""Child process for benchmarks/grid.py: one mistgrid upload or download over GBS.

    python -m benchmarks._grid_client upload NURLS_FILE FILE K N HAPPY
    python -m benchmarks._grid_client download NURLS_FILE CAP OUT
Prints the cap (upload) and the seconds taken as the last line.
"""

from __future__ import annotations

import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, cast

from twisted.internet import defer, task

from mistgrid.caps import ChkCap, LiteralCap, parse_cap
from mistgrid.encoding.params import EncodingParams
from mistgrid.gbs.nurl import parse_nurl
from mistgrid.grid.downloader import download
from mistgrid.grid.uploader import upload
from mistgrid.net.connector import Connector
from mistgrid.storage.client import StorageClient
from mistgrid.testing.sinks import ThreadedFileSink


async def run(reactor: object, argv: list[str]) -> None:
    command, nurls_file = argv[0], Path(argv[1])
    connector = Connector(reactor)
    servers = [StorageClient(parse_nurl(line), connector, reactor)
               for line in nurls_file.read_text().split()]
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        start = time.monotonic()
        if command == "upload":
            path = Path(argv[2])
            k, n, happy = (int(x) for x in argv[3:6])
            with path.open("rb") as source:
                cap = await upload(source, path.stat().st_size, servers,
                                   EncodingParams(k, n), happy, os.urandom(16),
                                   executor=pool)
            print(cap.to_string())
        else:
            parsed = parse_cap(argv[2])
            assert isinstance(parsed, (ChkCap, LiteralCap))
            with open(argv[3], "wb") as out:
                sink = ThreadedFileSink(out, reactor)
                try:
                    await download(parsed, servers, cast(IO[bytes], sink), executor=pool)
                finally:
                    sink.close()
        print(f"{time.monotonic() - start:.3f}")


def main() -> None:
    task.react(lambda reactor: defer.Deferred.fromCoroutine(run(reactor, sys.argv[1:])))


if __name__ == "__main__":
    main()
