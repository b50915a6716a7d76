"""A client node's immutable (CHK and literal) files, as whole byte strings.

How this works: directories need small immutable files read and written whole (an
immutable directory's children table); larger files go through the streaming uploader
and downloader directly. A table larger than `MAX_TABLE` is refused rather than read
into memory.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from concurrent.futures import Executor

from ..caps.immutable import ChkCap, LiteralCap
from ..encoding.params import EncodingParams
from ..errors import MistgridError
from ..storage.client import StorageClient
from .downloader import download
from .uploader import upload

MAX_TABLE = 256 * 1024 * 1024


class ImmutableFiles:
    def __init__(self, servers: Callable[[], Sequence[StorageClient]], params: EncodingParams,
                 happy: int, convergence: bytes | None, executor: Executor | None,
                 lease_secret: bytes | None = None) -> None:
        self._servers = servers
        self.params = params
        self.happy = happy
        self.convergence = convergence
        self._executor = executor
        self._lease_secret = lease_secret

    async def store(self, data: bytes) -> ChkCap | LiteralCap:
        """Upload `data` (convergent with this node's secret); its cap."""
        return await upload(io.BytesIO(data), len(data), list(self._servers()), self.params,
                            self.happy, self.convergence, executor=self._executor,
                            lease_secret=self._lease_secret)

    async def read_all(self, cap: ChkCap | LiteralCap) -> bytes:
        if cap.size > MAX_TABLE:
            raise MistgridError(f"this file holds {cap.size} bytes; a directory's table may "
                                f"have at most {MAX_TABLE}")
        if isinstance(cap, LiteralCap):
            return cap.data
        sink = io.BytesIO()
        await download(cap, list(self._servers()), sink, executor=self._executor)
        return sink.getvalue()
