"""The announcement cache: the storage servers a client last heard of from an introducer.

How this works: a client keeps, for each introducer, the storage announcements it has
verified, in `private/introducer_PETNAME_cache.yaml` (the petname of
`private/introducers.yaml`; "default" for `[client] introducer.furl`), the file and format
Tahoe-LAFS 1.20 uses: a YAML list of `{ann: ANNOUNCEMENT, key_s: "v0-..."}`, one per
server, so a Tahoe node directory's cache is read as it is and Tahoe reads ours. At start
the client knows every cached server before its introducer answers: a client restarted
while the introducer is away (down, or not reachable over Tor) still reaches the servers
it knew. What the introducer sends later replaces what was cached, as it would replace
an earlier announcement.

This module reads and writes the text; `node/introduction.py` keeps the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def cache_path(private: Path, petname: str) -> Path:
    return private / f"introducer_{petname}_cache.yaml"


def parse_cache(text: str) -> tuple[dict[str, dict[str, Any]], int]:
    """{key_s: announcement} of a cache file's text, and how many entries were not
    usable (not a mapping with a "v0-" key_s and an announcement mapping). Raises
    ValueError if the text is not a YAML list at all."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ValueError(f"not valid YAML ({err.__class__.__name__})") from err
    if data is None:
        return {}, 0
    if not isinstance(data, list):
        raise ValueError("not a list of announcements")
    found: dict[str, dict[str, Any]] = {}
    skipped = 0
    for entry in data:
        key = entry.get("key_s") if isinstance(entry, dict) else None
        ann = entry.get("ann") if isinstance(entry, dict) else None
        if isinstance(key, str) and key.startswith("v0-") and isinstance(ann, dict):
            found[key] = ann
        else:
            skipped += 1
    return found, skipped


def cache_text(announcements: dict[str, dict[str, Any]]) -> str:
    """A cache file's text for {key_s: announcement} (in key order)."""
    entries = [{"ann": ann, "key_s": key} for key, ann in sorted(announcements.items())]
    return yaml.safe_dump(entries, default_flow_style=False)
