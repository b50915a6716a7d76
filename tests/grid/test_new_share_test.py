"""A share the map did not see is written only where there is still none: a share that
appeared there after the map (another writer's new share, or one a silent server held) is
never overwritten; the write is a conflict instead, as Tahoe's publisher tests it."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import cast

import pytest
import pytest_twisted

from mistgrid.caps.mutable import MutableFormat, MutableWriteCap
from mistgrid.crypto import rsa
from mistgrid.errors import UncoordinatedWriteError
from mistgrid.grid import mdmf
from mistgrid.grid.mutable import KeyPool, map_servers, publish
from mistgrid.grid.mutable_files import MutableFiles
from mistgrid.mutable.version import SigningKey
from mistgrid.storage.client import ShareVectors, StorageClient

from .test_mutable_map import HeldListing

LEASE = b"l" * 32


async def _share_gone_then_back(fmt: MutableFormat, tmp_path: Path) -> None:
    servers = [HeldListing(tmp_path / f"s{i}", i) for i in range(4)]  # as GBS: a
    # read of a share the server does not hold fails
    clients = cast(list[StorageClient], servers)
    key = SigningKey.of(rsa.generate())
    files = MutableFiles(lambda: clients, 2, 4, LEASE, None, KeyPool(0, None))
    first = os.urandom(3000)
    cap = await files.create(fmt, io.BytesIO(first), len(first), key)
    assert isinstance(cap, MutableWriteCap)
    si = cap.storage_index
    holder = next(s for s in servers if 3 in s.backend.mutable_shares(si))
    size = len(holder.backend.read_mutable(si, 3, 0, 1 << 20))
    old = holder.backend.read_mutable(si, 3, 0, size)
    secrets = mdmf._secrets(cap, cast(StorageClient, holder), LEASE)
    # share 3 is lost, and the servers are mapped without it ...
    ok, _ = await holder.read_test_write(si, secrets, {3: ShareVectors((), (), 0)})
    assert ok and 3 not in holder.backend.mutable_shares(si)
    mapped = await map_servers(clients, cap, 4)
    assert {f.number for f in mapped.map.found} == {0, 1, 2}
    # ... then another writer puts a share 3 there before this writer's publish
    ok, _ = await holder.read_test_write(si, secrets, {3: ShareVectors((), ((0, old),))})
    assert ok
    second = os.urandom(3000)
    with pytest.raises(UncoordinatedWriteError):
        if fmt is MutableFormat.SDMF:
            await publish(clients, cap, key, second, 2, 4, LEASE, mapped)
        else:
            await mdmf.publish_stream(clients, cap, key, io.BytesIO(second), len(second),
                                      2, 4, LEASE, mapped)
    assert holder.backend.read_mutable(si, 3, 0, size + 1) == old
    # the writer's own retry (map again, publish over what is there) then succeeds
    await files.replace(cap, io.BytesIO(second), len(second))
    assert await files.read_all(cap) == second


@pytest_twisted.ensureDeferred
async def test_sdmf_new_share_is_not_written_over_one_that_appeared(tmp_path: Path) -> None:
    await _share_gone_then_back(MutableFormat.SDMF, tmp_path)


@pytest_twisted.ensureDeferred
async def test_mdmf_new_share_is_not_written_over_one_that_appeared(tmp_path: Path) -> None:
    await _share_gone_then_back(MutableFormat.MDMF, tmp_path)
