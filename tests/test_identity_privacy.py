"""No personal data on the ledger: a full issuance flow against a node on LevelDB, then every
stored byte is scanned for the credential's claim values.

Flow: trustees accredit an issuer, it publishes its credential type and creates a status list,
the citizen creates a did:imi, the issuer issues an SD-JWT VC with distinctive claims, anchors
it (anchor.put) and suspends then reinstates its status entry; the citizen presents it to the
node's POST /v1/verify (the node sees the disclosed name). Scanned: every LevelDB key and value
(plyvel iteration) and every file of the database directory (.ldb, .log, MANIFEST...), for each
claim value in raw UTF-8 (also case-folded), base64url (all three alignments) and hex forms.
Positive control: the issuer DID and the anchor digest ARE found by the same scan.

The same flow also runs on a real 4-validator devnet (`imi devnet`), and then every file of
every validator's directory (LevelDB, consensus WAL, config) and the node logs are scanned.
"""

from __future__ import annotations

import base64
import functools
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from cli.devnet import Devnet
from identity import did as didmod
from identity.anchors import anchor_digest, new_salt
from identity.http.node_routes import identity_router, verify_router
from identity.ledger_client import NodeClient
from identity.ledger_trust import status_uri
from identity.presentation import present
from identity.sdjwt import HolderBinding, issue
from ledger.keys import SigningKey
from ledger.kv import LevelKV
from node.api.app import create_app
from tests.test_identity_api_scene import LIST_ID, REQUEST, VCT, Scene, build_scene

CLAIMS = {
    "given_name": "Zebulon",
    "family_name": "Quxworthy-Aardvark",
    "birthdate": "1987-03-14",
    "address": {"street_address": "742 Evergreen Terrace Xyzzy", "locality": "Springfieldqux",
                "postal_code": "90210-7731"},
    "national_id": "NID-88412-77193-ZQ",
}
SECRETS = ["Zebulon", "Quxworthy-Aardvark", "1987-03-14", "742 Evergreen Terrace Xyzzy", "Springfieldqux",
           "90210-7731", "NID-88412-77193-ZQ"]
IDX = 21


def b64url_forms(value: bytes) -> list[bytes]:
    """The base64url text of ``value`` as it appears inside any longer encoding: one form per
    alignment (0, 1, 2 bytes before it), keeping only characters wholly inside ``value``."""
    forms = []
    for shift in range(3):
        text = base64.urlsafe_b64encode(b"\0" * shift + value).rstrip(b"=")
        first = -(-8 * shift // 6)  # ceil
        last = (8 * (shift + len(value)) - 6) // 6
        forms.append(text[first:last + 1])
    return forms


def forms(text: str | bytes) -> list[bytes]:
    raw = text.encode("utf-8") if isinstance(text, str) else text
    return [raw, *b64url_forms(raw), raw.hex().encode(), raw.hex().upper().encode()]


def blobs(kv: LevelKV) -> Iterator[tuple[str, bytes]]:
    """Every key and value in the database."""
    for key, value in kv.iterate(b""):
        yield f"key {key[:40]!r}", key
        yield f"value of {key[:40]!r}", value


def files(directory: Path) -> Iterator[tuple[str, bytes]]:
    """Every file under the database directory (tables, logs, manifest), raw."""
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            yield f"file {path.name}", path.read_bytes()


def found(needle: str | bytes, haystack: list[tuple[str, bytes]]) -> list[str]:
    """Where any form of ``needle`` occurs (its raw form also case-insensitively)."""
    variants = forms(needle)
    raw_folded = variants[0].lower()
    return [where for where, data in haystack
            if any(form in data for form in variants) or raw_folded in data.lower()]


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[list[tuple[str, bytes]],
                                                                     list[tuple[str, bytes]], Scene, bytes]]:
    directory = tmp_path_factory.mktemp("leveldb") / "db"
    kv = LevelKV(directory)
    try:
        s = build_scene(kv)  # DIDs, accreditation, vct, status list L1
        credential = s.credential(CLAIMS, idx=IDX)
        digest = anchor_digest(credential, new_salt())
        s.block(s.tx("anchor.put", s.agency.did, {"digests": [digest]}, s.agency.key))
        api = TestClient(create_app(s.node, extra_routers=[
            identity_router, functools.partial(verify_router, clock_ms=s.clock)]))
        verdicts = []
        for status in (2, 0):  # suspend, then reinstate
            s.block(s.tx("status.set", s.agency.did, {"list_id": LIST_ID, "updates": [[IDX, status]]},
                         s.agency.key))
            body = api.post("/v1/verify", json={"presentation": s.presentation(credential),
                                                "request": REQUEST.to_json()}).json()
            verdicts.append((body["valid"], body["reason"]))
        assert verdicts == [(False, "suspended"), (True, None)]  # the node did see the claims
        in_db = list(blobs(kv))
    finally:
        kv.close()
    yield in_db, list(files(directory)), s, digest


@pytest.mark.parametrize("secret", SECRETS)
def test_no_claim_value_is_stored_anywhere(flow: tuple, secret: str) -> None:
    in_db, on_disk, _, _ = flow
    assert found(secret, in_db) == [], f"{secret!r} is in the database"
    assert found(secret, on_disk) == [], f"{secret!r} is in a database file"


