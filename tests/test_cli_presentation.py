"""The presentation contract for scripts, over real HTTP: imi verifier request / result and
imi wallet present, against a served node and a served verifier service."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli._consortium import free_ports
from cli.main import app
from identity.http.node_routes import identity_router
from node.api.app import create_app
from tests.serving import serve_in_thread
from tests.test_identity_api_scene import VCT
from tests.test_verifier_service import QUESTION, TOKEN, make_world

pytestmark = pytest.mark.xdist_group("browser")


def test_request_present_result_through_the_cli(tmp_path: Path) -> None:
    node_port, verifier_port = free_ports(2)
    world = make_world(tmp_path, f"http://127.0.0.1:{verifier_port}", wall_clock=True)
    world.wallet.save()
    genesis = tmp_path / "genesis.json"
    genesis.write_text(world.scene.node.genesis.dumps())
    token, dcql = tmp_path / "token", tmp_path / "question.json"
    token.write_text(TOKEN + "\n")
    dcql.write_text(json.dumps(QUESTION))
    node_app = create_app(world.scene.node, extra_routers=[identity_router])
    runner = CliRunner()
    env = {"IMI_WALLET_PASSWORD": "pw"}
    with serve_in_thread(node_app, node_port), serve_in_thread(world.app, verifier_port):
        verifier = f"http://127.0.0.1:{verifier_port}"
        asked = runner.invoke(app, ["verifier", "request", "--verifier", verifier, "--token-file", str(token),
                                    "--dcql", str(dcql), "--json"])
        assert asked.exit_code == 0, asked.output
        request = json.loads(asked.stdout)
        assert set(request) == {"id", "request_uri"} and request["request_uri"].startswith("openid4vp://")
        pending = runner.invoke(app, ["verifier", "result", "--verifier", verifier, "--token-file", str(token),
                                      "--id", request["id"], "--json"])
        assert json.loads(pending.stdout)["state"] == "pending"
        presented = runner.invoke(app, ["wallet", "present", request["request_uri"], "--yes", "--json",
                                        "--wallet", str(world.wallet.path), "--node", f"http://127.0.0.1:{node_port}",
                                        "--genesis", str(genesis)], env=env)
        assert presented.exit_code == 0, presented.output
        shown = json.loads(presented.stdout)
        assert shown["service"] == "Community desk" and shown["sent"] is True
        assert shown["disclosed"] == [{"vct": VCT, "issuer": world.scene.agency.did,
                                       "claims": ["age_equal_or_over.18"], "reused": False}]
        done = runner.invoke(app, ["verifier", "result", "--verifier", verifier, "--token-file", str(token),
                                   "--id", request["id"], "--json"])
        verdict = json.loads(done.stdout)
        assert verdict == {"state": "done", "valid": True, "reason": None,
                           "claims": {"pid": {"vct": VCT, "iss": world.scene.agency.did, "age_equal_or_over.18": True}}}
        # the same link again: the request was answered, the wallet says so and exits 1
        again = runner.invoke(app, ["wallet", "present", request["request_uri"], "--yes", "--json",
                                    "--wallet", str(world.wallet.path), "--node", f"http://127.0.0.1:{node_port}",
                                    "--genesis", str(genesis)], env=env)
        assert again.exit_code == 1 and json.loads(again.stdout)["reason"] == "request-unavailable"
        # a new question: the wallet's only credential (a batch of one) was presented, so it is reused, and says so
        second = json.loads(runner.invoke(app, ["verifier", "request", "--verifier", verifier, "--token-file",
                                                str(token), "--dcql", str(dcql), "--json"]).stdout)
        reused = runner.invoke(app, ["wallet", "present", second["request_uri"], "--yes", "--json",
                                     "--wallet", str(world.wallet.path), "--node", f"http://127.0.0.1:{node_port}",
                                     "--genesis", str(genesis)], env=env)
        assert reused.exit_code == 0 and json.loads(reused.stdout)["disclosed"][0]["reused"] is True
        assert "every one-time copy of it was presented before" in reused.stderr
        # a question beyond the registration: refused, exit 1 with the reason
        dcql.write_text(json.dumps({"credentials": [{"id": "pid", "format": "dc+sd-jwt",
                                                     "meta": {"vct_values": [VCT]},
                                                     "claims": [{"path": ["birthdate"]}]}]}))
        beyond = runner.invoke(app, ["verifier", "request", "--verifier", verifier, "--token-file", str(token),
                                     "--dcql", str(dcql), "--json"])
        assert beyond.exit_code == 1 and json.loads(beyond.stdout)["reason"] == "beyond-registration"
        wrong = tmp_path / "wrong"
        wrong.write_text("nope\n")
        refused = runner.invoke(app, ["verifier", "result", "--verifier", verifier, "--token-file", str(wrong),
                                      "--id", request["id"], "--json"])
        assert refused.exit_code == 1 and json.loads(refused.stdout)["reason"] == "admin-unauthorized"
