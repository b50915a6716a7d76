"""`mistgrid create-node | create-client | create-introducer`: the directories they write
pass the config checker, secrets are private, and mistakes get one clear line."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from mistgrid.config.check import load_config
from mistgrid.policy.anonymity import violations

from ..conftest import run_cli
from .test_cli import assert_one_line_error


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("args,storage,port", [
    (["create-node", "--hostname", "127.0.0.1"], "true", "tcp:3457"),
    (["create-node", "--location", "tcp:127.0.0.1:4000", "--port", "tcp:4000"], "true",
     "tcp:4000"),
    (["create-client"], "false", "disabled"),
    (["create-client", "--hide-ip"], "false", "disabled"),
    (["create-introducer", "--hostname", "127.0.0.1"], None, "tcp:3457"),
    (["create-node", "--listen=tor", "--hide-ip", "--port", "tcp:4001:interface=127.0.0.1"],
     "true", "tcp:4001:interface=127.0.0.1"),
    (["create-node", "--listen=tcp,tor", "--hostname", "127.0.0.1"], "true", "tcp:3457"),
    (["create-node", "--listen=tor,i2p", "--hide-ip", "--port",
      "tcp:4002:interface=127.0.0.1"], "true", "tcp:4002:interface=127.0.0.1"),
])
def test_created_directories(tmp_path: Path, args: list[str], storage: str | None,
                             port: str) -> None:
    node = tmp_path / "node"
    result = run_cli(*args, "--nickname", "n1", str(node))
    assert result.returncode == 0, result.stderr.decode()
    text = (node / "tahoe.cfg").read_text()
    cfg, problems = load_config(text)
    assert [str(p) for p in problems] == []
    assert cfg.get("node", "tub.port") == port
    assert cfg.get("node", "nickname") == "n1"
    if storage is not None:
        assert f"[storage]\nenabled = {storage}" in text
    assert mode(node / "private") == 0o700
    assert mode(node / "private" / "convergence") == 0o600
    if "--hide-ip" in args:
        assert cfg.get("node", "reveal-IP-address") is False
        assert cfg.get("connections", "tcp") == "tor"
        assert violations(cfg) == []  # what --hide-ip writes, the node accepts
    if any("tor" in a for a in args if a.startswith("--listen")):
        onion = [h for h in cfg.get("node", "tub.location") if h.kind == "onion-service"]
        assert onion[0].port == 3457
        assert onion[0].path == f"{node.resolve()}/private/onion"
        assert cfg.get("tor", "control.port") == "tcp:127.0.0.1:9051"
    if any("i2p" in a for a in args if a.startswith("--listen")):
        hints = cfg.get("node", "tub.location")
        assert hints[-1].kind == "i2p-destination"
        assert hints[-1].path == f"{node.resolve()}/private/i2p.keys"
        assert cfg.get("i2p", "sam.port") == "tcp:127.0.0.1:7656"


def test_node_has_a_tls_identity(tmp_path: Path) -> None:
    run_cli("create-node", "--hostname", "127.0.0.1", str(tmp_path / "n"))
    assert mode(tmp_path / "n" / "private" / "node.pem") == 0o600


@pytest.mark.parametrize("args,words", [
    (["create-node"], ["--listen=tcp needs --hostname"]),
    (["create-node", "--listen", "ipx"], ["--listen=ipx is not a listener type"]),
    (["create-node", "--listen", "tor", "--hostname", "h"], ["--listen=tor takes no"]),
    (["create-node", "--hostname", "h", "--hide-ip"], ["--hide-ip", "reveal"]),
    (["create-node", "--location", "tcp:h:1"], ["--location and --port go together"]),
    (["create-client", "--hostname", "h"], ["--listen=none takes no --hostname"]),
])
def test_mistakes_are_one_line(tmp_path: Path, args: list[str], words: list[str]) -> None:
    result = run_cli(*args, str(tmp_path / "n"))
    assert_one_line_error(result, *words)
    assert not (tmp_path / "n").exists()


def test_refuses_existing_directory(tmp_path: Path) -> None:
    (tmp_path / "n").mkdir()
    (tmp_path / "n" / "keep").write_text("x")
    result = run_cli("create-node", "--hostname", "h", str(tmp_path / "n"))
    assert_one_line_error(result, "already exists")
    assert (tmp_path / "n" / "keep").read_text() == "x"
