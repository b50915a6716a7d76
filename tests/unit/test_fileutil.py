"""Files other programs read while a node runs (node.url, an onion's hostname) appear
whole or not at all."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from mistgrid.fileutil import write_text_atomically


def test_a_reader_never_sees_the_file_empty_or_half_written(tmp_path: Path) -> None:
    target = tmp_path / "node.url"
    texts = [f"http://127.0.0.1:{port}/\n" for port in range(40000, 40400)]
    write_text_atomically(target, texts[0])
    seen: set[str] = set()
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            seen.add(target.read_text())

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for text in texts:
            write_text_atomically(target, text)
    finally:
        done.set()
        reader.join()
    assert seen <= set(texts)
    assert target.read_text() == texts[-1]
    assert oct(os.stat(target).st_mode & 0o777) == oct(0o644)
    assert [p.name for p in tmp_path.iterdir()] == ["node.url"]
