"""A lying node: the real API (create_app + identity ROUTERS on a DevNode, served by uvicorn on
loopback) behind an HTTP proxy that alters answers. The light client, pointed at the proxy,
must turn EVERY altered DID document, issuer record and status list into an error — never a
result — whether it reads raw ``/v1/state`` (HttpFetcher) or the identity endpoints
(IdentityHttpFetcher); unaltered answers through the same proxy are accepted."""

from __future__ import annotations

import copy
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import uvicorn

from identity import status_list as sl
from identity.errors import LightClientError, NotFoundError
from identity.fetcher import IdentityHttpFetcher
from identity.http.node_routes import ROUTERS
from identity.ledger_trust import LedgerHolderKeys, LedgerIssuerKeys, LedgerStatusLists
from identity.light_client import HttpFetcher, LightClient
from identity.verifier import verify_presentation
from identity.views import STATE_MEMBERS, kind_of, view
from ledger.block import BlockHeader
from ledger.encoding import decode, encode
from ledger.keys import b64url_decode, b64url_encode
from node.api.app import create_app
from tests.test_identity_api_scene import LIST_ID, REQUEST, VCT, Scene, build_scene
from tests.test_identity_helpers import det_key

FRESHNESS_MS = 60_000
OLD_HEIGHT = 4  # the scene's last block before the clock jumps past the freshness bound

Body = dict[str, Any]
Fetch = Callable[[str], Body]  # GET a path (with query) from the honest upstream


@dataclass
class Reply:
    status: int
    body: Body


Lie = Callable[[Reply, str, Fetch], Reply]  # (honest reply, kind of its key, fetch) -> altered reply


# --- the scene and the servers -------------------------------------------------------------
def aged_scene() -> Scene:
    """The API scene, then two minutes later a block that revokes L1[3], accredits alice as a
    second issuer and creates list L2, and one where alice publishes urn:x: answers at
    OLD_HEIGHT are true but stale."""
    s = build_scene()
    s.clock.now_ms += 120_000
    s.block(s.tx("status.set", s.agency.did, {"list_id": LIST_ID, "updates": [[3, 1]]}, s.agency.key),
            s.gov("gov.issuer_accredit", {"did": s.alice.did, "name": "Alice Co", "vcts": ["urn:x"]}),
            s.tx("status.create_list", s.agency.did, {"list_id": "L2", "bits": 2, "size": 64}, s.agency.key))
    s.block(s.tx("vct.publish", s.alice.did, {"vct": "urn:x", "name": "X", "claims": ["x"]}, s.alice.key))
    return s


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@dataclass
class LyingProxy:
    """Forwards GETs to ``upstream``; when ``lie`` is set, answers for keys of ``kinds`` are
    altered by it (``applied`` counts them, so a test can see its lie was told)."""

    upstream: str
    lie: Lie | None = None
    kinds: frozenset[str] = frozenset()
    applied: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=10))  # one TLS-free pool

    def fetch(self, path: str) -> Body:
        body: Body = self.http.get(self.upstream + path).json()
        return body

    def answer(self, path: str) -> tuple[int, bytes, str]:
        response = self.http.get(self.upstream + path)
        ctype = response.headers.get("content-type", "application/json")
        with self.lock:
            lie, kinds = self.lie, self.kinds
        if lie is None or "json" not in ctype:
            return response.status_code, response.content, ctype
        body = response.json()
        kind = kind_of(str(body.get("key", "")).encode())
        if kind is None or kind not in kinds:
            return response.status_code, response.content, ctype
        reply = lie(Reply(response.status_code, body), kind, self.fetch)
        with self.lock:
            self.applied += 1
        return reply.status, json.dumps(reply.body).encode(), ctype


