"""`mistgrid create-node | create-client | create-introducer DIR`, with Tahoe's options."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ..node.directory import DEFAULT_WEBPORT, NodeSpec, create_node_dir


def _options(command: Callable[..., Any]) -> Callable[..., Any]:
    decorators = [
        click.argument("directory", type=click.Path(file_okay=False, path_type=Path)),
        click.option("--nickname", "-n", default="", help="This node's nickname."),
        click.option("--introducer", "-i", default="", help="The introducer's FURL."),
        click.option("--listen", default=None,
                     help="Listener types: tcp, tor, i2p (or several, e.g. tcp,tor), or "
                     "none."),
        click.option("--tor-control-port", default="", metavar="ENDPOINT",
                     help="Tor's control port, for --listen=tor (default "
                     "tcp:127.0.0.1:9051)."),
        click.option("--tor-launch", is_flag=True,
                     help="Start a Tor of the node's own ([tor] launch = true), rather "
                     "than use a running one."),
        click.option("--tor-executable", default="", metavar="PATH",
                     help="The tor to launch (default: tor on $PATH)."),
        click.option("--i2p-sam-port", default="", metavar="ENDPOINT",
                     help="The I2P router's SAM API, for --listen=i2p and .i2p servers "
                     "(default tcp:127.0.0.1:7656)."),
        click.option("--i2p-launch", is_flag=True,
                     help="Start an I2P router (i2pd) of the node's own ([i2p] launch = "
                     "true), rather than use a running one."),
        click.option("--i2p-executable", default="", metavar="PATH",
                     help="The i2pd to launch (default: i2pd on $PATH)."),
        click.option("--tor-socks-port", default="", metavar="ENDPOINT",
                     help="Tor's SOCKS port, for .onion servers and --hide-ip (default "
                     "tcp:127.0.0.1:9050)."),
        click.option("--hostname", default="", help="Host name others reach this node at."),
        click.option("--location", default="", help="tub.location (with --port)."),
        click.option("--port", default="", help="tub.port (with --location)."),
        click.option("--hide-ip", is_flag=True,
                     help="Refuse any setting that would reveal this node's address."),
        click.option("--webport", "-p", default=DEFAULT_WEBPORT, show_default=True,
                     help="Web API endpoint ('none' for no web API)."),
        click.option("--storage-dir", default="", help="Where shares are kept."),
        click.option("--shares-needed", type=click.IntRange(1, 256), default=3,
                     show_default=True),
        click.option("--shares-happy", type=click.IntRange(1, 256), default=7,
                     show_default=True),
        click.option("--shares-total", type=click.IntRange(1, 256), default=10,
                     show_default=True),
    ]
    for decorator in reversed(decorators):
        command = decorator(command)
    return command


def _create(kind: str, directory: Path, listen: str | None, default_listen: str,
            **options: Any) -> None:
    spec = NodeSpec(kind=kind, listen=tuple((listen or default_listen).split(",")),
                    storage=kind == "node", **options)
    create_node_dir(directory, spec)
    click.echo(f"{kind} created in {directory}")
    if kind == "introducer":
        click.echo(f"its FURL (give it to the grid's nodes; it is a secret) is in "
                   f"{directory / 'private' / 'introducer.furl'}")


@click.command("create-node")
@_options
def create_node(directory: Path, listen: str | None, **options: Any) -> None:
    """Create a node that stores shares for others (and can be a client)."""
    _create("node", directory, listen, "tcp", **options)


@click.command("create-client")
@_options
def create_client(directory: Path, listen: str | None, **options: Any) -> None:
    """Create a client-only node (no storage; not listening by default)."""
    _create("client", directory, listen, "none", **options)


@click.command("create-introducer")
@_options
def create_introducer(directory: Path, listen: str | None, **options: Any) -> None:
    """Create an introducer node."""
    _create("introducer", directory, listen, "tcp", **options)
