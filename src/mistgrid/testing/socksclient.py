"""A synchronous SOCKS5 connect for the harness's self-tests, over `mistgrid.wire.socks5`."""

from __future__ import annotations

import socket

from ..wire.socks5 import Socks5Client, State
from .procs import HarnessError, is_loopback


def socks_connect(proxy_port: int, host: str, port: int, timeout: float = 60.0,
                  proxy_host: str = "127.0.0.1") -> tuple[socket.socket, bytes]:
    """A socket connected to host:port through the proxy, and any early bytes."""
    if not is_loopback(proxy_host):
        raise HarnessError("the harness only talks to proxies on loopback")
    sock = socket.create_connection((proxy_host, proxy_port), timeout=timeout)
    machine = Socks5Client(host, port)
    try:
        while machine.state is not State.CONNECTED:
            out = machine.data_to_send()
            if out:
                sock.sendall(out)
            data = sock.recv(4096)
            if not data:
                raise HarnessError("SOCKS proxy closed the connection")
            machine.receive_data(data)
    except BaseException:
        sock.close()
        raise
    return sock, machine.unused_data
