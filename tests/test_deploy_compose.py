"""Deployment files agree with the CLI and with the genesis they are generated with.

We cannot run docker here, so: deploy/make-consortium.sh really runs `imi genesis new`;
every compose service's hostname, ports, environment and volumes match the generated
genesis and node directories; the Dockerfile's ENTRYPOINT + CMD is a real `imi` command;
the environment overrides the image relies on are honoured by NodeConfig.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cli.main import app as cli_app
from ledger.genesis import Genesis
from node.service import NodeConfig

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "deploy" / "compose.yaml"
SCRIPT = ROOT / "deploy" / "make-consortium.sh"


def _port(address: str) -> int:
    return int(address.rpartition(":")[2])


def _host(address: str) -> str:
    return address.rpartition(":")[0]


@pytest.fixture(scope="module")
def consortium_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("deploy") / "consortium"
    env = {**os.environ, "IMI": f"{sys.executable} -m cli.main"}
    done = subprocess.run(["sh", str(SCRIPT), str(out)], cwd=ROOT, env=env, capture_output=True, check=False,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    genesis = Genesis.loads((out / "genesis.json").read_text())
    assert genesis.hash.hex() in done.stdout  # the hash to check out of band is printed
    return out


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    yaml = pytest.importorskip("yaml")
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def _dockerfile_instruction(name: str) -> list[str]:
    for line in DOCKERFILE.read_text().splitlines():
        if line.startswith(name + " "):
            value: list[str] = json.loads(line[len(name) + 1:])
            return value
    raise AssertionError(f"no {name} in the Dockerfile")


def test_make_consortium_refuses_to_overwrite(consortium_dir: Path) -> None:
    done = subprocess.run(["sh", str(SCRIPT), str(consortium_dir)], cwd=ROOT, capture_output=True, text=True, check=False,
                          env={**os.environ, "IMI": f"{sys.executable} -m cli.main"}, timeout=60)
    assert done.returncode == 1 and "exists" in done.stderr


def test_every_compose_service_matches_its_genesis_entry_and_node_directory(
    consortium_dir: Path, compose: dict[str, Any],
) -> None:
    genesis = Genesis.loads((consortium_dir / "genesis.json").read_text())
    services = compose["services"]
    assert set(services) == {v.name for v in genesis.validators.validators}
    data_volumes = set()
    for validator in genesis.validators.validators:
        service = services[validator.name]
        env = service["environment"]
        node_dir = consortium_dir / "validators" / validator.name
        config = json.loads((node_dir / "node.json").read_text())
        # peers dial the genesis address: the container's hostname and the port it listens on
        assert _host(validator.address) == service["hostname"] == validator.name
        assert _port(env["IMI_LISTEN"]) == _port(validator.address) == _port(config["listen"])
        assert str(_port(validator.address)) in service["expose"]
        # the API port of node.json, bound on all interfaces inside, published on host loopback
        assert _port(env["IMI_API"]) == _port(config["api"])
        assert f"127.0.0.1:{_port(config['api'])}:{_port(config['api'])}" in service["ports"]
        # the node directory (keys, genesis) read-only at /node, ledger data on its own volume
        volumes = service["volumes"]
        assert f"./consortium/validators/{validator.name}:/node:ro" in volumes
        data = [v.split(":")[0] for v in volumes if v.split(":")[1] == env["IMI_DATA"]]
        assert len(data) == 1 and data[0] in compose["volumes"]
        data_volumes.add(data[0])
        assert service["command"] == _dockerfile_instruction("CMD")
        assert json.loads((node_dir / "genesis.json").read_text())["hash"] == genesis.hash.hex()
        assert stat.S_IMODE((node_dir / "consensus_key.jwk").stat().st_mode) == 0o600
        assert stat.S_IMODE((node_dir / "tls_key.pem").stat().st_mode) == 0o600
        assert {p.name for p in (node_dir / "certs").iterdir()} == {f"{v.name}.pem" for v in genesis.validators.validators}
    assert len(data_volumes) == len(services)  # nobody shares a ledger


def test_the_compose_config_loads_with_node_config_and_its_environment(consortium_dir: Path,
                                                                      compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        env = {k: str(v) for k, v in service["environment"].items()}
        config = NodeConfig.load(consortium_dir / "validators" / name, env)
        assert config.listen == env["IMI_LISTEN"] and config.api == env["IMI_API"]
        assert config.data_dir == Path("/data")  # an absolute IMI_DATA leaves the node directory


def test_dockerfile_runs_a_real_cli_command_as_a_non_root_user() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.MULTILINE)
    entrypoint, cmd = _dockerfile_instruction("ENTRYPOINT"), _dockerfile_instruction("CMD")
    assert entrypoint[0] == "imi" and 'imi = "cli.main:main"' in (ROOT / "pyproject.toml").read_text()
    result = CliRunner().invoke(cli_app, [*entrypoint[1:], "--help"])
    assert result.exit_code == 0, result.output
    for option in (a for a in cmd if a.startswith("--")):
        assert option in result.output
    user = re.search(r"^USER (\S+)", text, re.MULTILINE)
    assert user is not None and user.group(1).split(":")[0] not in {"root", "0"}
    assert re.search(r"^EXPOSE 7000 7001$", text, re.MULTILINE)
    health = re.search(r"^HEALTHCHECK [^\n]*\\\n\s+CMD (\[.*\])$", text, re.MULTILINE)
    assert health is not None and json.loads(health.group(1))[1] == "/opt/imi/healthcheck.py"
    assert "COPY deploy/healthcheck.py /opt/imi/healthcheck.py" in text
    for package in ("ledger", "node", "identity", "cli"):
        assert re.search(rf"^COPY {package} ", text, re.MULTILINE), package


def test_env_overrides_for_listen_api_and_data(tmp_path: Path) -> None:
    (tmp_path / "node.json").write_text(json.dumps({"name": "v0", "listen": "v0:7000", "api": "127.0.0.1:7001"}))
    plain = NodeConfig.load(tmp_path, {})
    assert (plain.listen, plain.api, plain.data_dir) == ("v0:7000", "127.0.0.1:7001", tmp_path / "data")
    env = {"IMI_LISTEN": "0.0.0.0:7100", "IMI_API": "0.0.0.0:7101", "IMI_DATA": "ledger-data"}
    over = NodeConfig.load(tmp_path, env)
    assert (over.listen, over.api, over.data_dir) == ("0.0.0.0:7100", "0.0.0.0:7101", tmp_path / "ledger-data")
