"""A listener that cannot open stops the node with one line naming the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import MistgridError


class ListenError(MistgridError):
    """A configured listener could not be opened."""


def cannot_listen(key: str, value: str) -> Any:
    """An errback turning a failed listen into a ListenError for `key = value`."""
    def failed(failure: Any) -> None:
        raise ListenError(f"cannot listen on {key} = {value}: {failure.getErrorMessage()}; "
                          "choose a free port or stop what uses it")
    return failed


def remember_port(port_file: Path | None, port: int, interface: str) -> None:
    """Write a kernel-chosen port where the next run of the node finds it (Tahoe-LAFS's
    client.port / introducer.port: a tub.port value)."""
    if port_file is None:
        return
    text = f"tcp:{port}" + ("" if interface == "0.0.0.0" else f":interface={interface}")
    temp = port_file.with_name(port_file.name + ".tmp")
    temp.write_text(text + "\n")
    temp.replace(port_file)
