"""The running totals of a deep-check (with or without repair), in Tahoe's JSON shape (pure).

Each object the walk reaches is added with its path and its check (or check-and-repair)
results; `to_json()` gives what Tahoe's `t=start-deep-check` operation page gives, and
`lines()` what `deep-check` prints at the end.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:  # (only for annotations: the CLI's deep-check needs none of it)
    from .results import CheckResults, RepairResults


@attrs.define
class DeepCheck:
    repair: bool
    root_si: str | None = None
    checked: int = 0
    healthy: int = 0  # before repair
    unhealthy: int = 0
    healthy_after: int = 0
    unhealthy_after: int = 0
    repairs_attempted: int = 0
    repairs_successful: int = 0
    corrupt: list[list[Any]] = attrs.field(factory=list)
    corrupt_after: list[list[Any]] = attrs.field(factory=list)
    unhealthy_files: list[list[Any]] = attrs.field(factory=list)

    def add(self, path: list[str], results: CheckResults | RepairResults) -> None:
        self.add_json(path, results.to_json())

    def add_json(self, path: list[str], data: dict[str, Any]) -> None:
        """One object's `t=check` (or check-and-repair) JSON, as the node sends it."""
        self.checked += 1
        repaired = "repair-attempted" in data
        pre = data.get("pre-repair-results", data) if repaired else data
        post = data.get("post-repair-results", pre) if repaired else data
        pre_results, post_results = pre.get("results", {}), post.get("results", {})
        if pre_results.get("healthy", True):
            self.healthy += 1
        else:
            self.unhealthy += 1
            self.unhealthy_files.append([list(path), data])
        if post_results.get("healthy", True):
            self.healthy_after += 1
        else:
            self.unhealthy_after += 1
        self.corrupt.extend(list(c) for c in pre_results.get("list-corrupt-shares", []))
        self.corrupt_after.extend(list(c) for c in post_results.get("list-corrupt-shares",
                                                                    []))
        if data.get("repair-attempted"):
            self.repairs_attempted += 1
            self.repairs_successful += int(bool(data.get("repair-successful")))

    def to_json(self) -> dict[str, Any]:
        result: dict[str, Any] = {"root-storage-index": self.root_si or "",
                                  "count-objects-checked": self.checked}
        if not self.repair:
            result.update({
                "count-objects-healthy": self.healthy,
                "count-objects-unhealthy": self.unhealthy,
                "count-corrupt-shares": len(self.corrupt),
                "list-corrupt-shares": self.corrupt,
                "list-unhealthy-files": self.unhealthy_files,
            })
            return result
        result.update({
            "count-objects-healthy-pre-repair": self.healthy,
            "count-objects-unhealthy-pre-repair": self.unhealthy,
            "count-objects-healthy-post-repair": self.healthy_after,
            "count-objects-unhealthy-post-repair": self.unhealthy_after,
            "count-repairs-attempted": self.repairs_attempted,
            "count-repairs-successful": self.repairs_successful,
            "count-repairs-unsuccessful": self.repairs_attempted - self.repairs_successful,
            "count-corrupt-shares-pre-repair": len(self.corrupt),
            "count-corrupt-shares-post-repair": len(self.corrupt_after),
            "list-corrupt-shares": self.corrupt,
            # immutable shares cannot be changed by a client: their corruption remains
            "list-remaining-corrupt-shares": self.corrupt_after,
            "list-unhealthy-files": self.unhealthy_files,
        })
        return result

    def lines(self) -> list[str]:
        """The closing lines of `deep-check`, in Tahoe's words."""
        if not self.repair:
            return [f"done: {self.checked} objects checked, {self.healthy} healthy, "
                    f"{self.unhealthy} unhealthy"]
        failed = self.repairs_attempted - self.repairs_successful
        return [f"done: {self.checked} objects checked",
                f" pre-repair: {self.healthy} healthy, {self.unhealthy} unhealthy",
                f" {self.repairs_attempted} repairs attempted, {self.repairs_successful} "
                f"successful, {failed} failed",
                f" post-repair: {self.healthy_after} healthy, {self.unhealthy_after} "
                "unhealthy"]
