"""v3 onion client authorization on the private Tor network (real tor, real nodes):
a storage node whose onion service admits only the clients in `[tor] onion.client_auth`;
a client holding an admitted key (`[tor] client_auth.private_key_file`, made by `mistgrid
admin onion-client-key`) stores and reads; a client without one cannot even reach the
service, and its welcome page says why in Tor's own words."""

from __future__ import annotations

import os
import urllib.request
from pathlib import Path

import pytest

from mistgrid.testing.procs import Managed, stop_all, wait_for
from mistgrid.testing.tornet import TorNetwork

from ..conftest import run_cli
from .test_node_tor import (
    all_connected,
    start_anonymous_client,
    start_onion_storage_node,
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
        request = urllib.request.Request(urls["alice"] + "uri", data=data, method="PUT")
        with urllib.request.urlopen(request, timeout=300) as response:
            cap = response.read().decode()
        with urllib.request.urlopen(urls["alice"] + "uri/" + cap, timeout=300) as response:
            assert response.read() == data

        def refused() -> str | None:
            server = welcome(urls["mallory"])["servers"][0]
            assert not server["connected"]
            error = str(server["last_error"])
            return error if "client authorization" in error else None

        error = wait_for(refused, 120, "mallory to be refused", interval=1.0,
                         watch=processes)
        assert "\n" not in error
    finally:
        stop_all(processes)
