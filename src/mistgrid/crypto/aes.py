"""Streaming AES-128-CTR with Tahoe-LAFS's counter convention.

How this works: the counter block starts at zero (a 16-byte big-endian integer) and advances
once per 16 bytes across the whole file, so encrypting segment after segment with one
`Cipher` object equals encrypting the whole file at once. `at_offset` starts the stream at any
byte, which a ranged download needs.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes

BLOCK = 16


class CtrStream:
    """A keystream position: `process` encrypts or decrypts (the same thing in CTR)."""

    __slots__ = ("_ctx",)

    def __init__(self, key: bytes, offset: int = 0) -> None:
        counter, skip = divmod(offset, BLOCK)
        nonce = counter.to_bytes(BLOCK, "big")
        self._ctx: CipherContext = Cipher(algorithms.AES(key), modes.CTR(nonce)).encryptor()
        if skip:
            self._ctx.update(b"\x00" * skip)

    def process(self, data: bytes | memoryview) -> bytes:
        """XOR `data` with the next len(data) keystream bytes."""
        return self._ctx.update(data)
