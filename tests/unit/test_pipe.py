"""The spooled pipe a repair re-encodes through while the file downloads: the reader gets
every byte in order, waits for bytes not yet written, and hears of the writer's failure."""

from __future__ import annotations

import os
import threading
import time

import pytest

from mistgrid.grid.pipe import PipeWriterError, SpooledPipe


def test_the_reader_gets_every_byte_in_order_while_the_writer_writes() -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    got: list[bytes] = []
    with SpooledPipe() as pipe:
        def read() -> None:
            while chunk := pipe.read(100_003):
                got.append(chunk)

        reader = threading.Thread(target=read)
        reader.start()
        for at in range(0, len(data), 65_536):
            pipe.write(memoryview(data)[at:at + 65_536])
        pipe.finish()
        reader.join(30)
    assert not reader.is_alive()
    assert b"".join(got) == data
    assert all(len(chunk) == 100_003 for chunk in got[:-1])  # whole reads until the end


def test_a_read_waits_for_bytes_not_yet_written() -> None:
    with SpooledPipe() as pipe:
        pipe.write(b"abc")
        got: list[bytes] = []
        reader = threading.Thread(target=lambda: got.append(pipe.read(6)))
        reader.start()
        time.sleep(0.2)
        assert got == []  # three bytes are not six
        pipe.write(b"def")
        reader.join(10)
        assert got == [b"abcdef"]
        pipe.finish()
        assert pipe.read(10) == b""


def test_the_writers_failure_reaches_a_waiting_reader() -> None:
    with SpooledPipe() as pipe:
        pipe.write(b"x" * 10)
        errors: list[BaseException] = []

        def read() -> None:
            try:
                pipe.read(100)
            except PipeWriterError as err:
                errors.append(err)

        reader = threading.Thread(target=read)
        reader.start()
        pipe.finish("the download failed: no shares")
        reader.join(10)
        assert [str(e) for e in errors] == ["the download failed: no shares"]
        with pytest.raises(PipeWriterError):
            pipe.read(1)
