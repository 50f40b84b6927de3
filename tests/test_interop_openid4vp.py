"""Interop with an independent OpenID4VP 1.0 implementation, both ways: the npm package
``@openid4vc/openid4vp`` (pinned in tests/interop/openid4vp) as the wallet answering our
verifier service, and as the verifier whose signed request our wallet answers.

The Node scripts run as child processes over real loopback HTTP. Without node or the
installed packages the tests skip, saying what to run; with ``CI=true`` they fail.
"""

from __future__ import annotations

import dataclasses
import json
import os
import selectors
import shutil
import subprocess
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import Response

from cli._consortium import free_ports
from identity import dcql, jose, oid4vp, presenter
from identity.errors import Oid4vpError
from identity.http.verifier_service import ledger_verify_one
from tests.serving import serve_in_thread
from tests.test_identity_api_scene import VCT
from tests.test_verifier_service import QUESTION, World, make_world

pytestmark = pytest.mark.xdist_group("browser")

INTEROP = Path(__file__).parent / "interop" / "openid4vp"
NODE_TIMEOUT_S = 120  # generous: a loaded two-core machine starts node slowly
VERIFIER_WAIT_S = 60  # how long the package's verifier waits for our wallet's answer
INSTALL = "npm ci --prefix tests/interop/openid4vp"


@pytest.fixture(scope="module")
def node() -> str:
    """The node binary, once the pinned packages are installed; else skip (or fail on CI)."""
    binary = shutil.which("node")
    problem = None
    if binary is None or shutil.which("npm") is None:
        problem = "node and npm are not installed (Node 20+)"
    elif not (INTEROP / "node_modules" / "@openid4vc" / "openid4vp").is_dir():
        problem = f"the interop packages are not installed: run `{INSTALL}` (or `make node-deps`)"
    if problem is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"OpenID4VP interop: {problem}")
        pytest.skip(f"OpenID4VP interop: {problem}")
    assert binary is not None
    return binary


