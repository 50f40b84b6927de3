"""Transactions, headers, votes and commit certificates."""

from __future__ import annotations

import pytest

from ledger import block as block_module
from ledger.block import Block, BlockHeader, CommitCertificate, Vote
from ledger.encoding import decode, encode
from ledger.errors import (
    BlockError,
    CertificateError,
    ReplayError,
    SignatureError,
    TransactionError,
    UnknownFieldError,
)
from ledger.genesis import Genesis
from ledger.keys import SigningKey
from ledger.tx import Transaction
from tests.factories import CHAIN_ID, block, certify, consortium, header, note_tx


def test_transaction_round_trips_through_bytes_and_base64url_with_the_same_id() -> None:
    tx = note_tx()
    assert Transaction.from_bytes(tx.to_bytes()) == tx
    assert Transaction.from_b64(tx.to_b64()).tx_id == tx.tx_id
    tx.check_stateless(CHAIN_ID)


def test_transaction_id_covers_every_body_field_but_not_signatures() -> None:
    key = SigningKey.generate()
    base = Transaction.create(chain_id=CHAIN_ID, type="test.note", sender="s", payload={"data": b"x"},
                              expires_at_ms=10, nonce=bytes(16))
    variants = [
        Transaction.create(chain_id="other", type="test.note", sender="s", payload={"data": b"x"}, expires_at_ms=10, nonce=bytes(16)),
        Transaction.create(chain_id=CHAIN_ID, type="test.other", sender="s", payload={"data": b"x"}, expires_at_ms=10, nonce=bytes(16)),
        Transaction.create(chain_id=CHAIN_ID, type="test.note", sender="t", payload={"data": b"x"}, expires_at_ms=10, nonce=bytes(16)),
        Transaction.create(chain_id=CHAIN_ID, type="test.note", sender="s", payload={"data": b"y"}, expires_at_ms=10, nonce=bytes(16)),
        Transaction.create(chain_id=CHAIN_ID, type="test.note", sender="s", payload={"data": b"x"}, expires_at_ms=11, nonce=bytes(16)),
        Transaction.create(chain_id=CHAIN_ID, type="test.note", sender="s", payload={"data": b"x"}, expires_at_ms=10, nonce=b"\x01" * 16),
    ]
    assert len({v.tx_id for v in variants} | {base.tx_id}) == len(variants) + 1
    assert base.sign(key).tx_id == base.tx_id


def test_tampered_payload_breaks_the_signature() -> None:
    tx = note_tx()
    value = tx.to_value()
    value["payload"] = {"data": b"evil"}
    forged = Transaction.from_value(value)
    with pytest.raises(SignatureError):
        forged.check_stateless(CHAIN_ID)


@pytest.mark.parametrize("mutate, error", [
    (lambda v: v.update(extra=1), UnknownFieldError),
    (lambda v: v.pop("nonce"), TransactionError),
    (lambda v: v.update(v=2), TransactionError),
    (lambda v: v.update(expires_at_ms="soon"), TransactionError),
    (lambda v: v.update(expires_at_ms=True), TransactionError),
    (lambda v: v["sigs"][0].update(extra=b""), UnknownFieldError),
    (lambda v: v["sigs"][0]["jwk"].update(d="secret"), UnknownFieldError),
])
def test_malformed_transaction_values_are_rejected(mutate, error) -> None:  # type: ignore[no-untyped-def]
    value = decode(note_tx().to_bytes())
    mutate(value)
    with pytest.raises(error):
        Transaction.from_bytes(encode(value))


def test_stateless_checks_reject_wrong_chain_unsigned_duplicate_signer_and_bad_nonce() -> None:
    key = SigningKey.generate()
    unsigned = Transaction.create(chain_id=CHAIN_ID, type="test.note", sender="s", payload={}, expires_at_ms=10)
    with pytest.raises(TransactionError) as wrong_chain:
        unsigned.sign(key).check_stateless("elsewhere")
    assert wrong_chain.value.reason == "wrong-chain"
    with pytest.raises(SignatureError) as missing:
        unsigned.check_stateless(CHAIN_ID)
    assert missing.value.reason == "missing-signature"
    with pytest.raises(SignatureError) as twice:
        unsigned.sign(key, key).check_stateless(CHAIN_ID)
    assert twice.value.reason == "duplicate-signature"
    short = Transaction.create(chain_id=CHAIN_ID, type="test.note", sender="s", payload={}, expires_at_ms=10, nonce=b"1").sign(key)
    with pytest.raises(TransactionError):
        short.check_stateless(CHAIN_ID)
    with pytest.raises(TransactionError):
        Transaction.create(chain_id=CHAIN_ID, type="Bad Type", sender="s", payload={}, expires_at_ms=10).sign(key).check_stateless(CHAIN_ID)


