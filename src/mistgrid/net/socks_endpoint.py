"""A Twisted client endpoint through a SOCKS5 proxy, over the sans-IO `wire.socks5` client.

How this works: `connect` opens a connection to the proxy, runs the SOCKS5 handshake
(username/password when given: Tor isolates streams by those, so each storage server and
each introducer gets circuits of its own), then hands the same TCP connection to the
application's protocol: bytes that arrive after the proxy's reply go to it, and it writes
straight to the connection. The target name is always sent to the proxy to resolve; it is
never looked up here. The handshake is bounded by `timeout` seconds.

It decides nothing and opens nothing of its own accord: `net/connector.py` (the one place
that decides how anything is reached, DESIGN.md) builds it with the proxy endpoint to
connect through; this module only speaks SOCKS5 on that connection.
"""

from __future__ import annotations

from typing import Any, cast

from twisted.internet import defer
from twisted.internet.interfaces import IAddress, IStreamClientEndpoint
from twisted.internet.protocol import Factory, Protocol
from zope.interface import implementer

from ..wire.socks5 import Socks5Client, SocksError, State


class _Handshake(Protocol):
    def __init__(self, machine: Socks5Client, factory: Factory, target: tuple[str, int],
                 done: defer.Deferred[Protocol]) -> None:
        self._machine = machine
        self._factory = factory
        self._target = target
        self._done = done
        self._app: Any = None

    def connectionMade(self) -> None:  # noqa: N802 (Twisted names)
        self._flush()

    def _flush(self) -> None:
        out = self._machine.data_to_send()
        if out:
            transport: Any = self.transport
            transport.write(out)

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        if self._app is not None:
            self._app.dataReceived(data)
            return
        try:
            self._machine.receive_data(data)
        except SocksError as err:
            transport: Any = self.transport
            transport.loseConnection()
            if not self._done.called:
                self._done.errback(err)
            return
        self._flush()
        if self._machine.state is State.CONNECTED:
            app = self._factory.buildProtocol(cast(IAddress, _Address(*self._target)))
            if app is None:
                transport = self.transport
                transport.loseConnection()
                if not self._done.called:
                    self._done.errback(SocksError("the application refused the connection"))
                return
            self._app = app
            app.makeConnection(cast(Any, self.transport))
            if not self._done.called:
                self._done.callback(cast(Protocol, app))
            if self._machine.unused_data:
                app.dataReceived(self._machine.unused_data)

    def connectionLost(self, reason: Any = None) -> None:  # noqa: N802
        if self._app is not None:
            self._app.connectionLost(reason)
        elif not self._done.called:
            self._done.errback(SocksError("the proxy closed the connection during the "
                                          "SOCKS5 handshake"))


@implementer(IAddress)
class _Address:
    """The address an application's protocol is told it is connected to."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port

    def __repr__(self) -> str:
        return f"<SOCKS5 target {self.host}:{self.port}>"


@implementer(IStreamClientEndpoint)
class Socks5Endpoint:
    def __init__(self, proxy: IStreamClientEndpoint, host: str, port: int, reactor: Any,
                 username: bytes | None = None, password: bytes | None = None,
                 timeout: float = 120.0) -> None:
        self._proxy = proxy
        self._host, self._port = host, port
        self._reactor = reactor
        self._credentials = (username, password)
        self._timeout = timeout

    def connect(self, protocol_factory: Factory) -> defer.Deferred[Protocol]:
        done: defer.Deferred[Protocol] = defer.Deferred()
        username, password = self._credentials
        machine = Socks5Client(self._host, self._port, username, password)
        target = (self._host, self._port)
        made: list[_Handshake] = []

        def build() -> _Handshake:
            made.append(_Handshake(machine, protocol_factory, target, done))
            return made[-1]

        connecting: defer.Deferred[Any] = cast(Any, self._proxy).connect(
            Factory.forProtocol(build))

        def proxy_failed(failure: Any) -> None:
            if not done.called:
                done.errback(failure)

        connecting.addErrback(proxy_failed)

        def timed_out(result: Any, timeout: float) -> Any:
            if not connecting.called:
                connecting.cancel()
            for handshake in made:  # connected, but the proxy never finished
                transport: Any = handshake.transport
                if transport is not None:
                    transport.loseConnection()
            return result

        done.addTimeout(self._timeout, self._reactor, onTimeoutCancel=timed_out)
        return done
