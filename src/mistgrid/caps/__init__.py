"""Capabilities: parse and format `URI:LIT:`, `URI:CHK:` and `URI:CHK-Verifier:` strings."""

from .immutable import Cap, ChkCap, ChkVerifierCap, LiteralCap, ReadCap, parse_cap

__all__ = ["Cap", "ChkCap", "ChkVerifierCap", "LiteralCap", "ReadCap", "parse_cap"]
