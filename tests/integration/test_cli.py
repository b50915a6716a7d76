"""The offline CLI as a user runs it: round trips, damaged shares, and one-line errors."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from mistgrid.caps.mutable import MutableFormat
from mistgrid.crypto import rsa
from mistgrid.mutable.version import SigningKey

from ..conftest import run_cli


def encode(tmp_path: Path, data: bytes, *extra: str) -> tuple[str, Path]:
    source = tmp_path / "input.bin"
    source.write_bytes(data)
    out = tmp_path / "shares"
    result = run_cli("debug", "encode", str(source), "--out", str(out), *extra)
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode().splitlines()[-1], out


def assert_one_line_error(result: subprocess.CompletedProcess[bytes], *words: str) -> str:
    """Exit 1, exactly one stderr line starting 'mistgrid: error:', no traceback."""
    assert result.returncode == 1
    err = result.stderr.decode()
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("mistgrid: error:") and "Traceback" not in err
    for word in words:
        assert word in err
    return err


def test_round_trip_any_k(tmp_path: Path) -> None:
    """encode 3-of-10, decode from shares 9, 4, 1 and from all 10; bytes identical."""
    data = os.urandom(3 * 1024 * 1024 + 17)
    cap, out = encode(tmp_path, data, "--needed", "3", "--total", "10",
                      "--segment-size", "256KiB")
    assert cap.startswith("URI:CHK:") and cap.endswith(f":3:10:{len(data)}")
    for files in (["9", "4", "1"], [str(n) for n in range(10)]):
        target = tmp_path / "restored"
        result = run_cli("debug", "decode", cap, *(str(out / f) for f in files),
                         "-o", str(target))
        assert result.returncode == 0, result.stderr.decode()
        assert target.read_bytes() == data


def test_decode_to_stdout(tmp_path: Path) -> None:
    data = os.urandom(5000)
    cap, out = encode(tmp_path, data, "--needed", "2", "--total", "3")
    result = run_cli("debug", "decode", cap, str(out / "0"), str(out / "2"), "-o", "-")
    assert result.returncode == 0 and result.stdout == data


def test_small_file_is_a_lit_cap(tmp_path: Path) -> None:
    """55 bytes give a LIT cap and no shares; the cap decodes with no share files."""
    cap, out = encode(tmp_path, b"x" * 55)
    assert cap.startswith("URI:LIT:")
    assert not out.exists() or not any(out.iterdir())
    result = run_cli("debug", "decode", cap, "-o", "-")
    assert result.stdout == b"x" * 55


def test_convergence_makes_caps_reproducible(tmp_path: Path) -> None:
    """Same file and secret give the same cap; no secret gives a fresh cap each time."""
    secret = tmp_path / "convergence"
    secret.write_text("aaaaaaaaaaaaaaaaaaaaaaaaaa\n")
    data = os.urandom(1000)
    first, _ = encode(tmp_path, data, "--convergence-file", str(secret))
    second, _ = encode(tmp_path, data, "--convergence-file", str(secret))
    random_a, _ = encode(tmp_path, data)
    random_b, _ = encode(tmp_path, data)
    assert first == second and random_a != random_b


def test_corrupt_share_is_named_and_skipped(tmp_path: Path) -> None:
    """A damaged share is named in a warning and skipped while k good ones remain; below k
    the one error line names it and no output file is left behind."""
    data = os.urandom(200_000)
    cap, out = encode(tmp_path, data, "--needed", "2", "--total", "4")
    blob = bytearray((out / "0").read_bytes())
    blob[5000] ^= 1
    (out / "0").write_bytes(bytes(blob))
    target = tmp_path / "restored"
    ok = run_cli("debug", "decode", cap, *(str(out / n) for n in "0123"), "-o", str(target))
    assert ok.returncode == 0, ok.stderr.decode()
    assert target.read_bytes() == data
    assert ok.stderr.decode().startswith("mistgrid: warning: skipped share 0: block hash")
    target.unlink()
    bad = run_cli("debug", "decode", cap, str(out / "0"), str(out / "1"), "-o", str(target))
    err = assert_one_line_error(bad, "found 1, need 2", "share 0", "block hash")
    assert cap not in err
    assert not target.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".restored")] == []


def test_dump_cap(tmp_path: Path) -> None:
    cap, _ = encode(tmp_path, os.urandom(4000), "--needed", "2", "--total", "5")
    result = run_cli("debug", "dump-cap", cap)
    text = result.stdout.decode()
    for field in ("key:", "storage index:", "UEB hash:", "needed shares (k): 2",
                  "total shares (N):  5", "size:", "URI:CHK-Verifier:"):
        assert field in text


@pytest.mark.parametrize("args,words", [
    (["debug", "dump-cap", "URI:CHK:nope"], ["malformed URI:CHK cap"]),
    (["debug", "dump-cap", "hello"], ["not a recognised file cap"]),
    (["debug", "dump-cap", "URI:MDMF:abc:def"], ["wrong length"]),
    (["debug", "dump-cap", "URI:SSK-RO:x"], ["malformed mutable-file cap"]),
    (["debug", "decode", "URI:SSK:x:y", "-o", "-"], ["not a recognised"]),
])
def test_errors_are_one_line(args: list[str], words: list[str]) -> None:
    assert_one_line_error(run_cli(*args), *words)


def test_encode_errors(tmp_path: Path) -> None:
    """Impossible k/N and a bad convergence file each give one clear line."""
    source = tmp_path / "f"
    source.write_bytes(os.urandom(100))
    bad_secret = tmp_path / "secret"
    bad_secret.write_text("not a secret")
    assert_one_line_error(
        run_cli("debug", "encode", str(source), "-k", "5", "-n", "3", "--out", str(tmp_path)),
        "needed=5 total=3")
    assert_one_line_error(
        run_cli("debug", "encode", str(source), "--convergence-file", str(bad_secret),
                "--out", str(tmp_path / "o")), "convergence secret")


def test_demo_runs(tmp_path: Path) -> None:
    """The README's main job: a grid of node processes stores and reads back a file,
    prints a CHK cap, and leaves no process behind (the suite's leak check also looks)."""
    result = run_cli("demo", "--size", "300KiB", "--dir", str(tmp_path / "demo"))
    assert result.returncode == 0, result.stderr.decode()
    lines = result.stdout.decode().splitlines()
    assert lines[-1].startswith("URI:CHK:") and lines[-1].endswith(":2:4:307200")
    assert any("read back and verified all 307200 bytes" in line for line in lines)
    assert any("version 2 of a mutable file" in line for line in lines)
    assert any(line.startswith("grid of an introducer, 4 storage nodes") for line in lines)
    # The client learnt the servers from the introducer, not from a static list.
    assert not (tmp_path / "demo" / "client" / "private" / "servers.yaml").exists()
    assert (tmp_path / "demo" / "client" / "private" / "introducers.yaml").exists()


def test_demo_offline(tmp_path: Path) -> None:
    result = run_cli("demo", "--offline", "--size", "300KiB", "--dir", str(tmp_path / "d"))
    assert result.returncode == 0, result.stderr.decode()
    lines = result.stdout.decode().splitlines()
    assert lines[-1].startswith("URI:CHK:") and "verified" in lines[-2]


def test_usage_errors_are_one_line(tmp_path: Path) -> None:
    """click's own usage errors follow the same rule: one line, exit 1."""
    assert_one_line_error(run_cli("debug", "encode", str(tmp_path / "missing"), "--out", "x"),
                          "does not exist", "--help")
    assert_one_line_error(run_cli("debug", "encode", "--segment-size", "lots"), "lots")
    assert_one_line_error(run_cli("no-such-command"), "No such command")
    help_result = run_cli("--help")
    assert help_result.returncode == 0 and b"debug" in help_result.stdout


def test_dump_mutable_cap() -> None:
    """dump-cap of a mutable write cap: its keys, storage index and weaker caps."""
    key = SigningKey.of(rsa.generate())
    cap = key.cap(MutableFormat.MDMF)
    result = run_cli("debug", "dump-cap", cap.to_string())
    text = result.stdout.decode()
    assert result.returncode == 0
    for field in ("MDMF mutable file write cap", "write key:", "read key:",
                  "storage index:", "fingerprint:", cap.read_only().to_string(),
                  cap.verifier().to_string()):
        assert field in text, field
    verify = run_cli("debug", "dump-cap", cap.verifier().to_string()).stdout.decode()
    assert "verify cap" in verify and "read key" not in verify
