"""`mistgrid debug ...`: offline encode, decode and cap inspection."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .. import offline
from ..caps import ChkCap, ChkVerifierCap, LiteralCap, base32, parse_cap
from ..caps.mutable import (
    MutableCap,
    MutableFormat,
    MutableReadCap,
    MutableVerifierCap,
    MutableWriteCap,
    is_mutable_text,
    parse_mutable_cap,
)
from ..crypto import rsa
from ..encoding.params import DEFAULT_MAX_SEGMENT_SIZE, EncodingParams
from ..errors import MistgridError, ShareError
from ..fileutil import atomic_output, read_convergence
from ..mutable.version import SigningKey
from .options import size_option
from .progress import byte_progress


@click.group()
def debug() -> None:
    """Offline tools: encode a file into shares, decode shares, inspect caps."""


@debug.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--needed", "-k", type=click.IntRange(1, 256), default=3, show_default=True,
              help="Shares needed to read the file (k).")
@click.option("--total", "-n", type=click.IntRange(1, 256), default=10, show_default=True,
              help="Shares written (N).")
@click.option("--segment-size", type=str, callback=size_option, default=DEFAULT_MAX_SEGMENT_SIZE,
              show_default=True, help="Maximum segment size (e.g. 131072, 128KiB, 1MiB).")
@click.option("--convergence-file", type=click.Path(exists=True, dir_okay=False,
              path_type=Path), help="Convergence secret (a node's private/convergence); "
              "without it the key is random and the cap is not reproducible.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False,
              path_type=Path), help="Directory for the share files (named 0, 1, ...).")
def encode(file: Path, needed: int, total: int, segment_size: int,
           convergence_file: Path | None, out_dir: Path) -> None:
    """Encode FILE into N share files; print the cap as the last line."""
    params = EncodingParams(needed, total, segment_size)
    convergence = read_convergence(convergence_file) if convergence_file else None
    size = file.stat().st_size
    passes = 2 if convergence is not None else 1
    with byte_progress("encoding", size * passes) as advance:
        cap = offline.encode_file(file, out_dir, params, convergence, advance)
    if isinstance(cap, LiteralCap):
        click.echo(f"{size} bytes fit in the cap itself (LIT); no shares written", err=True)
    else:
        click.echo(f"wrote {total} shares to {out_dir} (any {needed} recover the file)",
                   err=True)
    click.echo(cap.to_string())


@debug.command()
@click.argument("cap")
@click.argument("share_files", nargs=-1, type=click.Path(exists=True, dir_okay=False,
                path_type=Path))
@click.option("-o", "--output", required=True, help="Where to write the file ('-': stdout).")
def decode(cap: str, share_files: tuple[Path, ...], output: str) -> None:
    """Rebuild the file of CAP from any k of its SHARE_FILES."""
    parsed = parse_cap(cap)
    if isinstance(parsed, ChkVerifierCap):
        raise MistgridError("a verify cap cannot decrypt; give the read cap (URI:CHK:...)")
    skipped: list[ShareError] = []  # reported after success; a failure's one line has them
    if output == "-":
        offline.decode_to(parsed, list(share_files), sys.stdout.buffer, None, skipped.append)
    else:
        target = Path(output)
        with atomic_output(target) as handle, byte_progress("decoding", parsed.size) as advance:
            offline.decode_to(parsed, list(share_files), handle, advance, skipped.append)
    for problem in skipped:
        click.echo(f"mistgrid: warning: skipped {problem}", err=True)
    if output != "-":
        click.echo(f"wrote {parsed.size} bytes to {output}", err=True)


@debug.command("dump-cap")
@click.argument("cap")
def dump_cap(cap: str) -> None:
    """Show the fields of CAP."""
    rows: list[tuple[str, str]]
    if is_mutable_text(cap):
        rows = _mutable_rows(parse_mutable_cap(cap))
        width = max(len(name) for name, _ in rows)
        for name, value in rows:
            click.echo(f"{name + ':':<{width + 1}} {value}")
        return
    parsed = parse_cap(cap)
    if isinstance(parsed, LiteralCap):
        rows = [("kind", "LIT (data inside the cap)"), ("size", str(parsed.size))]
    else:
        rows = [("kind", "CHK read cap" if isinstance(parsed, ChkCap) else "CHK verify cap")]
        if isinstance(parsed, ChkCap):
            rows.append(("key", base32.b2a(parsed.key)))
        rows += [
            ("storage index", base32.b2a(parsed.storage_index)),
            ("UEB hash", base32.b2a(parsed.ueb_hash)),
            ("needed shares (k)", str(parsed.needed)),
            ("total shares (N)", str(parsed.total)),
            ("size", str(parsed.size)),
        ]
        if isinstance(parsed, ChkCap):
            rows.append(("verify cap", parsed.verifier().to_string()))
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        click.echo(f"{name + ':':<{width + 1}} {value}")


def _mutable_rows(cap: MutableCap) -> list[tuple[str, str]]:
    kind = {MutableWriteCap: "write cap", MutableReadCap: "read cap",
            MutableVerifierCap: "verify cap"}[type(cap)]
    rows = [("kind", f"{cap.format.value} mutable file {kind}")]
    if isinstance(cap, MutableWriteCap):
        rows.append(("write key", base32.b2a(cap.writekey)))
    if isinstance(cap, (MutableWriteCap, MutableReadCap)):
        rows.append(("read key", base32.b2a(cap.readkey)))
    rows += [("storage index", base32.b2a(cap.storage_index)),
             ("fingerprint", base32.b2a(cap.fingerprint))]
    if isinstance(cap, MutableWriteCap):
        rows.append(("read cap", cap.read_only().to_string()))
    if isinstance(cap, (MutableWriteCap, MutableReadCap)):
        rows.append(("verify cap", cap.verifier().to_string()))
    return rows


@debug.command("mutable-cap")
@click.option("--format", "fmt", type=click.Choice(["sdmf", "mdmf"], case_sensitive=False),
              default="sdmf", show_default=True, help="The mutable file format.")
@click.option("--key-file", required=True, type=click.Path(exists=True, dir_okay=False,
              path_type=Path), help="An RSA private key in PEM (PKCS#1 or PKCS#8).")
def mutable_cap(fmt: str, key_file: Path) -> None:
    """Print the write cap of the mutable file that an RSA key names (nothing is stored)."""
    try:
        key = SigningKey.of(rsa.load_private_pem(key_file.read_bytes()))
    except MistgridError as err:
        raise click.ClickException(f"{key_file}: {err}") from None
    click.echo(key.cap(MutableFormat[fmt.upper()]).to_string())
