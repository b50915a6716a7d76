"""A node's side of an introducer: publish our storage announcement, hear everyone's.

How this works: Foolscap's `connectTo` keeps one connection to the introducer (it
reconnects with back-off). On each connection we check the introducer speaks v2, publish
our signed announcement (if we are a storage server) and subscribe to `storage` (if we are
a client); the introducer then calls `announce_v2` with every storage announcement, now
and whenever one changes. Each verified announcement goes to `on_announcement(key, ann)`.
The FURL holds the introducer's swissnum: it is never logged or shown, only its hints.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import attrs
from foolscap.api import Referenceable
from twisted.logger import Logger
from zope.interface import implementer

from .announcements import VERSION_STRING, AnnouncementError, SignedAnnouncement, verify
from .interfaces import V2, RIIntroducerSubscriberClient_v2

log = Logger()
AnnouncementCallback = Callable[[str, dict[str, Any]], None]


@attrs.frozen
class IntroducerStatus:
    name: str
    hints: str
    connected: bool
    since: float | None
    last_error: str


def furl_hints(furl: str) -> str:
    """The connection hints of a FURL (what may be shown: no tub ID, no swissnum)."""
    return furl.partition("@")[2].partition("/")[0]


@implementer(RIIntroducerSubscriberClient_v2)
class IntroducerClient(Referenceable):  # type: ignore[misc]
    def __init__(self, name: str, tub: Any, furl: str, nickname: str,
                 on_announcement: AnnouncementCallback | None = None) -> None:
        self.name = name
        self._tub = tub
        self._furl = furl
        self._nickname = nickname
        self._on_announcement = on_announcement
        self._published: SignedAnnouncement | None = None
        self._introducer: Any = None
        self._since: float | None = None
        self._last_error = ""
        self._canary = Referenceable()
        self._reconnector: Any = None
        self.received = 0

    def start(self) -> None:
        self._reconnector = self._tub.connectTo(self._furl, self._connected)
        # Foolscap's defaults retry after 2.7 s, then e times longer each time, up to an
        # hour: a node started a moment before its introducer would idle for seconds, one
        # that lost its introducer for a while could idle for an hour. Retry from 0.2 s,
        # doubling, at most every 60 s. (Set before the first attempt can fail.)
        self._reconnector.initialDelay = 0.1
        self._reconnector._delay = 0.1  # the first retry is _delay * factor
        self._reconnector.factor = 2.0
        self._reconnector.maxDelay = 60.0

    def publish(self, signed: SignedAnnouncement) -> None:
        """Announce `signed` now (if connected) and after every reconnection."""
        self._published = signed
        if self._introducer is not None:
            self._send_publish(self._introducer)

    def status(self) -> IntroducerStatus:
        error = self._last_error
        if self._introducer is None and self._reconnector is not None and not error:
            info = self._reconnector.getReconnectionInfo()
            statuses = info.connectionInfo.connectorStatuses if info.connectionInfo else {}
            error = "; ".join(f"{furl_hints('x@' + hint + '/')}: {text}"
                              for hint, text in statuses.items()) or info.state
        return IntroducerStatus(self.name, furl_hints(self._furl),
                                self._introducer is not None, self._since, error)

    def _connected(self, introducer: Any) -> None:
        self._last_error = ""
        checked = introducer.callRemote("get_version")
        checked.addCallback(self._check_version, introducer)
        checked.addErrback(self._failed, introducer)

    def _check_version(self, version: Any, introducer: Any) -> None:
        if not isinstance(version, dict) or V2 not in version:
            raise AnnouncementError("the introducer does not speak protocol v2")
        self._introducer = introducer
        self._since = time.time()
        introducer.notifyOnDisconnect(self._disconnected, introducer)
        log.info("connected to introducer {name}", name=self.name)
        if self._published is not None:
            self._send_publish(introducer)
        if self._on_announcement is not None:
            info = {b"version": 0, b"nickname": self._nickname, b"app-versions": [],
                    b"my-version": VERSION_STRING, b"oldest-supported": VERSION_STRING}
            subscribed = introducer.callRemote("subscribe_v2", self, b"storage", info)
            subscribed.addErrback(self._failed, introducer)

    def _send_publish(self, introducer: Any) -> None:
        sent = introducer.callRemote("publish_v2", self._published, self._canary)
        sent.addErrback(self._failed, introducer)

    def _failed(self, failure: Any, introducer: Any) -> None:
        self._last_error = failure.getErrorMessage()
        log.info("introducer {name}: {why}", name=self.name, why=self._last_error)

    def _disconnected(self, introducer: Any) -> None:
        if introducer is self._introducer:
            self._introducer = None
            self._since = time.time()
            self._last_error = "connection lost"

    def remote_announce_v2(self, announcements: Any) -> None:
        for signed in announcements:
            try:
                ann, key = verify(signed)
            except AnnouncementError as err:
                log.info("ignored an announcement: {why}", why=str(err))
                continue
            self.received += 1
            if self._on_announcement is not None:
                self._on_announcement(key, ann)