def _run(node: str, script: str, payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    done = subprocess.run([node, script], input=json.dumps(payload), capture_output=True, text=True,
                          cwd=INTEROP, timeout=NODE_TIMEOUT_S, check=False)
    assert done.stdout.strip(), f"{script} printed nothing; stderr: {done.stderr[-2000:]}"
    return done.returncode, json.loads(done.stdout.strip().splitlines()[-1])


def _desk_key(world: World) -> dict[str, Any]:
    return {"jwk": world.desk.key.public_key.to_jwk(), "kid": f"{world.desk.did}#{world.desk.key.key_id}"}


# --- their wallet, our verifier --------------------------------------------------------------------
def test_their_wallet_checks_our_signed_request_and_our_verifier_accepts_its_answer(node: str, tmp_path: Path
                                                                                    ) -> None:
    port = free_ports(1)[0]
    world = make_world(tmp_path, f"http://127.0.0.1:{port}", wall_clock=True)
    with serve_in_thread(world.app, port):
        body = world.ask().json()
        code, seen = _run(node, "wallet.mjs", {"uri": body["request_uri"], **_desk_key(world)})
        assert code == 0, seen
        ours = world.wallet_opens(body["request_uri"])  # what our own wallet reads from the same request
        assert seen["client_prefix"] == "decentralized_identifier" and seen["version"] == 100  # 1.0 final
        assert seen["signer"] == _desk_key(world)["kid"]
        assert (seen["client_id"], seen["nonce"], seen["state"], seen["response_uri"], seen["response_mode"]) == (
            ours.client_id, ours.nonce, ours.state, ours.response_uri, "direct_post")
        assert seen["dcql_query"] == QUESTION

        # our wallet makes the SD-JWT presentation for the request as *they* parsed it
        theirs = oid4vp.AuthorizationRequest(seen["client_id"], seen["response_uri"], seen["nonce"],
                                             seen["state"], dcql.parse_query(seen["dcql_query"]),
                                             ours.iat, ours.exp)
        token = oid4vp.wallet_answer(world.wallet, theirs, now=world.now())
        code, sent = _run(node, "wallet.mjs", {"uri": body["request_uri"], **_desk_key(world), "vp_token": token})
        assert code == 0 and sent["status"] == 200, sent
        assert sent["sent"] == {"vp_token": token, "state": ours.state}
    result = world.result(body["id"])
    assert result["state"] == "done" and result["valid"] is True, result
    assert result["claims"] == {"pid": {"vct": VCT, "iss": world.scene.agency.did, "age_equal_or_over.18": True}}


def _tampered(compact: str) -> str:
    header, payload, signature = compact.split(".")
    raw = bytearray(jose.b64url_decode_strict(signature))
    raw[10] ^= 0x01
    return f"{header}.{payload}.{jose.b64url_encode(bytes(raw))}"


def _forged(world: World, compact: str) -> str:
    """The same claims and header (the desk's kid), signed by alice's key."""
    jws = jose.parse(compact)
    return jose.sign(jws.header, jws.payload, world.scene.alice.key)


@pytest.mark.parametrize("case", ["genuine", "tampered-signature", "signed-by-another-key", "wrong-key-given"])
def test_their_wallet_refuses_a_request_object_not_signed_by_the_did_key(node: str, tmp_path: Path, case: str
                                                                         ) -> None:
    """Our request object, served as is (the control), with a flipped signature bit, re-signed by
    another key under the desk's kid, or checked against another key than the desk's."""
    world = make_world(tmp_path, "http://127.0.0.1:8710", wall_clock=True)
    uri = world.ask().json()["request_uri"]
    client_id, request_uri = oid4vp.parse_authorization_uri(uri)
    genuine = world.verifier.get(urllib.parse.urlsplit(request_uri).path).text
    served = {"genuine": genuine, "tampered-signature": _tampered(genuine),
              "signed-by-another-key": _forged(world, genuine), "wrong-key-given": genuine}[case]
    key = _desk_key(world)
    if case == "wrong-key-given":
        key["jwk"] = world.scene.alice.key.public_key.to_jwk()
    app = FastAPI()
    app.get("/r")(lambda: Response(served, media_type="application/oauth-authz-req+jwt"))
    with serve_in_thread(app) as port:
        code, out = _run(node, "wallet.mjs", {"uri": oid4vp.authorization_uri(client_id, f"http://127.0.0.1:{port}/r"),
                                              **key})
    if case == "genuine":
        assert code == 0 and out["signer"] == key["kid"], out
    else:
        assert code == 1 and out["error"] == "Oauth2JwtVerificationError", out
        assert "nonce" not in out


# --- our wallet, their verifier --------------------------------------------------------------------
def _read_line(process: subprocess.Popen[str], timeout_s: float) -> dict[str, Any]:
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        assert selector.select(timeout_s), f"no output from node within {timeout_s} s"
    line = process.stdout.readline()
    assert line, "node exited without output"
    value: dict[str, Any] = json.loads(line)
    return value


@pytest.fixture()
def their_verifier(node: str, tmp_path: Path) -> Iterator[tuple[World, Any]]:
    """A world (wall clock: the package signs with the real time) and a starter for verifier.mjs."""
    world = make_world(tmp_path, "http://127.0.0.1:9", wall_clock=True)
    started: list[subprocess.Popen[str]] = []

    def start(query: dict[str, Any], timeout_s: int = VERIFIER_WAIT_S) -> tuple[subprocess.Popen[str], dict[str, Any]]:
        process = subprocess.Popen([node, "verifier.mjs"], cwd=INTEROP, text=True, stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        started.append(process)
        assert process.stdin is not None
        process.stdin.write(json.dumps({"did": world.desk.did, "kid": _desk_key(world)["kid"],
                                        "private_jwk": world.desk.key.to_private_jwk(), "dcql_query": query,
                                        "timeout_s": timeout_s}))
        process.stdin.close()
        return process, _read_line(process, NODE_TIMEOUT_S)

    yield world, start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=NODE_TIMEOUT_S)


def test_our_wallet_answers_a_request_made_by_their_verifier(their_verifier: tuple[World, Any]) -> None:
    world, start = their_verifier
    process, shown = start(QUESTION)
    assert shown["uri"].startswith("openid4vp://?client_id=decentralized_identifier%3Adid%3Aimi%3A"), shown
    with httpx.Client(timeout=30.0) as http:
        # our wallet: fetch, check the signature with the desk's DID key on the ledger, the registration
        prepared = presenter.prepare(shown["uri"], wallet=world.wallet, light=world.light, http=http,
                                     now_ms=world.scene.clock())
        assert prepared.name("en") == "Community desk"
        assert prepared.request.response_uri == shown["response_uri"]
        assert [(d.query_id, d.paths) for d in prepared.disclosures] == [("pid", ("age_equal_or_over.18",))]
        presenter.send(prepared, wallet=world.wallet, http=http, now=world.now())
    received = _read_line(process, VERIFIER_WAIT_S + 10)
    assert process.wait(timeout=NODE_TIMEOUT_S) == 0, received
    assert received["query_ids"] == ["pid"] and received["request_fetches"] == 1
    assert (received["state"], received["nonce"], received["client_id"]) == (
        prepared.request.state, prepared.request.nonce, prepared.request.client_id)
    assert [h.verifier for h in world.wallet.history()] == ["Community desk"]

    # what their verifier received passes our strict verifier (KB-JWT nonce and aud, issuer, status)
    verify_one = ledger_verify_one(world.light)
    verdict = oid4vp.check_response(prepared.request, received["presentations"],
                                     lambda presentation, question: verify_one(presentation, question, world.now()))
    assert verdict.valid, verdict.detail
    assert verdict.claims == {"pid": {"vct": VCT, "iss": world.scene.agency.did, "age_equal_or_over.18": True}}
    other_nonce = dataclasses.replace(prepared.request, nonce="not-the-nonce-their-verifier-sent")
    assert oid4vp.check_response(other_nonce, received["presentations"], lambda p, q: verify_one(
        p, q, world.now())).reason == "kb-wrong-nonce"


def test_our_wallet_refuses_their_request_beyond_the_registration(their_verifier: tuple[World, Any]) -> None:
    world, start = their_verifier
    beyond = {"credentials": [{"id": "pid", "format": "dc+sd-jwt", "meta": {"vct_values": [VCT]},
                               "claims": [{"path": ["birthdate"]}]}]}
    process, shown = start(beyond, timeout_s=3)
    with httpx.Client(timeout=30.0) as http, pytest.raises(Oid4vpError) as err:
        presenter.prepare(shown["uri"], wallet=world.wallet, light=world.light, http=http,
                          now_ms=world.scene.clock())
    assert err.value.reason == "beyond-registration"
    received = _read_line(process, NODE_TIMEOUT_S)
    assert received["error"] == "timeout"  # nothing was sent to their verifier
    (record,) = world.wallet.history()
    assert record.disclosed == () and "birthdate" in (record.refused or "")
