"""The project's error types.

Every error a user can cause is one of these, each carrying enough to print one clear line:
what was wrong and, where there is one, the fix.
"""

from __future__ import annotations


class MistgridError(Exception):
    """Base of every error mistgrid raises on purpose."""


class CapabilityError(MistgridError, ValueError):
    """A capability string is malformed. The message never repeats the secret parts."""


class EncodingError(MistgridError, ValueError):
    """Encoding parameters or input are unusable (k, N, segment size, file size)."""


class ShareError(MistgridError):
    """One share failed a check: which share, and which check."""

    def __init__(self, share_number: int, check: str, detail: str = "") -> None:
        self.share_number = share_number
        self.check = check
        self.detail = detail
        text = f"share {share_number}: {check} failed"
        if detail:
            text += f" ({detail})"
        super().__init__(text)


class NotEnoughSharesError(MistgridError):
    """Fewer than k good shares were found."""

    def __init__(self, found: int, needed: int, problems: list[ShareError]) -> None:
        self.found = found
        self.needed = needed
        self.problems = list(problems)
        text = f"not enough good shares: found {found}, need {needed}"
        if problems:
            text += "; " + "; ".join(str(p) for p in problems)
        super().__init__(text)


class ConfigError(MistgridError):
    """A configuration value is unusable: names the key, the value and the fix."""

    def __init__(self, key: str, value: str, problem: str, fix: str) -> None:
        self.key = key
        self.value = value
        self.problem = problem
        self.fix = fix
        super().__init__(f"{key} = {value!r}: {problem}; fix: {fix}")


class ProtocolError(MistgridError):
    """A request or response that breaks the storage protocol; `status` is the HTTP code."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(message)


class UncoordinatedWriteError(MistgridError):
    """Another writer changed a mutable file while this one was writing it."""


class NoSuchFileError(MistgridError):
    """No share of a mutable file was found on any server."""
