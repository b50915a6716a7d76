"""An introducer node's web page (its web.port): the announcements it holds and who
subscribes to them, as Tahoe-LAFS's introducer shows them.

How this works: `GET /` renders the introducer service's current state in words;
`GET /?t=json` has Tahoe's keys (`announcement_summary`, `subscription_summary`:
{service name: count}; `announcement_distinct_hosts`: {service name: how many hosts the
announced addresses name}) and, beside them, `announcements` and `subscribers`, one entry
each: nickname, service, version, signing key (announcements), and since when. No NURL,
FURL or address is shown: a NURL holds its server's swissnum, and which address a
subscriber came from is nobody's business on a grid that hides where its nodes are.
Anything else is 404; the page changes nothing.
"""

from __future__ import annotations

import html
import json
import time
from typing import Any

from twisted.web import resource, server

from ..gbs.nurl import NurlError, parse_nurl
from ..introducer.client import furl_hints
from ..introducer.server import IntroducerService


def _hosts(ann: dict[str, Any]) -> set[str]:
    """The hosts an announcement's NURLs name (or, without NURLs, its FURL's hints)."""
    hosts = set()
    for text in ann.get("anonymous-storage-NURLs") or []:
        try:
            hosts.add(parse_nurl(str(text)).host)
        except NurlError:
            continue
    if not hosts and ann.get("anonymous-storage-FURL"):
        for hint in furl_hints(str(ann["anonymous-storage-FURL"])).split(","):
            fields = hint.split(":")  # tcp:HOST:PORT, tor:NAME.onion:PORT, HOST:PORT
            hosts.add(fields[1] if fields[0] in ("tcp", "tor", "i2p") and len(fields) > 1
                      else fields[0])
    hosts.discard("")
    return hosts


def introducer_status(service: IntroducerService, now: float) -> dict[str, Any]:
    """The page's JSON: Tahoe's summary keys and one entry per announcement and
    subscriber (no address, NURL or FURL)."""
    announcements = []
    counts: dict[str, int] = {}
    hosts: dict[str, set[str]] = {}
    for (name, key), published in sorted(service.announcements.items()):
        ann = published.ann
        counts[name] = counts.get(name, 0) + 1
        hosts.setdefault(name, set()).update(_hosts(ann))
        announcements.append({
            "service-name": name, "nickname": str(ann.get("nickname", "")),
            "version": str(ann.get("my-version", "")), "key": key,
            "announced": published.when, "seconds-ago": round(now - published.when, 1)})
    subscribers = []
    for name, subs in sorted(service.subscribers.items()):
        for info in subs.values():
            since = float(info.get("subscribed", now))
            subscribers.append({
                "service-name": name, "nickname": _text(info.get("nickname")),
                "version": _text(info.get("my-version")), "subscribed": since,
                "seconds-ago": round(now - since, 1)})
    return {
        "announcement_summary": counts,
        "subscription_summary": {name: len(subs) for name, subs
                                 in sorted(service.subscribers.items()) if subs},
        "announcement_distinct_hosts": {name: len(h) for name, h in hosts.items()},
        "announcements": announcements,
        "subscribers": subscribers,
    }


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)


class IntroducerPage(resource.Resource):
    """The whole site of an introducer node's web.port."""

    isLeaf = True  # noqa: N815 (Twisted's name)

    def __init__(self, nickname: str, service: IntroducerService) -> None:
        super().__init__()
        self.nickname = nickname
        self.service = service

    def render(self, request: server.Request) -> bytes:
        request.setHeader(b"Cache-Control", b"no-store")
        if request.path.rstrip(b"/") != b"" or request.method not in (b"GET", b"HEAD"):
            request.setResponseCode(404 if request.method in (b"GET", b"HEAD") else 405)
            request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
            return b"an introducer's web port has only its status page, at /\n"
        status = introducer_status(self.service, time.time())
        if request.args.get(b"t") == [b"json"]:
            request.setHeader(b"Content-Type", b"application/json")
            return json.dumps(status, indent=1).encode()
        request.setHeader(b"Content-Type", b"text/html; charset=utf-8")
        return _html(self.nickname, status).encode()


def _html(nickname: str, status: dict[str, Any]) -> str:
    def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(str(r[c]))}</td>"
                                        for c in columns) + "</tr>" for r in rows)
        return f"<table><tr>{head}</tr>{body}</table>" if rows else "<p>none</p>"

    summary = ", ".join(f"{count} {name}" for name, count
                        in status["announcement_summary"].items()) or "none"
    return (f"<html><head><title>mistgrid introducer {html.escape(nickname)}</title></head>"
            f"<body><h1>mistgrid introducer {html.escape(nickname)}</h1>"
            f"<p>Announcements: {html.escape(summary)}.</p><h2>Announcements</h2>"
            + table(status["announcements"], ["service-name", "nickname", "version", "key",
                                              "seconds-ago"])
            + "<h2>Subscribers</h2>"
            + table(status["subscribers"], ["service-name", "nickname", "version",
                                            "seconds-ago"])
            + "</body></html>")
