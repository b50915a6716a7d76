"""A blank `[connections] tor.socks-proxy =` means Tor's usual SOCKS ports: the node asks
127.0.0.1:9050, then 9150 (Tor Browser), then 9151, takes the first that completes a
SOCKS5 greeting, and says which in its log and on its welcome page."""

from __future__ import annotations

import json
import socket
import threading
import urllib.request
from pathlib import Path

from mistgrid.testing.procs import free_ports, stop_all, wait_for

from ..conftest import run_cli
from .test_introducer import start


def _fake_socks5(listener: socket.socket, stop: threading.Event) -> None:
    """Answers every SOCKS5 greeting with 'no authentication', then hangs up."""
    listener.settimeout(0.2)
    while not stop.is_set():
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            continue
        with conn:
            conn.settimeout(5)
            if conn.recv(3)[:1] == b"\x05":
                conn.sendall(b"\x05\x00")


def test_blank_tor_socks_proxy_finds_tor_browsers_port(tmp_path: Path) -> None:
    with socket.socket() as probe:  # the system tor, if one runs, would come first
        assert probe.connect_ex(("127.0.0.1", 9050)) != 0, "something listens on 9050"
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 9150))
    listener.listen(8)
    stop = threading.Event()
    server = threading.Thread(target=_fake_socks5, args=(listener, stop))
    server.start()
    node = tmp_path / "client"
    (web,) = free_ports(1)
    processes = []
    try:
        made = run_cli("create-client", "--webport", f"tcp:{web}:interface=127.0.0.1",
                       str(node))
        assert made.returncode == 0, made.stderr.decode()
        with (node / "tahoe.cfg").open("a") as config:
            config.write("\n[connections]\ntor.socks-proxy =\n")
        processes.append(start(node))
        wait_for(lambda: True if (node / "node.url").exists() else None, 30, "the node",
                 watch=processes)
        log = (node / "run.log").read_text()
        assert "Tor SOCKS proxy: tcp:127.0.0.1:9150 (the first of" in log, log
        url = (node / "node.url").read_text().strip() + "?t=json"
        with urllib.request.urlopen(url, timeout=30) as response:
            network = json.load(response)["network"]
        assert network["tor_socks"].startswith("tcp:127.0.0.1:9150 ")
    finally:
        stop_all(processes)
        stop.set()
        server.join()
        listener.close()
