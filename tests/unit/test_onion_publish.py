"""Bringing up an onion service through Tor's control port (node/onion.py `_add_onion`),
against a scripted control protocol and a fake clock: a service Tor has not published
is removed and added again with the same key; none published within ONION_TIMEOUT is one
ListenError that never shows the key."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from twisted.internet import defer
from twisted.internet.task import Clock

from mistgrid.node.listening import ListenError
from mistgrid.node.onion import ONION_TIMEOUT, REPUBLISH_AFTER, _add_onion, _Service

SERVICE = "a" * 56
NEW_KEY = "ED25519-V3:" + "K" * 86 + "=="


class ScriptedTor:
    """What `_add_onion` uses of a txtorcon Tor: `protocol.add_event_listener`,
    `remove_event_listener` and `queue_command`, answered at once."""

    def __init__(self, early_upload: bool = False) -> None:
        self.protocol = self
        self.commands: list[str] = []
        self.listeners: dict[str, Callable[[str], None]] = {}
        self.early_upload = early_upload

    def add_event_listener(self, name: str, callback: Callable[[str], None]
                           ) -> defer.Deferred[None]:
        self.listeners[name] = callback
        return defer.succeed(None)

    def remove_event_listener(self, name: str, callback: Callable[[str], None]
                              ) -> defer.Deferred[None]:
        assert self.listeners.pop(name) is callback
        return defer.succeed(None)

    def queue_command(self, command: str) -> defer.Deferred[str]:
        self.commands.append(command)
        if command.startswith("DEL_ONION"):
            return defer.succeed("OK")
        if self.early_upload:  # Tor's event may come before the command's reply
            self.upload()
        made = "\nPrivateKey=" + NEW_KEY if "NEW:" in command else ""
        return defer.succeed(f"ServiceID={SERVICE}{made}")

    def upload(self) -> None:
        self.listeners["HS_DESC"](f"UPLOADED {SERVICE} UNKNOWN $ABCD~relay")

    def adds(self) -> list[str]:
        return [c for c in self.commands if c.startswith("ADD_ONION")]


def start(tor: ScriptedTor, key: str | None, clock: Clock,
          client_auth: tuple[str, ...] = ()) -> defer.Deferred[_Service]:
    return defer.ensureDeferred(_add_onion(tor, [(80, "127.0.0.1:1234")], key, "a test",
                                           client_auth, clock=clock))


def result(adding: defer.Deferred[Any]) -> Any:
    done: list[Any] = []
    adding.addBoth(done.append)
    assert done, "still waiting"
    if isinstance(done[0], Exception):
        raise done[0]
    if hasattr(done[0], "raiseException"):
        done[0].raiseException()
    return done[0]


def test_published_at_once() -> None:
    tor, clock = ScriptedTor(), Clock()
    adding = start(tor, None, clock)
    tor.upload()
    service = result(adding)
    assert service == _Service(f"{SERVICE}.onion", NEW_KEY)
    assert tor.commands == ["ADD_ONION NEW:ED25519-V3 Port=80,127.0.0.1:1234"]
    assert tor.listeners == {}


def test_an_upload_reported_before_the_reply_counts() -> None:
    tor, clock = ScriptedTor(early_upload=True), Clock()
    assert result(start(tor, "ED25519-V3:given", clock)).private_key is None


def test_an_unpublished_service_is_added_again_with_the_key_tor_made() -> None:
    tor, clock = ScriptedTor(), Clock()
    adding = start(tor, None, clock, client_auth=("PUBLICKEY",))
    clock.advance(REPUBLISH_AFTER[0] - 1)
    assert len(tor.adds()) == 1
    clock.advance(1)
    assert tor.commands[1:] == [
        f"DEL_ONION {SERVICE}",
        f"ADD_ONION {NEW_KEY} Flags=V3Auth Port=80,127.0.0.1:1234 ClientAuthV3=PUBLICKEY"]
    tor.upload()
    # the caller saves the key Tor made the first time
    assert result(adding) == _Service(f"{SERVICE}.onion", NEW_KEY)


def test_never_published_is_one_error_within_the_timeout() -> None:
    tor, clock = ScriptedTor(), Clock()
    adding = start(tor, "ED25519-V3:secret", clock)
    clock.pump([1.0] * int(ONION_TIMEOUT - 1))
    assert not adding.called
    clock.advance(1)
    with pytest.raises(ListenError, match="within 300 s") as raised:
        result(adding)
    assert "secret" not in str(raised.value)
    assert len(tor.adds()) == len(REPUBLISH_AFTER) + 1
    assert all(add.startswith("ADD_ONION ED25519-V3:secret ") for add in tor.adds())
    assert tor.commands[-1] == f"DEL_ONION {SERVICE}" and tor.listeners == {}


def test_a_refusal_never_shows_the_key() -> None:
    tor, clock = ScriptedTor(), Clock()
    tor.queue_command = lambda command: defer.fail(  # type: ignore[method-assign]
        RuntimeError(f"552 bad key in {command}"))
    with pytest.raises(ListenError, match="refused") as raised:
        result(start(tor, "ED25519-V3:secret", clock))
    assert "secret" not in str(raised.value) and "(the key)" in str(raised.value)
