"""Parsers for tahoe.cfg value types: each returns a value or raises InvalidValueError."""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable, Mapping
from types import MappingProxyType

from ..encoding.params import MAX_SHARES


class InvalidValueError(ValueError):
    def __init__(self, problem: str, fix: str) -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(problem)


TRUE = {"true", "yes", "on", "1"}
FALSE = {"false", "no", "off", "0"}


def boolean(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in TRUE:
        return True
    if lowered in FALSE:
        return False
    raise InvalidValueError("not a boolean", "write true or false")


def text(value: str) -> str:
    return value


def positive_int(value: str) -> int:
    if not re.fullmatch(r"[0-9]+", value.strip()) or int(value) < 1:
        raise InvalidValueError("not a whole number of at least 1", "write a number such as 60")
    return int(value)


def whole_number(value: str) -> int:
    if not re.fullmatch(r"[0-9]{1,9}", value.strip()):
        raise InvalidValueError("not a whole number (0 or more)", "write a number such as 2")
    return int(value)


def share_count(value: str) -> int:
    if not re.fullmatch(r"[0-9]+", value.strip()) or not 1 <= int(value) <= MAX_SHARES:
        raise InvalidValueError(f"not a share count from 1 to {MAX_SHARES}",
                                "write e.g. 3, 7 or 10")
    return int(value)


_SIZE = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*([kmgtpe]?)(i?)b?", re.IGNORECASE)
_SCALE = "kmgtpe"


def size(value: str) -> int:
    """"100MB", "100 M", "1MiB", "1048576 B" ... -> bytes (configuration.rst)."""
    match = _SIZE.fullmatch(value.strip())
    if match is None:
        raise InvalidValueError("not a size",
                                "write a number with an optional unit, e.g. 1G or 500MiB")
    number, scale, binary = match.groups()
    base = 1024 if binary else 1000
    power = _SCALE.index(scale.lower()) + 1 if scale else 0
    return int(float(number) * base**power)


def furl(value: str) -> str | None:
    stripped = value.strip()
    if stripped in ("", "None"):
        return None
    if not re.fullmatch(r"pb://[^@/\s]+@[^/\s]*/[^\s]+", stripped):
        raise InvalidValueError("not a FURL", "copy the whole pb://... string, or leave it empty")
    return stripped


def _one_of(what: str, *choices: str) -> Callable[[str], str]:
    """A parser accepting exactly `choices` (case-insensitive)."""
    fix = "write " + (", ".join(choices[:-1]) + " or " + choices[-1] if len(choices) > 1
                      else choices[0])

    def parse(value: str) -> str:
        lowered = value.strip().lower()
        if lowered not in choices:
            raise InvalidValueError(f"not {what}", fix)
        return lowered

    return parse


DAY = 24 * 60 * 60
_DURATION_UNITS = {"day": DAY, "mo": 31 * DAY, "month": 31 * DAY, "year": 365 * DAY,
                   # mistgrid's additions (Tahoe's smallest unit is a day)
                   "second": 1, "sec": 1, "minute": 60, "min": 60, "hour": 3600}
_DURATION = re.compile(r"([0-9]{1,9})\s*(day|month|mo|year|second|sec|minute|min|hour)s?",
                       re.IGNORECASE)


def duration(value: str) -> int:
    """A duration as Tahoe writes one ("7days", "60 days", "2mo", "3 month", "2years"),
    or in seconds, minutes or hours -> seconds."""
    match = _DURATION.fullmatch(value.strip())
    if match is None:
        raise InvalidValueError("not a duration",
                                "write a number and a unit, e.g. 31days, 2months or 1year")
    return int(match.group(1)) * _DURATION_UNITS[match.group(2).lower()]


def date(value: str) -> int:
    """"2009-01-16" -> the UTC midnight that starts that day, in seconds since the epoch."""
    try:
        parsed = datetime.datetime.strptime(value.strip(), "%Y-%m-%d")
    except ValueError:
        raise InvalidValueError("not a date", "write it as YYYY-MM-DD, e.g. 2026-01-16") \
            from None
    return int(parsed.replace(tzinfo=datetime.UTC).timestamp())


mutable_format = _one_of("a mutable file format", "sdmf", "mdmf")
expire_mode = _one_of("an expiration mode", "age", "cutoff-date")
_tcp_handler = _one_of("a TCP hint handler", "tcp", "tor", "disabled")


def tcp_handler(value: str) -> str:
    if value.strip().lower() == "i2p":
        raise InvalidValueError("I2P cannot reach TCP addresses", "write tcp, tor or disabled")
    return _tcp_handler(value)


def endpoint(value: str) -> str:
    """A Twisted endpoint description: kind:args (checked further where it is used)."""
    stripped = value.strip()
    if stripped and not re.fullmatch(r"[a-zA-Z0-9]+(:.*)?", stripped):
        raise InvalidValueError("not an endpoint description", "write e.g. tcp:127.0.0.1:9050")
    return stripped


def port_list(value: str) -> str:
    """tub.port: comma-separated server endpoint descriptions, or "disabled"."""
    stripped = value.strip()
    if stripped == "":
        raise InvalidValueError("tub.port is present but empty",
                      "give an endpoint such as tcp:3457, or write disabled")
    if stripped == "disabled":
        return stripped
    for item in stripped.split(","):
        item = item.strip()
        if item in ("0", "tcp:0") or re.fullmatch(r"tcp:0(:.*)?", item):
            raise InvalidValueError("port 0 is not allowed", "choose a port, e.g. tcp:3457")
        if not re.fullmatch(r"[0-9]+|[a-zA-Z0-9]+:.+", item):
            raise InvalidValueError(f"{item!r} is not an endpoint description",
                          "write e.g. tcp:3457:interface=127.0.0.1")
    return stripped


def key_values(value: str) -> Mapping[str, str]:
    """`key=value,key=value` (I2CP session options), read-only."""
    found: dict[str, str] = {}
    for item in value.split(","):
        if not item.strip():
            continue
        key, sep, val = item.strip().partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z0-9._-]+", key) or not val.strip() or \
                re.search(r"\s", val.strip()):
            raise InvalidValueError(f"{item.strip()!r} is not key=value",
                                    "write e.g. inbound.length=2,outbound.length=2")
        found[key] = val.strip()
    return MappingProxyType(found)
