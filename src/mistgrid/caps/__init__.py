"""Capabilities: parse and format `URI:LIT:`, `URI:CHK:` and `URI:CHK-Verifier:` strings.

The names below are loaded from `immutable` when first used, so a CLI verb that needs only
`caps.base32` does not import the cap classes (and what they import) at start-up.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .immutable import Cap, ChkCap, ChkVerifierCap, LiteralCap, ReadCap, parse_cap

__all__ = ["Cap", "ChkCap", "ChkVerifierCap", "LiteralCap", "ReadCap", "parse_cap"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module(".immutable", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