def serve_proxy(proxy: LyingProxy, sock: socket.socket) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, content, ctype = proxy.answer(self.path)
            self.send_response(status)
            self.send_header("content-type", ctype)
            self.send_header("content-length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(sock.getsockname(), Handler, bind_and_activate=False)
    server.socket.close()
    server.socket = sock
    server.server_activate()
    return server


@dataclass
class Rig:
    scene: Scene
    proxy: LyingProxy
    proxy_url: str
    http: httpx.Client

    def now(self) -> int:
        return self.scene.clock() + 500

    def client(self, fetcher_kind: str) -> LightClient:
        cls = IdentityHttpFetcher if fetcher_kind == "identity" else HttpFetcher
        return LightClient(self.scene.node.genesis, cls(self.proxy_url, client=self.http),
                           freshness_ms=FRESHNESS_MS)

    def tell(self, lie: Lie | None, kinds: frozenset[str] = frozenset()) -> None:
        with self.proxy.lock:
            self.proxy.lie, self.proxy.kinds, self.proxy.applied = lie, kinds, 0


@pytest.fixture(scope="module")
def rig() -> Iterator[Rig]:
    scene = aged_scene()
    app = create_app(scene.node, extra_routers=ROUTERS)
    node_sock, proxy_sock = free_socket(), free_socket()
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    node_thread = threading.Thread(target=server.run, kwargs={"sockets": [node_sock]}, daemon=True)
    node_thread.start()
    proxy = LyingProxy(f"http://127.0.0.1:{node_sock.getsockname()[1]}")
    proxy_server = serve_proxy(proxy, proxy_sock)
    proxy_thread = threading.Thread(target=proxy_server.serve_forever, daemon=True)
    proxy_thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline, "node API did not start"
            time.sleep(0.02)
        with httpx.Client(timeout=10) as http:
            yield Rig(scene, proxy, f"http://127.0.0.1:{proxy_sock.getsockname()[1]}", http)
    finally:
        proxy.http.close()
        proxy_server.shutdown()
        proxy_server.server_close()
        server.should_exit = True
        node_thread.join(timeout=10)
        proxy_thread.join(timeout=10)
        node_sock.close()


# --- the reads under attack --------------------------------------------------------------------
READS: dict[str, Callable[[LightClient, Rig], Any]] = {
    "did": lambda lc, r: lc.resolve_did(r.scene.alice.did, r.now()),
    "issuer": lambda lc, r: lc.issuer(r.scene.agency.did, r.now()),
    "vct": lambda lc, r: lc.credential_type(VCT, r.now()),
    "status": lambda lc, r: lc.status(LIST_ID, 3, r.now()),
}


# --- lies ----------------------------------------------------------------------------------------
def _forge(mutate: Callable[[dict[str, Any]], None]) -> Lie:
    """Change the record inside ``value`` and, for identity answers, its views to match
    (a careful liar): only the proof can give it away."""
    def lie(reply: Reply, kind: str, fetch: Fetch) -> Reply:
        body = reply.body
        record = decode(b64url_decode(body["value"]))
        assert isinstance(record, dict)
        mutate(record)
        raw = encode(record)
        body["value"] = b64url_encode(raw)
        if set(body) - STATE_MEMBERS:  # an identity answer: keep it self-consistent
            body.update(view(kind, raw))
        return reply
    return lie


def _swap_did_key(record: dict[str, Any]) -> None:
    record["keys"][0]["jwk"] = dict(det_key("mallory").public_key.to_jwk())


def _add_vct(record: dict[str, Any]) -> None:
    record["vcts"] = [*record["vcts"], "https://evil.example/vct"]


def _suspend(record: dict[str, Any]) -> None:
    record["status"] = "suspended"


def _add_claim(record: dict[str, Any]) -> None:
    record["claims"] = [*record["claims"], "birthdate"]


def _unrevoke(record: dict[str, Any]) -> None:
    record["lst"] = sl.set_status(record["lst"], record["bits"], 3, 0)


def _edit_view(kind: str, reply: Reply) -> Reply:
    """Alter only the readable members of an identity answer, leaving the proven value."""
    body = reply.body
    if kind == "did":
        body["didDocument"]["verificationMethod"][0]["publicKeyJwk"] = dict(det_key("mallory").public_key.to_jwk())
    elif kind == "issuer":
        body["issuer"]["vcts"].append("https://evil.example/vct")
    elif kind == "vct":
        body["credential_type"]["claims"].append("birthdate")
    else:
        lst, bits = sl.from_json(body["status_list"])
        body["status_list"] = sl.to_json(sl.set_status(lst, bits, 3, 0), bits)
    return reply


def _path_of(key: str, height: int) -> str:
    return f"/v1/state/{quote(key, safe='')}?height={height}"


OTHER_KEYS: dict[str, str] = {}  # kind -> another key of the same kind (filled by the fixture below)


def _swap_proof(reply: Reply, kind: str, fetch: Fetch) -> Reply:
    """The proof of another key of the same kind, at the same height."""
    other = fetch(_path_of(OTHER_KEYS[kind], reply.body["height"]))
    reply.body["proof"] = other["proof"]
    return reply


def _swap_entry(reply: Reply, kind: str, fetch: Fetch) -> Reply:
    """Another key's value and proof (views rebuilt to match), under the asked key."""
    other = fetch(_path_of(OTHER_KEYS[kind], reply.body["height"]))
    reply.body["value"], reply.body["proof"] = other["value"], other["proof"]
    if set(reply.body) - STATE_MEMBERS:
        reply.body.update(view(kind, b64url_decode(other["value"])))
    return reply


def _old_answer(reply: Reply, kind: str, fetch: Fetch) -> Reply:
    """A true answer from OLD_HEIGHT (before the revocation), served as the current one."""
    key = reply.body["key"]
    old = fetch(_path_of(key, OLD_HEIGHT))
    if set(reply.body) - STATE_MEMBERS:
        old.update(view(kind, b64url_decode(old["value"])))
    return Reply(200, old)


def _old_header(reply: Reply, kind: str, fetch: Fetch) -> Reply:
    """Today's value and proof under OLD_HEIGHT's header and certificate."""
    block = fetch(f"/v1/blocks/{OLD_HEIGHT}")
    reply.body["header"], reply.body["certificate"] = block["header"], block["certificate"]
    return reply


def _refreshed_header(reply: Reply, kind: str, fetch: Fetch) -> Reply:
    """OLD_HEIGHT's answer with its header's time moved to now (hash recomputed)."""
    old = _old_answer(reply, kind, fetch).body
    header = dict(old["header"])
    header["time_ms"] = reply.body["header"]["time_ms"]
    header.pop("hash")
    header["hash"] = BlockHeader.from_json(header).hash.hex()
    old["header"] = header
    return Reply(200, old)


def _drop_signatures(reply: Reply, kind: str, fetch: Fetch) -> Reply:
    reply.body["certificate"]["signatures"] = []
    return reply


def _below_quorum(reply: Reply, kind: str, fetch: Fetch) -> Reply:
    reply.body["certificate"]["signatures"] = reply.body["certificate"]["signatures"][:2]  # 2 of 4
    return reply


def _duplicate_signer(reply: Reply, kind: str, fetch: Fetch) -> Reply:
    sigs = reply.body["certificate"]["signatures"]
    reply.body["certificate"]["signatures"] = [sigs[0]] * len(sigs)
    return reply


def _claim_absent(reply: Reply, kind: str, fetch: Fetch) -> Reply:
    """"Not on the ledger": value null with the presence proof (a 404 problem on identity paths)."""
    body = {k: v for k, v in reply.body.items() if k in STATE_MEMBERS}
    body["value"] = None
    if set(reply.body) - STATE_MEMBERS:
        body.update({"type": "about:blank", "title": "Not found", "status": 404, "detail": "",
                     "reason": f"{kind}-not-found"})
        return Reply(404, body)
    return Reply(200, body)


def _bare_404(reply: Reply, kind: str, fetch: Fetch) -> Reply:
    """"Not found" as a plain problem document, with no proof at all."""
    return Reply(404, {"type": "about:blank", "title": "Not found", "status": 404, "detail": "",
                       "reason": f"{kind}-not-found", "key": reply.body["key"]})


def _view_only(reply: Reply, kind: str, fetch: Fetch) -> Reply:
    return _edit_view(kind, reply)


VALUE_LIES: dict[str, dict[str, Lie]] = {
    "did": {"forged-did-key": _forge(_swap_did_key)},
    "issuer": {"forged-issuer-vct": _forge(_add_vct), "forged-issuer-status": _forge(_suspend)},
    "vct": {"forged-type-claims": _forge(_add_claim)},
    "status": {"forged-status-bit": _forge(_unrevoke)},
}
COMMON_LIES: dict[str, Lie] = {
    "proof-of-another-key": _swap_proof,
    "entry-of-another-key": _swap_entry,
    "old-answer-as-fresh": _old_answer,
    "old-header-with-current-proof": _old_header,
    "old-header-retimed": _refreshed_header,
    "signatures-dropped": _drop_signatures,
    "signatures-below-quorum": _below_quorum,
    "one-signer-repeated": _duplicate_signer,
    "claims-absent": _claim_absent,
    "unproven-404": _bare_404,
}
VIEW_LIES: dict[str, Lie] = {"readable-part-edited": _view_only}


def cases() -> Iterator[Any]:
    for fetcher in ("state", "identity"):
        for kind in READS:
            lies = {**VALUE_LIES[kind], **COMMON_LIES, **(VIEW_LIES if fetcher == "identity" else {})}
            for name, lie in lies.items():
                yield pytest.param(fetcher, kind, lie, id=f"{fetcher}-{kind}-{name}")


@pytest.fixture(scope="module", autouse=True)
def _other_keys(rig: Rig) -> None:
    OTHER_KEYS.update({"did": f"did/{rig.scene.agency.did}", "issuer": f"issuer/{rig.scene.alice.did}",
                       "vct": "vct/urn:x", "status": "status/L2"})


# --- tests -------------------------------------------------------------------------------------
@pytest.mark.parametrize("fetcher", ["state", "identity"])
def test_unaltered_answers_through_the_proxy_are_accepted(rig: Rig, fetcher: str) -> None:
    rig.tell(None)
    lc = rig.client(fetcher)
    assert READS["did"](lc, rig)["didDocument"]["verificationMethod"][0]["publicKeyJwk"] == \
        rig.scene.alice.key.public_key.to_jwk()
    assert READS["issuer"](lc, rig)["status"] == "accredited"
    assert READS["vct"](lc, rig)["claims"] == ["given_name"]
    assert READS["status"](lc, rig) == 1  # revoked in the aging block


@pytest.mark.parametrize("fetcher", ["state", "identity"])
def test_a_pass_through_lie_changes_nothing(rig: Rig, fetcher: str) -> None:
    """The proxy machinery itself (parse, re-serialize) keeps honest answers acceptable."""
    rig.tell(lambda reply, kind, fetch: Reply(reply.status, copy.deepcopy(reply.body)),
             frozenset(READS))
    lc = rig.client(fetcher)
    for read in READS.values():
        read(lc, rig)
    assert rig.proxy.applied >= len(READS)


@pytest.mark.parametrize(("fetcher", "kind", "lie"), list(cases()))
def test_every_altered_answer_is_an_error(rig: Rig, fetcher: str, kind: str, lie: Lie) -> None:
    rig.tell(lie, frozenset({kind}))
    with pytest.raises(LightClientError) as info:
        READS[kind](rig.client(fetcher), rig)
    assert not isinstance(info.value, NotFoundError), "the liar convinced the client of an absence"
    assert rig.proxy.applied >= 1, "the lie was never told"


def test_a_lying_node_cannot_unrevoke_a_credential(rig: Rig) -> None:
    """End to end: the verifier over the light client, status bit flipped by the proxy."""
    s = rig.scene
    presentation = s.presentation(s.credential(idx=3))
    for lie, expected in ((None, "revoked"), (_forge(_unrevoke), "status-unavailable")):
        rig.tell(lie, frozenset({"status"}))
        lc = rig.client("identity")
        result = verify_presentation(
            presentation, REQUEST, issuer_keys=LedgerIssuerKeys(lc, clock_ms=rig.now),
            holder_keys=LedgerHolderKeys(lc, clock_ms=rig.now), status=LedgerStatusLists(lc),
            now=rig.now() // 1000)
        assert (result.valid, result.reason) == (False, expected)