def test_the_scan_sees_the_issuer_did_and_the_anchor(flow: tuple) -> None:
    in_db, on_disk, s, digest = flow
    assert len(in_db) > 50 and len(on_disk) >= 3
    for label, haystack in (("database", in_db), ("files", on_disk)):
        assert found(s.agency.did, haystack), f"issuer DID not seen in {label}"
        assert found(digest, haystack), f"anchor digest not seen in {label}"
        assert found(digest.hex(), haystack), f"anchor key (hex) not seen in {label}"


def test_the_base64url_forms_find_a_value_at_every_alignment() -> None:
    value = b"NID-88412-77193-ZQ"
    for prefix in (b"", b"a", b"ab", b"abc"):
        encoded = base64.urlsafe_b64encode(prefix + value + b"tail").rstrip(b"=")
        assert any(form in encoded for form in b64url_forms(value)), prefix


# --- the same flow on a real devnet ----------------------------------------------------------------
def _devnet_flow(net: Devnet) -> tuple[str, bytes]:
    """Run the issuance flow through validator APIs; returns (issuer DID, anchor digest)."""
    apis = [n.api for n in net.nodes()]
    node = NodeClient(apis[0])
    chain_id = node.chain_id()
    trustees = [SigningKey.from_private_jwk(json.loads(p.read_text()))
                for p in sorted((net.dir / "trustees").glob("*.jwk"))[:2]]
    keys = {name: (SigningKey.generate(), SigningKey.generate()) for name in ("alice", "agency")}
    dids = {name: didmod.derive_did(k.public_key.to_jwk(), didmod.key_commitment(n.public_key.to_jwk()))
            for name, (k, n) in keys.items()}
    alice_key, agency_key, agency = keys["alice"][0], keys["agency"][0], dids["agency"]

    def submit(type_: str, sender: str, payload: dict[str, Any], *signers: SigningKey) -> None:
        node.submit(node.build(type_, sender, payload, *signers, chain_id=chain_id))

    for name, (key, nxt) in keys.items():
        submit("did.create", dids[name], {"jwk": dict(key.public_key.to_jwk()),
                                          "next_key_commitment": didmod.key_commitment(nxt.public_key.to_jwk())},
               key)
    submit("gov.issuer_accredit", "gov", {"did": agency, "name": "Agency", "vcts": [VCT]}, *trustees)
    submit("vct.publish", agency, {"vct": VCT, "name": "PID", "claims": sorted(CLAIMS),
                                   "predicates": {"age_equal_or_over": [18]}}, agency_key)
    submit("status.create_list", agency, {"list_id": LIST_ID, "bits": 2, "size": 64}, agency_key)
    now = int(time.time())
    credential = issue(CLAIMS, issuer_key=agency_key, iss=agency, vct=VCT, holder=HolderBinding(kid=dids["alice"]),
                       iat=now, status={"status_list": {"idx": IDX, "uri": status_uri(LIST_ID)}},
                       kid=f"{agency}#{agency_key.key_id}", predicates={"age_equal_or_over": [18]}).serialize()
    digest = anchor_digest(credential, new_salt())
    submit("anchor.put", agency, {"digests": [digest]}, agency_key)
    verdicts = []
    with httpx.Client(timeout=30) as http:
        for status, api in ((2, apis[1]), (0, apis[2])):
            submit("status.set", agency, {"list_id": LIST_ID, "updates": [[IDX, status]]}, agency_key)
            presentation = present(credential, REQUEST.paths_to_disclose(), holder_key=alice_key,
                                   nonce=REQUEST.nonce, aud=REQUEST.aud, iat=int(time.time()))
            body = http.post(f"{api}/v1/verify", json={"presentation": presentation,
                                                       "request": REQUEST.to_json()}).json()
            verdicts.append((body.get("valid"), body.get("reason")))
        assert verdicts == [(False, "suspended"), (True, None)], verdicts
        _wait_all_at(http, apis, int(http.get(f"{apis[0]}/health").json()["height"]))
    node.close()
    return agency, digest


def _wait_all_at(http: httpx.Client, apis: list[str], height: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while min(int(http.get(f"{api}/health").json()["height"]) for api in apis) < height:
        assert time.monotonic() < deadline, f"validators did not all reach height {height}"
        time.sleep(0.2)


@pytest.mark.xdist_group("devnet")
def test_devnet_validators_store_no_claim_values(tmp_path: Path) -> None:
    net = Devnet(tmp_path / "devnet")
    try:
        net.up(4, heartbeat_ms=500)
        issuer, digest = _devnet_flow(net)
    finally:
        net.down()
    logs = list(files(net.dir / "logs"))
    assert logs, "no node logs to scan"
    for info in net.nodes():
        stored = list(files(info.node_dir))
        for secret in SECRETS:
            assert found(secret, stored) == [], f"{secret!r} stored by {info.name}"
            assert found(secret, logs) == [], f"{secret!r} in the node logs"
        assert found(issuer, stored), f"scan of {info.name} does not see the issuer DID"
        assert found(digest, stored), f"scan of {info.name} does not see the anchor digest"