def test_expiry_window_is_enforced_against_block_time() -> None:
    tx = note_tx(expires_at_ms=1_000)
    tx.check_expiry(999)
    with pytest.raises(ReplayError):
        tx.check_expiry(1_000)
    with pytest.raises(TransactionError):
        note_tx(expires_at_ms=10**13).check_expiry(0)


def test_oversized_transaction_bytes_are_rejected_before_decoding() -> None:
    with pytest.raises(TransactionError) as exc:
        Transaction.from_bytes(b"\x00" * (64 * 1024 + 1))
    assert exc.value.reason == "too-large"


def test_parsing_the_same_bytes_again_reuses_the_parse_and_failures_are_not_remembered() -> None:
    tx = note_tx()
    raw = tx.to_bytes()
    first = Transaction.from_bytes(bytes(raw))
    assert Transaction.from_bytes(bytearray(raw)) is first and first == tx
    bad = raw[:-1] + bytes([raw[-1] ^ 1])  # expires_at_ms changed: canonical, signature now wrong
    for _ in range(2):
        parsed = Transaction.from_bytes(bad)
        with pytest.raises(SignatureError):
            parsed.check_stateless(CHAIN_ID)
    with pytest.raises(TransactionError):
        Transaction.from_bytes(raw + b"\x00")  # trailing byte: rejected each time, never cached
    with pytest.raises(TransactionError):
        Transaction.from_bytes(raw + b"\x00")


def test_parse_memo_is_bounded_by_the_named_limits() -> None:
    from ledger.constants import TX_PARSE_MEMO_BYTES_MAX, TX_PARSE_MEMO_ENTRIES_MAX
    from ledger.tx import _PARSED

    assert (_PARSED.entries_max, _PARSED.weight_max) == (TX_PARSE_MEMO_ENTRIES_MAX, TX_PARSE_MEMO_BYTES_MAX)
    raw = note_tx().to_bytes()
    parsed = Transaction.from_bytes(raw)
    assert _PARSED.peek(raw) is parsed  # kept by its exact bytes
    assert _PARSED.weight <= TX_PARSE_MEMO_BYTES_MAX and len(_PARSED) <= TX_PARSE_MEMO_ENTRIES_MAX


def test_block_carries_each_transaction_as_its_canonical_bytes() -> None:
    c = consortium()
    txs = (note_tx(), note_tx())
    blk = block(c, 1, c.genesis.hash, txs)
    value = decode(blk.to_bytes())
    assert value["txs"] == [tx.to_bytes() for tx in txs]
    assert Block.from_value(value) == blk
    with pytest.raises(BlockError):  # a transaction as a map, not bytes: refused
        Block.from_value({"header": value["header"], "txs": [tx.to_value() for tx in txs]})
    with pytest.raises(BlockError):  # bytes that are not a canonical transaction
        Block.from_value({"header": value["header"], "txs": [txs[0].to_bytes() + b"\x00"]})


def test_header_round_trips_and_its_hash_covers_every_field() -> None:
    c = consortium()
    hdr = header(c, 1, c.genesis.hash)
    assert BlockHeader.from_value(decode(encode(hdr.to_value()))) == hdr
    assert BlockHeader.from_json(hdr.to_json()) == hdr
    tampered = hdr.to_json()
    tampered["time_ms"] += 1
    with pytest.raises(BlockError):
        BlockHeader.from_json(tampered)  # the carried hash no longer matches
    del tampered["hash"]
    assert BlockHeader.from_json(tampered).hash != hdr.hash


