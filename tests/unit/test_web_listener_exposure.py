"""The web port is checked where it is built, not only by the config check: an
anonymous node's web.port that is not loopback-only fails with ListenError before any
socket is bound (the client's web API, the starting page and an introducer's page all
listen through `node.web_service._listen`). Loopback web ports of anonymous nodes are
used by every test in tests/network."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytest_twisted
from twisted.web.pages import notFound

from mistgrid.config.check import ConfigValues, load_config
from mistgrid.node import web_service
from mistgrid.node.listening import ListenError
from mistgrid.web.api import make_web_site


def _anonymous(web_port: str) -> ConfigValues:
    cfg, _problems = load_config(f"[node]\nreveal-IP-address = false\nweb.port = {web_port}\n"
                                 "tub.port = disabled\ntub.location = disabled\n")
    return cfg


@pytest.mark.parametrize("web_port", ["tcp:0", "0", "tcp:0:interface=0.0.0.0",
                                      "tcp:0:interface=192.0.2.1", "tcp6:0"])
@pytest_twisted.ensureDeferred  # type: ignore[untyped-decorator]
async def test_an_anonymous_node_refuses_a_public_web_port(web_port: str,
                                                           tmp_path: Path) -> None:
    cfg = _anonymous(web_port)
    assert cfg.get("node", "web.port") == web_port
    with pytest.raises(ListenError, match=r"web\.port = .*: the node is anonymous"):
        await web_service._listen(tmp_path, cfg, make_web_site(notFound()))
    assert not (tmp_path / "node.url").exists()
