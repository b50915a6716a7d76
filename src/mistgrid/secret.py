"""Secret values that never show themselves in reprs, logs or tracebacks.

A `Secret` wraps bytes (a key, a swissnum, a convergence secret). Its `repr` and `str`
name only the kind of secret, so a stray log line or a failed assertion cannot leak it.
Call `reveal()` where the bytes are really needed.
"""

from __future__ import annotations

import hmac

import attrs


@attrs.frozen(repr=False, eq=False)
class Secret:
    """Bytes that are redacted wherever they are printed."""

    kind: str
    _value: bytes = attrs.field(alias="value")

    def reveal(self) -> bytes:
        """The secret bytes themselves."""
        return self._value

    def __repr__(self) -> str:
        return f"<Secret {self.kind}: redacted>"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return self.kind == other.kind and hmac.compare_digest(self._value, other._value)

    def __hash__(self) -> int:
        return hash((self.kind, len(self._value)))
