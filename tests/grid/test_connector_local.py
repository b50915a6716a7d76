"""Local daemons (Tor's SOCKS port, its control port, the SAM API) are reached without a
name lookup: a unix socket (Tor's own default on Debian), or an IP address; `localhost`
is 127.0.0.1 and never goes to the system resolver."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest
import pytest_twisted
from twisted.internet import defer, protocol, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, UNIXClientEndpoint

from mistgrid.net.connector import Connector, PolicyRefusedError, local_endpoint
from mistgrid.policy.anonymity import Policy, route


def test_local_endpoints_never_look_up_a_name() -> None:
    unix = local_endpoint(reactor, "unix:/run/tor/socks")
    assert isinstance(unix, UNIXClientEndpoint)
    local = local_endpoint(reactor, "tcp:localhost:9050")
    assert isinstance(local, TCP4ClientEndpoint) and local._host == "127.0.0.1"
    with pytest.raises(PolicyRefusedError, match="no name is ever looked up"):
        local_endpoint(reactor, "tcp:tor.example.org:9050")


class _Greeting(protocol.Protocol):
    def dataReceived(self, data: bytes) -> None:  # noqa: N802 (Twisted name)
        factory: Any = self.factory
        transport: Any = self.transport
        factory.received.callback(data)
        transport.loseConnection()


@pytest_twisted.ensureDeferred
async def test_tor_socks_proxy_on_a_unix_socket(tmp_path: Path) -> None:
    """[connections] tor.socks-proxy = unix:PATH: an anonymous node's connection to an
    onion goes to that socket and starts with a SOCKS5 greeting (it used to be refused:
    'write tcp:HOST:PORT')."""
    path = tmp_path / "socks"
    factory: Any = protocol.Factory.forProtocol(_Greeting)
    factory.received = defer.Deferred()
    port = cast(Any, reactor).listenUNIX(str(path), factory)
    try:
        policy = Policy(anonymous=True, tor_socks=f"unix:{path}")
        connector = Connector(reactor, lambda h, p: route(policy, h, p), timeout=5)
        endpoint: Any = connector.endpoint("a" * 56 + ".onion", 3457)
        attempt = endpoint.connect(protocol.Factory.forProtocol(protocol.Protocol))
        attempt.addErrback(lambda _f: None)  # the stub proxy hangs up after the greeting
        greeting = await factory.received
        assert greeting[:1] == b"\x05"
    finally:
        await port.stopListening()
