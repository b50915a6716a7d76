"""The introducer service: takes signed announcements and hands them to subscribers.

How this works: `publish_v2` verifies the signature (a bad one is refused, and logged
without its content) and keeps, per (service name, signing key), the announcement with the
highest seqnum; a newer one replaces it and goes to every subscriber of that service.
`subscribe_v2` records the subscriber until its connection drops and sends it every
current announcement of its service at once. This is Tahoe-LAFS 1.20's behaviour, so Tahoe
nodes use a mistgrid introducer and mistgrid nodes a Tahoe one.
"""

from __future__ import annotations

import time
from typing import Any

import attrs
from foolscap.api import Referenceable
from twisted.logger import Logger
from zope.interface import implementer

from .. import __version__
from .announcements import AnnouncementError, verify
from .interfaces import V2, RIIntroducerPublisherAndSubscriberService_v2

log = Logger()


@attrs.define
class Published:
    signed: tuple[bytes, bytes, bytes]
    ann: dict[str, Any]
    when: float


@implementer(RIIntroducerPublisherAndSubscriberService_v2)
class IntroducerService(Referenceable):  # type: ignore[misc]
    def __init__(self) -> None:
        self.announcements: dict[tuple[str, str], Published] = {}
        self.subscribers: dict[str, dict[Any, dict[str, Any]]] = {}

    def remote_get_version(self) -> dict[bytes, Any]:
        return {V2: {}, b"application-version": f"mistgrid/{__version__}".encode()}

    def remote_publish_v2(self, announcement: Any, canary: Any) -> None:
        try:
            ann, key = verify(announcement)
        except AnnouncementError as err:
            log.info("refused an announcement: {why}", why=str(err))
            return
        index = (ann["service-name"], key)
        old = self.announcements.get(index)
        if old is not None and ann["seqnum"] <= old.ann["seqnum"]:
            return  # a duplicate or a replay of an older one
        signed = (announcement[0], announcement[1], announcement[2])
        self.announcements[index] = Published(signed, ann, time.time())
        log.info("announcement for {service} from {key}", service=index[0], key=key[:12])
        for subscriber in list(self.subscribers.get(index[0], {})):
            self._send(subscriber, {signed})

    def remote_subscribe_v2(self, subscriber: Any, service_name: bytes,
                            subscriber_info: dict[bytes, Any]) -> None:
        service = service_name.decode("utf-8", "replace")
        subscribers = self.subscribers.setdefault(service, {})
        if subscriber in subscribers:
            return
        subscribers[subscriber] = {k.decode("utf-8", "replace") if isinstance(k, bytes)
                                   else str(k): v for k, v in subscriber_info.items()}
        subscribers[subscriber]["subscribed"] = time.time()  # (for the status page)
        subscriber.notifyOnDisconnect(lambda: subscribers.pop(subscriber, None))
        current = {p.signed for (name, _key), p in self.announcements.items()
                   if name == service}
        if current:
            self._send(subscriber, current)

    def _send(self, subscriber: Any, announcements: set[tuple[bytes, bytes, bytes]]) -> None:
        sent = subscriber.callRemote("announce_v2", announcements)
        sent.addErrback(lambda f: log.info("a subscriber failed to take announcements: "
                                           "{why}", why=f.getErrorMessage()))
