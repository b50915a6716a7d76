"""Every CHK test vector through the real `mistgrid debug encode` command."""

from __future__ import annotations

from pathlib import Path

import pytest

from mistgrid.caps import base32

from ..conftest import run_cli
from ..vectors import ChkVector, SskVector, chk_params, ssk_params


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


@pytest.mark.parametrize("vector", ssk_params())
def test_cli_mutable_cap_vector(vector: SskVector, tmp_path: Path) -> None:
    """`debug mutable-cap` prints the expected SDMF or MDMF write cap for the vector's key."""
    key = tmp_path / "key.pem"
    key.write_text(vector.key_pem)
    result = run_cli("debug", "mutable-cap", "--format", vector.format, "--key-file", str(key))
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode().strip() == vector.expected


def test_cli_mutable_cap_refuses_a_bad_key(tmp_path: Path) -> None:
    """Not a key: one line naming the file, exit 1, no traceback."""
    key = tmp_path / "key.pem"
    key.write_text("not a key\n")
    result = run_cli("debug", "mutable-cap", "--key-file", str(key))
    assert result.returncode == 1
    err = result.stderr.decode()
    assert "key.pem" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
