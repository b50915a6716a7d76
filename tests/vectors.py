"""Loading Tahoe-LAFS's test vectors (read from ../shared, never copied into the project)."""

from __future__ import annotations

import base64
import functools
from typing import Any

import attrs
import pytest
import yaml

from .conftest import VECTORS, require_reference

SLOW_SIZE = 1024 * 1024


@attrs.frozen
class ChkVector:
    index: int
    convergence: bytes
    seed: bytes
    length: int
    needed: int
    total: int
    segment_size: int
    expected: str

    def plaintext(self) -> bytes:
        """The sample: the seed repeated and cut to `length`."""
        return (self.seed * (self.length // len(self.seed) + 1))[: self.length]

    @property
    def test_id(self) -> str:
        return f"{self.index}-k{self.needed}n{self.total}-{self.length}B"


@functools.cache
def _load() -> list[dict[str, Any]]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with VECTORS.open() as handle:
        data: dict[str, Any] = yaml.load(handle, Loader=loader)
    return list(data["vector"])


def chk_vectors() -> list[ChkVector]:
    """Every CHK vector, or [] when the reference file is absent."""
    if not VECTORS.exists():
        return []
    result = []
    for index, entry in enumerate(_load()):
        if entry["format"]["kind"] != "chk":
            continue
        result.append(ChkVector(
            index=index,
            convergence=base64.b64decode(entry["convergence"]),
            seed=base64.b64decode(entry["sample"]["seed"]),
            length=int(entry["sample"]["length"]),
            needed=int(entry["zfec"]["required"]),
            total=int(entry["zfec"]["total"]),
            segment_size=int(entry["zfec"]["segmentSize"]),
            expected=entry["expected"],
        ))
    return result


def chk_params() -> list[Any]:
    """pytest params for every CHK vector; large ones marked slow; a skip if absent."""
    vectors = chk_vectors()
    if not vectors:
        return [pytest.param(None, marks=pytest.mark.skip(
            reason=f"Tahoe-LAFS test vectors not found at {VECTORS} (set MISTGRID_SHARED)"))]
    return [pytest.param(v, id=v.test_id,
                         marks=[pytest.mark.slow] if v.length > SLOW_SIZE else [])
            for v in vectors]


def vectors_file() -> None:
    require_reference(VECTORS)


@attrs.frozen
class SskVector:
    index: int
    format: str  # "sdmf" or "mdmf"
    key_pem: str
    expected: str

    @property
    def test_id(self) -> str:
        return f"{self.index}-{self.format}"


def ssk_vectors() -> list[SskVector]:
    """Every SSK (SDMF and MDMF) vector, or [] when the reference file is absent."""
    if not VECTORS.exists():
        return []
    return [SskVector(index, entry["format"]["params"]["format"],
                      entry["format"]["params"]["key"], entry["expected"])
            for index, entry in enumerate(_load()) if entry["format"]["kind"] == "ssk"]


def ssk_params() -> list[Any]:
    """pytest params for every SSK vector; a skip if absent."""
    vectors = ssk_vectors()
    if not vectors:
        return [pytest.param(None, marks=pytest.mark.skip(
            reason=f"Tahoe-LAFS test vectors not found at {VECTORS} (set MISTGRID_SHARED)"))]
    return [pytest.param(v, id=v.test_id) for v in vectors]
