"""Directory capabilities (`specifications/uri.rst`, `dirnodes.rst`).

How this works: a directory is a file holding its children table, and its cap is that
file's cap under a `DIR2` prefix with the same fields: `URI:DIR2:` is an SDMF write cap,
`URI:DIR2-MDMF:` an MDMF one, `URI:DIR2-CHK:` an immutable (CHK) file, `URI:DIR2-LIT:` a
literal one; each with its `-RO` and `-Verifier` forms where the file kind has them.
`DirectoryCap` wraps the file cap; weaker caps are derived from it.
"""

from __future__ import annotations

import attrs

from ..errors import CapabilityError
from .immutable import ChkCap, ChkVerifierCap, LiteralCap, parse_cap
from .mutable import (
    MutableCap,
    MutableReadCap,
    MutableVerifierCap,
    MutableWriteCap,
    parse_mutable_cap,
)

FileCap = MutableCap | ChkCap | ChkVerifierCap | LiteralCap

# directory prefix -> the prefix of the file cap it wraps; longest first
_PREFIXES = sorted([
    ("URI:DIR2:", "URI:SSK:"), ("URI:DIR2-RO:", "URI:SSK-RO:"),
    ("URI:DIR2-Verifier:", "URI:SSK-Verifier:"),
    ("URI:DIR2-MDMF:", "URI:MDMF:"), ("URI:DIR2-MDMF-RO:", "URI:MDMF-RO:"),
    ("URI:DIR2-MDMF-Verifier:", "URI:MDMF-Verifier:"),
    ("URI:DIR2-CHK:", "URI:CHK:"), ("URI:DIR2-CHK-Verifier:", "URI:CHK-Verifier:"),
    ("URI:DIR2-LIT:", "URI:LIT:"),
], key=lambda p: -len(p[0]))
_TO_DIRECTORY = {file_prefix: dir_prefix for dir_prefix, file_prefix in _PREFIXES}


def is_directory_text(text: str) -> bool:
    return text.startswith("URI:DIR2")


@attrs.frozen(repr=False)
class DirectoryCap:
    """A directory: the cap of the file that holds its children table."""

    file: FileCap

    @property
    def is_mutable(self) -> bool:
        return isinstance(self.file, (MutableWriteCap, MutableReadCap, MutableVerifierCap))

    @property
    def is_writable(self) -> bool:
        return isinstance(self.file, MutableWriteCap)

    @property
    def is_verifier(self) -> bool:
        return isinstance(self.file, (MutableVerifierCap, ChkVerifierCap))

    @property
    def writekey(self) -> bytes | None:
        """The key that encrypts children's write caps (write caps only)."""
        return self.file.writekey if isinstance(self.file, MutableWriteCap) else None

    def read_only(self) -> DirectoryCap:
        if isinstance(self.file, MutableWriteCap):
            return DirectoryCap(self.file.read_only())
        return self

    def verifier(self) -> DirectoryCap | None:
        """The verify cap (None for a literal directory, which has nothing stored)."""
        if isinstance(self.file, LiteralCap):
            return None
        if isinstance(self.file, (MutableWriteCap, MutableReadCap, ChkCap)):
            return DirectoryCap(self.file.verifier())
        return self

    def to_string(self) -> str:
        text = self.file.to_string()
        for file_prefix, dir_prefix in sorted(_TO_DIRECTORY.items(), key=lambda p: -len(p[0])):
            if text.startswith(file_prefix):
                return dir_prefix + text[len(file_prefix):]
        raise CapabilityError("no directory form for this cap")  # pragma: no cover

    def __repr__(self) -> str:
        return f"<DirectoryCap of {self.file!r}>"


def parse_directory_cap(text: str) -> DirectoryCap:
    """Parse a `URI:DIR2...` cap; CapabilityError for anything malformed."""
    for dir_prefix, file_prefix in _PREFIXES:
        if text.startswith(dir_prefix):
            inner = file_prefix + text[len(dir_prefix):]
            if file_prefix.startswith(("URI:SSK", "URI:MDMF")):
                return DirectoryCap(parse_mutable_cap(inner))
            return DirectoryCap(parse_cap(inner))
    raise CapabilityError("not a recognised directory cap (expected URI:DIR2:, "
                          "URI:DIR2-MDMF:, URI:DIR2-CHK:, URI:DIR2-LIT: or their -RO and "
                          "-Verifier forms)")
