"""No personal data on the ledger: a full issuance flow against a node on LevelDB, then every
stored byte is scanned for the credential's claim values.

Flow: trustees accredit an issuer, it publishes its credential type and creates a status list,
the citizen creates a did:imi, the issuer issues an SD-JWT VC with distinctive claims, anchors
it (anchor.put) and suspends then reinstates its status entry; the citizen presents it to the
node's POST /v1/verify (the node sees the disclosed name). Scanned: every LevelDB key and value
(plyvel iteration) and every file of the database directory (.ldb, .log, MANIFEST...), for each
claim value in raw UTF-8 (also case-folded), base64url (all three alignments) and hex forms.
Positive control: the issuer DID and the anchor digest ARE found by the same scan.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from identity.anchors import anchor_digest, new_salt
from identity.api import identity_router, verify_router
from ledger.storage import LevelKV
from node.api import create_app
from tests.test_identity_api_scene import LIST_ID, REQUEST, Scene, build_scene

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
