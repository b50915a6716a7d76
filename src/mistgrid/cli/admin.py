"""`mistgrid admin`: keys and other things an operator makes by hand."""

from __future__ import annotations

import os
from pathlib import Path

import click

from ..errors import MistgridError


@click.group()
def admin() -> None:
    """Make keys for a grid's operators."""


@admin.command("onion-client-key")
@click.argument("name")
@click.option("--directory", type=click.Path(file_okay=False, path_type=Path),
              default=Path("."), show_default=True, help="Where to write the two files.")
def onion_client_key(name: str, directory: Path) -> None:
    """Make a v3 onion client-authorization key pair for client NAME: NAME.auth_private
    (0600) for the client's [tor] client_auth.private_key_file, and NAME.auth for the
    [tor] onion.client_auth directory of every storage node and introducer it may reach.
    """
    from ..crypto.onion_auth import ClientKey  # noqa: PLC0415

    if not name or "/" in name or name.startswith("."):
        raise MistgridError(f"{name!r}: the client's name becomes a file name: use letters, "
                            "digits, '-' or '_'")
    directory.mkdir(parents=True, exist_ok=True)
    private, public = directory / f"{name}.auth_private", directory / f"{name}.auth"
    for path in (private, public):
        if path.exists():
            raise MistgridError(f"{path} exists: move it away first (a key is never "
                                "overwritten)")
    key = ClientKey.generate()
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(key.private_file_text())
    public.write_text(key.public_file_text())
    click.echo(f"client key: {private} (keep it secret; the client's "
               "[tor] client_auth.private_key_file)")
    click.echo(f"public key: {public} (copy it into each server's [tor] onion.client_auth "
               "directory)")
