"""Every CHK test vector through the real `mistgrid debug encode` command."""

from __future__ import annotations

from pathlib import Path

import pytest

from mistgrid.caps import base32

from ..conftest import run_cli
from ..vectors import ChkVector, chk_params


@pytest.mark.parametrize("vector", chk_params())
def test_cli_encode_vector(vector: ChkVector, tmp_path: Path) -> None:
    """The last stdout line of `debug encode` is the expected cap; N share files appear."""
    source = tmp_path / "sample"
    source.write_bytes(vector.plaintext())
    convergence = tmp_path / "convergence"
    convergence.write_text(base32.b2a(vector.convergence) + "\n")
    result = run_cli("debug", "encode", str(source), "--needed", str(vector.needed),
                     "--total", str(vector.total), "--segment-size", str(vector.segment_size),
                     "--convergence-file", str(convergence), "--out", str(tmp_path / "shares"))
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode().splitlines()[-1] == vector.expected
    assert sorted(p.name for p in (tmp_path / "shares").iterdir()) == sorted(
        str(n) for n in range(vector.total))
