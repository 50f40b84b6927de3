"""The audit follows a certified validator-set change, fetching the new set by height and
re-checking its hash; a node serving another set is caught at the block that names the change."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from cli.audit import AuditError, audit_chain
from ledger.block import BlockHeader
from ledger.encoding import encode
from ledger.keys import b64url_encode
from ledger.validators import ValidatorSet
from tests.factories import Consortium, certify, consortium, header


class _ChainServer:
    """A :class:`cli.audit.ChainSource` over blocks built in memory: genesis set c, then ``new`` from block 2."""

    def __init__(self, c: Consortium, new: Consortium, blocks: int = 3, served_new: ValidatorSet | None = None) -> None:
        self.c, self.new, self.served_new = c, new, served_new or new.validators
        self.answers: list[dict[str, Any]] = []
        prev = c.genesis.hash
        for height in range(1, blocks + 1):
            members = c if height == 1 else new
            hdr = header(members, height, prev)
            if height == 1:
                hdr = BlockHeader(**{**{k: getattr(hdr, k) for k in hdr.to_json() if k != "hash"},
                                     "next_validator_set_hash": new.validators.hash})
            self.answers.append({"hash": hdr.hash.hex(), "header": hdr.to_json(),
                                 "certificate": certify(members, hdr).to_json(), "txs": []})
            prev = hdr.hash
        self.asked_sets: list[int] = []

    def latest_block(self) -> Mapping[str, Any]:
        return self.answers[-1]

    def block(self, height: int) -> Mapping[str, Any]:
        return self.answers[height - 1]

    def transaction(self, tx_id_hex: str) -> Mapping[str, Any]:
        raise AssertionError("no transactions in this chain")

    def validators(self, height: int) -> Mapping[str, Any]:
        self.asked_sets.append(height)
        served = self.c.validators if height == 1 else self.served_new
        return {"height": height, "value": b64url_encode(encode(served.to_value()))}

    def consistency(self, from_height: int, to_height: int) -> Mapping[str, Any]:
        return {"from_size": 0, "to_size": 0, "hashes": []}


def test_audit_follows_a_validator_set_change() -> None:
    c, new = consortium(), consortium(seed=3)
    server = _ChainServer(c, new)
    report = audit_chain(c.genesis, server)
    assert report.blocks == 3 and report.validator_set_changes == 1
    assert server.asked_sets == [2]  # the set certifying the height after the announcing block
    assert report.head_hash == server.answers[-1]["hash"]


def test_a_node_serving_another_validator_set_is_caught_at_the_announcing_block() -> None:
    c, new = consortium(), consortium(seed=3)
    server = _ChainServer(c, new, served_new=consortium(seed=9).validators)
    with pytest.raises(AuditError) as caught:
        audit_chain(c.genesis, server)
    assert (caught.value.height, caught.value.reason) == (1, "unknown-validator-set")


def test_blocks_after_a_change_signed_by_the_old_set_are_refused() -> None:
    c, new = consortium(), consortium(seed=3)
    server = _ChainServer(c, new)
    hdr = BlockHeader.from_json(server.answers[2]["header"])
    server.answers[2]["certificate"] = certify(c, hdr).to_json()  # the old set signs block 3
    with pytest.raises(AuditError) as caught:
        audit_chain(c.genesis, server)
    assert (caught.value.height, caught.value.reason) == (3, "unknown-signer")
