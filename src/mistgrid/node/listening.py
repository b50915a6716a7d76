"""A listener that cannot open stops the node with one line naming the key."""

from __future__ import annotations

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
