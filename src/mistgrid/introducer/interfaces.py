# ruff: noqa: N805, B008 (Foolscap schema syntax: no self; constraints as defaults)
"""The introducer's Foolscap remote interfaces, under the names Tahoe-LAFS 1.20 uses.

Foolscap matches interfaces by their remote names, so these must be exactly Tahoe's for
either side to accept the other: the introducer service (get_version, publish_v2,
subscribe_v2) and the subscriber it calls back (announce_v2). Announcements travel as
signed triples (`announcements.py`), so their constraint is Any.
"""

# mypy: disable-error-code="misc, no-untyped-def, valid-type"
# (Foolscap reads method signatures and return statements as schemas; they are not Python
# type annotations.)

from __future__ import annotations

from foolscap.api import Any, DictOf, Referenceable, RemoteInterface, SetOf

V2 = b"http://allmydata.org/tahoe/protocols/introducer/v2"
Announcement = Any()


class RIIntroducerSubscriberClient_v2(RemoteInterface):  # noqa: N801 (wire name)
    __remote_name__ = "RIIntroducerSubscriberClient_v2.tahoe.allmydata.com"

    def announce_v2(announcements=SetOf(Announcement)):
        return None


class RIIntroducerPublisherAndSubscriberService_v2(RemoteInterface):  # noqa: N801
    __remote_name__ = "RIIntroducerPublisherAndSubscriberService_v2.tahoe.allmydata.com"

    def get_version():
        return DictOf(bytes, Any())

    def publish_v2(announcement=Announcement, canary=Referenceable):
        return None

    def subscribe_v2(subscriber=RIIntroducerSubscriberClient_v2,
                     service_name=bytes, subscriber_info=DictOf(bytes, Any())):
        return None
