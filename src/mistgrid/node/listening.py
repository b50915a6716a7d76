"""A listener that cannot open stops the node with one line naming the key."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from ..config.location import Hint
from ..errors import MistgridError
from ..policy.anonymity import is_fake_location, listens_privately


class ListenError(MistgridError):
    """A configured listener could not be opened."""


def cannot_listen(key: str, value: str) -> Any:
    """An errback turning a failed listen into a ListenError for `key = value`."""
    def failed(failure: Any) -> None:
        raise ListenError(f"cannot listen on {key} = {value}: {failure.getErrorMessage()}; "
                          "choose a free port or stop what uses it")
    return failed


def refuse_exposure(anonymous: bool, interface: str | None, hints: Iterable[Hint] = ()
                    ) -> None:
    """The anonymity guarantee where listeners and announcements are built (the config
    check refuses the same settings first; this holds if it ever missed one): an anonymous
    node listens on loopback only and announces no address but onion and I2P ones."""
    if not anonymous:
        return
    escaped = (interface or "").replace(":", "\\:")  # an IPv6 address, as Twisted writes it
    if interface is not None and not listens_privately(f"tcp:0:interface={escaped}"):
        raise ListenError(f"refusing to listen on {interface}: the node is anonymous; "
                          "set tub.port = tcp:PORT:interface=127.0.0.1")
    for hint in hints:
        if hint.kind == "auto" or (hint.kind == "tcp" and
                                   not is_fake_location(hint.host, hint.port)):
            raise ListenError(f"refusing to announce {hint.kind}:{hint.host}:{hint.port}: "
                              "the node is anonymous; list only onion:, tor: and i2p: hints "
                              "in tub.location")


def remember_port(port_file: Path | None, port: int, interface: str) -> None:
    """Write a kernel-chosen port where the next run of the node finds it (Tahoe-LAFS's
    client.port / introducer.port: a tub.port value)."""
    if port_file is None:
        return
    text = f"tcp:{port}" + ("" if interface == "0.0.0.0" else f":interface={interface}")
    temp = port_file.with_name(port_file.name + ".tmp")
    temp.write_text(text + "\n")
    temp.replace(port_file)


I2P_ATTEMPTS = 3  # a router just started may not take a SAM session at once
I2P_RETRY_DELAY = 5.0


async def listen_i2p(listen: Callable[[], Awaitable[Any]], path: str, sam: str) -> Any:
    """The listening port of an I2P destination (the i2p:KEYFILE hint `path`), retried
    a few times; a ListenError naming the hint and the SAM API otherwise."""
    from twisted.internet import reactor, task  # noqa: PLC0415 (only nodes on I2P)

    for attempt in range(1, I2P_ATTEMPTS + 1):
        try:
            return await listen()
        except Exception as err:
            if attempt == I2P_ATTEMPTS:
                raise ListenError(
                    f"cannot make the I2P destination of [node] tub.location i2p:{path} "
                    f"through the SAM API at {sam} ({attempt} tries): {err}; start the I2P "
                    "router with SAM enabled, or set [i2p] sam.port") from err
            await task.deferLater(reactor, I2P_RETRY_DELAY, lambda: None)
    raise AssertionError("unreachable")
