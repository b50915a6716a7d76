"""GBS message bodies: CBOR (JSON too), each request checked against its schema.

How this works: `decode_body` turns bytes into Python values within a size limit (sets come
from CBOR tag 258; JSON has lists); each `parse_*` function checks one request's schema and
returns a typed value or raises `ProtocolError(400)`. `encode_body` writes a response in
the encoding the client accepts: CBOR (sets as tag 258) unless it asked for JSON (sets as
lists, bytes as base64).
"""

from __future__ import annotations

import base64
import json
from typing import Any

import attrs
import cbor2

from ..errors import ProtocolError

CBOR = "application/cbor"
JSON = "application/json"
MAX_MESSAGE_SIZE = 1024 * 1024  # structured bodies; share data is not a message
# A read-test-write carries share data: Tahoe-LAFS clients write a whole SDMF or MDMF
# share in one (a 100 MiB MDMF file at k=3 is a 34 MiB request).
MAX_READ_TEST_WRITE_SIZE = 64 * 1024 * 1024
MAX_SHARES = 256
MAX_VECTORS = 30
MAX_UINT = 2**63 - 1


def bad(message: str) -> ProtocolError:
    return ProtocolError(400, message)


def decode_body(content_type: str | None, body: bytes,
                limit: int = MAX_MESSAGE_SIZE) -> Any:
    """Parse a request body (CBOR unless declared JSON); 400/413/415 on trouble."""
    if len(body) > limit:
        raise ProtocolError(413, "message body too large")
    kind = (content_type or CBOR).split(";")[0].strip().lower()
    try:
        if kind == CBOR:
            return cbor2.loads(body)
        if kind == JSON:
            return json.loads(body)
    except (ValueError, cbor2.CBORDecodeError, RecursionError, UnicodeDecodeError,
            OverflowError, TypeError) as err:
        raise bad(f"malformed {kind} body") from err
    raise ProtocolError(415, f"unsupported Content-Type {kind[:40]!r}")


def wants_json(accept: str | None) -> bool:
    if not accept:
        return False
    kinds = [part.split(";")[0].strip().lower() for part in accept.split(",")]
    return JSON in kinds and CBOR not in kinds


def _jsonable(value: Any) -> Any:
    if isinstance(value, (set, frozenset)):
        return sorted(_jsonable(v) for v in value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, dict):
        return {(k.decode("latin-1") if isinstance(k, bytes) else str(k)): _jsonable(v)
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def encode_body(value: Any, as_json: bool = False) -> tuple[bytes, str]:
    """(body, content type) for a response."""
    if as_json:
        return json.dumps(_jsonable(value)).encode("utf-8"), JSON
    return cbor2.dumps(value), CBOR


def _uint(value: Any, what: str, limit: int = MAX_UINT) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= limit:
        raise bad(f"{what} must be an unsigned integer")
    return value


def _share_set(value: Any, what: str) -> frozenset[int]:
    if not isinstance(value, (set, frozenset, list)) or len(value) > MAX_SHARES:
        raise bad(f"{what} must be a set of at most {MAX_SHARES} share numbers")
    numbers = [_uint(v, "share number", MAX_SHARES - 1) for v in value]
    if len(set(numbers)) != len(numbers):
        raise bad(f"{what} repeats a share number")
    return frozenset(numbers)


def _exact_keys(value: Any, keys: set[str], what: str) -> dict[str, Any]:
    if not isinstance(value, dict) or set(value) != keys:
        raise bad(f"{what} must be a map with exactly the keys {sorted(keys)}")
    return value


@attrs.frozen
class Allocate:
    share_numbers: frozenset[int]
    allocated_size: int


def parse_allocate(value: Any) -> Allocate:
    body = _exact_keys(value, {"share-numbers", "allocated-size"}, "allocate request")
    return Allocate(_share_set(body["share-numbers"], "share-numbers"),
                    _uint(body["allocated-size"], "allocated-size"))


def parse_corrupt(value: Any) -> str:
    body = _exact_keys(value, {"reason"}, "corruption advisory")
    reason = body["reason"]
    if not isinstance(reason, str) or not 1 <= len(reason) <= 32765:
        raise bad("reason must be text of 1 to 32765 characters")
    return reason


@attrs.frozen
class TestVector:
    offset: int
    size: int
    specimen: bytes


@attrs.frozen
class WriteVector:
    offset: int
    data: bytes


@attrs.frozen
class ShareWrites:
    tests: tuple[TestVector, ...]
    writes: tuple[WriteVector, ...]
    new_length: int | None


@attrs.frozen
class ReadTestWrite:
    shares: dict[int, ShareWrites]
    reads: tuple[tuple[int, int], ...]


def _bytes(value: Any, what: str) -> bytes:
    if isinstance(value, str):  # JSON carries bytes as base64
        try:
            return base64.b64decode(value, validate=True)
        except ValueError as err:
            raise bad(f"{what} is not base64") from err
    if not isinstance(value, bytes):
        raise bad(f"{what} must be bytes")
    return value


def _list(value: Any, what: str, limit: int | None = None) -> list[Any]:
    if not isinstance(value, list) or (limit is not None and len(value) > limit):
        raise bad(f"{what} must be a list" + (f" of at most {limit}" if limit else ""))
    return value


def parse_read_test_write(value: Any) -> ReadTestWrite:
    body = _exact_keys(value, {"test-write-vectors", "read-vector"}, "read-test-write")
    vectors = body["test-write-vectors"]
    if not isinstance(vectors, dict) or len(vectors) > MAX_SHARES:
        raise bad("test-write-vectors must be a map of at most 256 shares")
    shares: dict[int, ShareWrites] = {}
    for key, item in vectors.items():
        digits = isinstance(key, str) and key.isascii() and key.isdigit()
        number = _uint(int(key) if digits else key, "share number", MAX_SHARES - 1)
        entry = _exact_keys(item, {"test", "write", "new-length"}, "test-write vector")
        tests = tuple(
            TestVector(_uint(t["offset"], "offset"), _uint(t["size"], "size"),
                       _bytes(t["specimen"], "specimen"))
            for t in (_exact_keys(x, {"offset", "size", "specimen"}, "test vector")
                      for x in _list(entry["test"], "test", MAX_VECTORS)))
        writes = tuple(
            WriteVector(_uint(w["offset"], "offset"), _bytes(w["data"], "data"))
            for w in (_exact_keys(x, {"offset", "data"}, "write vector")
                      for x in _list(entry["write"], "write")))
        new_length = entry["new-length"]
        shares[number] = ShareWrites(tests, writes, None if new_length is None
                                     else _uint(new_length, "new-length"))
    reads = tuple(
        (_uint(r["offset"], "offset"), _uint(r["size"], "size"))
        for r in (_exact_keys(x, {"offset", "size"}, "read vector")
                  for x in _list(body["read-vector"], "read-vector", MAX_VECTORS)))
    return ReadTestWrite(shares, reads)