def test_block_body_must_match_tx_root_and_count() -> None:
    c = consortium()
    txs = (note_tx(), note_tx())
    good = block(c, 1, c.genesis.hash, txs)
    good.check_body()
    with pytest.raises(BlockError):
        Block(good.header, txs[:1]).check_body()
    with pytest.raises(BlockError):
        Block(good.header, (txs[1], txs[0])).check_body()


def test_block_body_is_checked_once_per_object_and_a_failure_is_not_remembered(
        monkeypatch: pytest.MonkeyPatch) -> None:
    c = consortium()
    txs = (note_tx(), note_tx())
    good = block(c, 1, c.genesis.hash, txs)
    roots = []
    real = block_module.merkle_root
    monkeypatch.setattr(block_module, "merkle_root", lambda leaves: roots.append(1) or real(leaves))
    good.check_body()
    good.check_body()
    assert len(roots) == 1  # the second check answered from the memo
    Block(good.header, txs).check_body()
    assert len(roots) == 2  # an equal block is another object: checked in full
    bad = Block(good.header, (txs[1], txs[0]))
    for _ in range(2):
        with pytest.raises(BlockError):
            bad.check_body()
    assert len(roots) == 4


def test_certificate_with_a_quorum_verifies_and_round_trips() -> None:
    c = consortium()
    hdr = header(c, 1, c.genesis.hash)
    cert = certify(c, hdr, signers=3)
    cert.verify(hdr, c.validators)
    assert CommitCertificate.from_value(decode(encode(cert.to_value()))) == cert
    CommitCertificate.from_json(cert.to_json()).verify(hdr, c.validators)


def test_certificate_with_two_thirds_or_less_is_rejected() -> None:
    c = consortium()
    hdr = header(c, 1, c.genesis.hash)
    with pytest.raises(CertificateError) as exc:
        certify(c, hdr, signers=2).verify(hdr, c.validators)
    assert exc.value.reason == "insufficient-quorum"


def test_certificate_rejects_unknown_signers_duplicates_forgeries_and_other_blocks() -> None:
    c = consortium()
    other = consortium(seed=1)
    hdr = header(c, 1, c.genesis.hash)
    cert = certify(c, hdr)
    stranger = certify(other, header(other, 1, other.genesis.hash))
    reasons = {}
    cases = {
        "unknown": CommitCertificate(cert.chain_id, 1, 0, hdr.hash, cert.signatures[:2] + stranger.signatures[:2]),
        "duplicate": CommitCertificate(cert.chain_id, 1, 0, hdr.hash, cert.signatures[:2] + cert.signatures[:1]),
        "forged": CommitCertificate(cert.chain_id, 1, 0, hdr.hash,
                                    cert.signatures[:2] + ((cert.signatures[2][0], bytes(64)),)),
        "other-block": certify(c, header(c, 1, c.genesis.hash, time_ms=5)),
    }
    for name, bad in cases.items():
        with pytest.raises(CertificateError) as exc:
            bad.verify(hdr, c.validators)
        reasons[name] = exc.value.reason
    assert reasons == {"unknown": "unknown-signer", "duplicate": "duplicate-signer",
                       "forged": "bad-certificate-signature", "other-block": "certificate-mismatch"}
    with pytest.raises(CertificateError):
        cert.verify(hdr, other.validators)


def test_a_verified_certificate_is_remembered_and_a_failed_one_is_not(monkeypatch: pytest.MonkeyPatch) -> None:
    from ledger.keys import PublicKey

    c = consortium(seed=7)
    hdr = header(c, 1, c.genesis.hash, time_ms=7_777)
    cert = certify(c, hdr)
    forged = CommitCertificate(cert.chain_id, 1, 0, hdr.hash, cert.signatures[:2] + ((cert.signatures[2][0], bytes(64)),))
    checks = []
    real = PublicKey.verify
    monkeypatch.setattr(PublicKey, "verify", lambda self, m, s: checks.append(1) or real(self, m, s))
    cert.verify(hdr, c.validators)
    first = len(checks)
    assert first >= 3
    cert.verify(hdr, c.validators)  # the same certificate, header and set: no signature checked again
    assert len(checks) == first
    for _ in range(2):  # a failure is never remembered: checked (and refused) every time
        before = len(checks)
        with pytest.raises(CertificateError):
            forged.verify(hdr, c.validators)
        assert len(checks) > before
    with pytest.raises(CertificateError):  # remembered for this set only
        cert.verify(hdr, consortium(seed=8).validators)
    # The set owns the memo, bounded by its named limit; a copy of the set starts empty.
    from ledger.constants import CERTIFICATES_VERIFIED_MAX
    from ledger.validators import ValidatorSet

    assert (cert, hdr.hash) in c.validators.certified
    assert c.validators.certified.entries_max == CERTIFICATES_VERIFIED_MAX
    copy = ValidatorSet.of(c.validators.validators)
    before = len(checks)
    cert.verify(hdr, copy)
    assert len(checks) > before and (cert, hdr.hash) in copy.certified


