"""A storage server's announcement fields and the servers.yaml text made from them."""

from __future__ import annotations

from pathlib import Path

import yaml
from hypothesis import given
from hypothesis import strategies as st

from mistgrid.gbs.nurl import parse_nurl
from mistgrid.storage.announcement import CLIENT_AUTH_NOTE, announcement, servers_yaml
from mistgrid.storage.tls import create_identity, load_certificate

NURL = ("pb+tor://gMSSJOG3byECBHu21GntM5CFjX4p9vwmgcn8w4sVxAw@"
        "lp4v5yknghfnrtszsj74bqagiahkukkgpduk3osk34437jyqk4eu6oyd.onion:3457/"
        "tmcii6o5n4ijb7mglts7pbrjgjaywphv#v=1")


def test_a_client_authorized_server_says_so_where_tahoe_shows_it(tmp_path: Path) -> None:
    cert = load_certificate(create_identity(tmp_path))
    plain = announcement([parse_nurl(NURL)], cert, "alice")
    private = announcement([parse_nurl(NURL)], cert, "alice", client_auth=True)
    assert "my-version" not in plain  # the introducer client adds the usual one
    assert private["my-version"].startswith("mistgrid/")
    assert private["my-version"].endswith(CLIENT_AUTH_NOTE)
    assert {k: v for k, v in private.items() if k != "my-version"} == plain


@given(st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=40))
def test_servers_yaml_reads_back_whatever_a_nickname_holds(nickname: str) -> None:
    ann = {"nickname": nickname, "anonymous-storage-NURLs": [NURL, "it's"],
           "my-version": "mistgrid/1; " + CLIENT_AUTH_NOTE}
    text = servers_yaml({"v0-abc": ann})
    assert yaml.safe_load(text) == {"storage": {"v0-abc": {"ann": ann}}}
