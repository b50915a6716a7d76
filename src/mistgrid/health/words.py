"""A check's JSON answer in Tahoe's CLI words (pure; the CLI imports only this, not the
results machinery behind it)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def describe(data: Mapping[str, Any]) -> list[str]:
    """The lines `check` prints for a `t=check` (or check-and-repair) JSON answer, in
    Tahoe's CLI words; corrupt shares with the reason where the node gave one."""
    repair = "repair-attempted" in data
    pre = data.get("pre-repair-results", data) if repair else data
    results = pre.get("results", {})
    if repair:
        lines = [f"Summary: {'healthy' if results.get('healthy') else 'not healthy'}"]
    else:
        lines = [f"Summary: {data.get('summary', 'Healthy (LIT)')}"]
    lines.append(f" storage index: {data.get('storage-index', '')}")
    if "count-shares-good" in results:
        lines.append(f" good-shares: {results['count-shares-good']} (encoding is "
                     f"{results['count-shares-needed']}-of-"
                     f"{results['count-shares-expected']})")
        lines.append(f" wrong-shares: {results.get('count-wrong-shares', 0)}")
    reasons = {(r[0], r[2]): r[3] for r in results.get("corrupt-share-reasons", [])}
    corrupt = results.get("list-corrupt-shares", [])
    if corrupt:
        lines.append(" corrupt shares:")
        for server, si, number in corrupt:
            why = reasons.get((server, number))
            lines.append(f"  server {server}, SI {si}, shnum {number}"
                         + (f": {why}" if why else ""))
    if repair and data.get("repair-attempted"):
        problem = data.get("repair-problem")
        lines.append(" repair successful" if data.get("repair-successful") else
                     " repair failed" + (f": {problem}" if problem else ""))
    elif repair and data.get("repair-problem"):
        lines.append(f" repair not attempted: {data['repair-problem']}")
    return lines