def test_a_caller_signature_hook_checks_every_precommit_and_nothing_is_remembered_for_it() -> None:
    c = consortium(seed=9)
    hdr = header(c, 1, c.genesis.hash, time_ms=9_999)
    cert = certify(c, hdr)
    asked: list[Vote] = []

    def accept(key: object, vote: Vote) -> bool:
        asked.append(vote)
        return True

    cert.verify(hdr, c.validators)  # remembered for the default check ...
    cert.verify(hdr, c.validators, accept)  # ... yet a hook of the caller's is asked anyway
    assert [(v.validator, v.signature, v.kind) for v in asked] == [(k, s, "precommit") for k, s in cert.signatures]
    with pytest.raises(CertificateError) as exc:
        cert.verify(hdr, c.validators, lambda key, vote: vote.validator != cert.signatures[1][0])
    assert exc.value.reason == "bad-certificate-signature"
    forged = CommitCertificate(cert.chain_id, 1, 0, hdr.hash, ((cert.signatures[0][0], bytes(64)),) + cert.signatures[1:])
    forged.verify(hdr, c.validators, accept)  # the hook decides the signatures ...
    with pytest.raises(CertificateError):
        forged.verify(hdr, c.validators)  # ... and its answer was not remembered for the default


def test_check_header_is_the_binding_part_of_verify() -> None:
    c = consortium()
    hdr = header(c, 1, c.genesis.hash)
    cert = certify(c, hdr, signers=1)  # no quorum: check_header does not look at signatures
    cert.check_header(hdr)
    for other in (header(c, 1, c.genesis.hash, time_ms=5), header(c, 2, hdr.hash)):
        with pytest.raises(CertificateError) as exc:
            cert.check_header(other)
        assert exc.value.reason == "certificate-mismatch"


def test_certify_signs_the_headers_precommit_with_each_key_in_key_id_order() -> None:
    c = consortium()
    hdr = header(c, 1, c.genesis.hash)
    keys = list(c.keys.values())
    cert = block_module.certify(hdr, reversed(keys[:3]))
    assert (cert.chain_id, cert.height, cert.round, cert.block_hash) == (CHAIN_ID, 1, hdr.round, hdr.hash)
    assert [k for k, _ in cert.signatures] == sorted(k.key_id for k in keys[:3])
    cert.verify(hdr, c.validators)
    with pytest.raises(CertificateError):
        block_module.certify(hdr, keys[:2]).verify(hdr, c.validators)


def test_vote_signature_binds_every_field() -> None:
    c = consortium()
    vid, key = next(iter(c.keys.items()))
    vote = Vote(CHAIN_ID, 3, 1, "prevote", bytes(32), vid).signed(key)
    assert vote.verify(c.validators)
    assert Vote.from_value(decode(encode(vote.to_value()))) == vote
    for changed in (Vote(CHAIN_ID, 3, 2, "prevote", bytes(32), vid, vote.signature),
                    Vote(CHAIN_ID, 3, 1, "precommit", bytes(32), vid, vote.signature),
                    Vote(CHAIN_ID, 3, 1, "prevote", None, vid, vote.signature)):
        assert not changed.verify(c.validators)


def test_genesis_json_round_trips_and_detects_tampering() -> None:
    c = consortium()
    again = Genesis.loads(c.genesis.dumps())
    assert again.hash == c.genesis.hash
    obj = c.genesis.to_json()
    obj["trustee_threshold"] = 1
    with pytest.raises(BlockError):
        Genesis.from_json(obj)
    with pytest.raises(BlockError):
        Genesis.loads("{not json")
