"""Bounded memory: a 1 GiB file encodes and decodes with peak RSS under 150 MB."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

GIB = 1024**3
LIMIT_MB = 150

# Runs the command as its own child and prints the child's peak RSS (ru_maxrss, KiB), so
# nothing else pytest has run can count towards it.
PEAK_RSS = (
    "import resource, subprocess, sys\n"
    "code = subprocess.run(sys.argv[1:]).returncode\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    "sys.exit(code)\n"
)


def peak_rss_mb(*args: str) -> tuple[float, list[str]]:
    """Run `mistgrid *args`; its peak RSS in MB and its stdout lines."""
    mistgrid = str(Path(sys.executable).with_name("mistgrid"))
    result = subprocess.run([sys.executable, "-c", PEAK_RSS, mistgrid, *args],
                            capture_output=True, timeout=1200, check=False)
    assert result.returncode == 0, result.stderr.decode()
    lines = result.stdout.decode().splitlines()
    return int(lines[-1]) / 1024, lines[:-1]


@pytest.mark.slow
def test_one_gib_in_bounded_memory(tmp_path: Path) -> None:
    """Encode 3-of-10 and decode a 1 GiB file via the CLI; each stays under 150 MB RSS."""
    if shutil.disk_usage(tmp_path).free < 7 * GIB:
        pytest.skip("needs 7 GiB free for the file, its shares and the decoded copy")
    source = tmp_path / "big"
    block = os.urandom(1024 * 1024)
    digest = hashlib.sha256()
    with source.open("wb") as out:
        for i in range(1024):
            chunk = block[i:] + block[:i]
            out.write(chunk)
            digest.update(chunk)
    secret = tmp_path / "convergence"
    secret.write_bytes(os.urandom(16))
    shares = tmp_path / "shares"
    encode_mb, lines = peak_rss_mb("debug", "encode", str(source), "--needed", "3", "--total", "10",
                            "--convergence-file", str(secret), "--out", str(shares))
    source.unlink()
    cap = lines[-1]
    restored = tmp_path / "restored"
    decode_mb, _ = peak_rss_mb("debug", "decode", cap, *(str(shares / n) for n in "789"),
                            "-o", str(restored))
    print(f"peak RSS: encode {encode_mb:.1f} MB, decode {decode_mb:.1f} MB")
    assert encode_mb < LIMIT_MB
    assert decode_mb < LIMIT_MB
    check = hashlib.sha256()
    with restored.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            check.update(chunk)
    assert check.digest() == digest.digest()
