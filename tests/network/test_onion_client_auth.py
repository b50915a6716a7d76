"""v3 onion client authorization on the private Tor network (real tor, real nodes):
a storage node whose onion service admits only the clients in `[tor] onion.client_auth`;
a client holding an admitted key (`[tor] client_auth.private_key_file`, made by `mistgrid
admin onion-client-key`) stores and reads; a client without one cannot even reach the
service, and its welcome page says why in Tor's own words. A Tahoe-LAFS 1.20 client (which
cannot hold a key itself) is told why on its welcome page, from the server's announcement;
once its Tor holds the key, it stores and reads too."""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path

import pytest

from mistgrid.crypto.onion_auth import parse_private
from mistgrid.gbs.nurl import parse_nurl
from mistgrid.storage.announcement import CLIENT_AUTH_NOTE, servers_yaml
from mistgrid.testing.procs import Managed, stop_all, wait_for
from mistgrid.testing.tornet import TorNetwork

from ..conftest import run_cli
from .test_node_tor import (
    all_connected,
    start_anonymous_client,
    start_onion_storage_node,
    store_and_read,
    welcome,
)
from .test_tor_launch import tor_section

pytestmark = pytest.mark.slow


def test_only_authorized_clients_reach_the_service(tor_network: TorNetwork,
                                                   tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    made = run_cli("admin", "onion-client-key", "alice", "--directory", str(keys))
    assert made.returncode == 0, made.stderr.decode()
    assert oct((keys / "alice.auth_private").stat().st_mode)[-3:] == "600"
    authorized = tmp_path / "authorized_clients"
    authorized.mkdir()
    (authorized / "alice.auth").write_text((keys / "alice.auth").read_text())

    processes: list[Managed] = []
    try:
        entry = start_onion_storage_node(tmp_path, tor_network, processes,
                                         f"onion.client_auth = {authorized}\n")
        urls = {}
        for name, key in (("alice", keys / "alice.auth_private"), ("mallory", None)):
            helpers = tmp_path / f"{name}-tor"  # the pinned-tor wrapper and its torrc lines
            helpers.mkdir()
            section = tor_section(helpers, tor_network)
            if key is not None:
                section += f"client_auth.private_key_file = {key}\n"
            urls[name], _ = start_anonymous_client(
                tmp_path / name, {str(entry["server-id"]): entry["ann"]}, section, processes,
                300)

        wait_for(all_connected(urls["alice"], 1), 240, "alice to reach the service",
                 interval=1.0, watch=processes)
        data = os.urandom(100_000)
        store_and_read(urls["alice"], data)

        def refused() -> str | None:
            page = welcome(urls["mallory"])
            if page.get("starting"):  # mallory's own tor still bootstraps: no servers yet
                return None
            (server,) = page["servers"]
            assert not server["connected"]
            error = str(server["last_error"])
            return error if "client authorization" in error else None

        error = wait_for(refused, 240, "mallory to be refused", interval=1.0,
                         watch=processes)
        assert "\n" not in error

        tahoe_told_why_then_admitted(tor_network, tmp_path, entry,
                                     keys / "alice.auth_private", processes)
    finally:
        stop_all(processes)


def tahoe_told_why_then_admitted(tor_network: TorNetwork, tmp_path: Path,
                                 entry: dict[str, object], key_file: Path,
                                 processes: list[Managed]) -> None:
    """A Tahoe 1.20 client on the network's tor (no key): its welcome page shows the
    server failing and, beside it, the announcement's reason. Then that tor is given the
    key (as a Tahoe user's own tor would hold it in ClientOnionAuthDir): Tahoe connects,
    stores and reads."""
    from ..interop.tahoe import _create_client  # noqa: PLC0415 (installs Tahoe once)

    node = tmp_path / "tahoe"
    tahoe = _create_client(node, 1, 1, 1)
    ann = entry["ann"]
    assert isinstance(ann, dict)
    (node / "private" / "servers.yaml").write_text(servers_yaml({str(entry["server-id"]): ann}))
    config = (node / "tahoe.cfg").read_text()
    (node / "tahoe.cfg").write_text(
        config + "\n[connections]\ntcp = tor\n"
        f"\n[tor]\ncontrol.port = tcp:127.0.0.1:{tor_network.control_port}\n")
    processes.append(Managed("tahoe client", [str(tahoe), "run", "--allow-stdin-close",
                                              str(node)], tmp_path / "tahoe.log"))
    wait_for(lambda: True if (node / "node.url").exists() else None, 60,
             "the Tahoe client's web API", watch=processes)
    url = (node / "node.url").read_text().strip()

    def page() -> str:
        with urllib.request.urlopen(url, timeout=30) as response:
            text: str = response.read().decode()
        return text

    def told() -> str | None:
        text = page()
        return text if CLIENT_AUTH_NOTE in text and "failure:" in text else None

    wait_for(told, 120, "Tahoe's welcome page to show why", interval=1.0,
                     watch=processes)
    assert tahoe_servers(url)[0]["connection_status"] != "connected"

    address = parse_nurl(str(ann["anonymous-storage-NURLs"][0])).host.removesuffix(".onion")
    key = parse_private(key_file.read_text(), str(key_file))
    with tor_network.control() as control:
        control.command(f"ONION_CLIENT_AUTH_ADD {address} {key.control_blob()}")
    try:
        wait_for(lambda: True if tahoe_servers(url)[0]["connection_status"] == "connected"
                 else None, 240, "Tahoe, its Tor holding the key, to connect", interval=1.0,
                 watch=processes)
        data = os.urandom(10_000)
        store_and_read(url, data)
    finally:
        with tor_network.control() as control:
            control.command(f"ONION_CLIENT_AUTH_REMOVE {address}")


def tahoe_servers(url: str) -> list[dict[str, object]]:
    with urllib.request.urlopen(url + "?t=json", timeout=30) as response:
        servers: list[dict[str, object]] = json.load(response)["servers"]
    return servers
