"""`mistgrid demo`: the README's main job.

By default a local grid of node processes on 127.0.0.1 stores a sample file and reads it
back (`mistgrid.node.demo`). `--offline` is the round trip without a grid: encode 3-of-10
into local share files, throw away 7 at random, decode from the other 3.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import tempfile
from pathlib import Path

import click

from .. import offline
from ..caps import ChkCap
from ..encoding.params import EncodingParams
from ..errors import MistgridError
from ..node.demo import run_demo
from .options import size_option
from .progress import byte_progress


@click.command()
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
              help="Build the grid here (kept afterwards) instead of a temporary directory.")
@click.option("--size", type=str, callback=size_option, default="5MiB", show_default=True,
              help="Size of the sample file.")
@click.option("--keep", is_flag=True, help="Leave the grid running (says how to stop it).")
@click.option("--offline", is_flag=True,
              help="No grid: encode into 10 local share files and decode from 3.")
def demo(directory: Path | None, size: int, keep: bool, offline: bool) -> None:
    """Start a local grid (an introducer, 4 storage nodes, a client), store a file, read it back."""
    work = directory or Path(tempfile.mkdtemp(prefix="mistgrid-demo-"))
    try:
        if offline:
            _run(work, size)
        else:
            cap = run_demo(work, size, keep, click.echo)
            click.echo(cap)
    finally:
        if directory is None and not keep:
            shutil.rmtree(work, ignore_errors=True)


def _run(work: Path, size: int) -> None:
    work.mkdir(parents=True, exist_ok=True)
    sample, restored, shares = work / "sample.bin", work / "restored.bin", work / "shares"
    sample.write_bytes(os.urandom(size))
    params = EncodingParams(3, 10)
    with byte_progress("encoding", 2 * size) as advance:
        cap = offline.encode_file(sample, shares, params, os.urandom(16), advance)
    click.echo(f"encoded {size} bytes into {params.total} shares in {shares}")
    keep = sorted(random.sample(range(params.total), params.needed))
    for number in set(range(params.total)) - set(keep):
        (shares / str(number)).unlink()
    click.echo(f"deleted {params.total - params.needed} shares; decoding from shares "
               f"{', '.join(map(str, keep))}")
    with restored.open("wb") as out, byte_progress("decoding", size) as advance:
        offline.decode_to(cap, [shares / str(n) for n in keep], out, advance)
    if _digest(sample) != _digest(restored):
        raise MistgridError("the decoded file differs from the original")
    kind = "CHK" if isinstance(cap, ChkCap) else "LIT"
    click.echo(f"verified: all {size} bytes read back intact ({kind} cap below)")
    click.echo(cap.to_string())


def _digest(path: Path) -> bytes:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.digest()
