"""Catch-up: blocks fetched from a peer are verified (certificate, roots) before they are stored."""

from __future__ import annotations

import asyncio

import pytest

from ledger.block import certify
from ledger.encoding import Value
from ledger.keys import SigningKey
from node import sync as sync_module
from node.application import LedgerApplication
from node.constants import SYNC_PEER_BACKOFF_MS_MIN
from node.sync import Syncer
from tests.test_node_application import _app, _genesis, _note


def _chain(keys: list[SigningKey], heights: int) -> tuple[LedgerApplication, LedgerApplication]:
    """A validator that committed ``heights`` blocks, and a fresh one of the same chain."""
    genesis = _genesis(keys)
    apps = {k.key_id: _app(genesis, k) for k in keys}
    for height in range(1, heights + 1):
        inactive = next(iter(apps.values())).inactive_at(height)  # keys[3] never signs: skipped at round 0
        proposer = apps[genesis.validators.proposer(height, 0, inactive).key_id]
        assert proposer.mempool is not None
        proposer.mempool.add(_note())
        block = proposer.build_block(height, 0)
        certificate = certify(block.header, keys[:3])
        for app in apps.values():
            app.apply_committed(block, certificate)
    fresh = _app(genesis, SigningKey.generate())
    return next(iter(apps.values())), fresh


def _wire(ahead: LedgerApplication, behind: LedgerApplication, *, tamper: bool = False) -> Syncer:
    """Two syncers talking through direct calls instead of the transport."""
    server: Syncer
    client: Syncer

    def to_server(peer: str, value: Value) -> None:
        assert isinstance(value, dict)
        asyncio.get_running_loop().call_soon(server.on_request, "client", value["from"], value["count"])

    def to_client(peer: str, value: Value) -> None:
        assert isinstance(value, dict)
        blocks = value["blocks"]
        if tamper and isinstance(blocks, list) and blocks:
            cert = blocks[0][1]  # type: ignore[index]
            cert["sigs"] = cert["sigs"][:1]  # type: ignore[index]  # below quorum
        asyncio.get_running_loop().call_soon(client.on_response, "server", blocks)

    server = Syncer(ahead, to_client)
    client = Syncer(behind, to_server)
    _announce(server, client, "server")
    return client


def _announce(server: Syncer, client: Syncer, name: str) -> None:
    """``server``'s status frame, as ``client`` receives it from peer ``name``."""
    frame = server.announcement()
    assert isinstance(frame, dict)
    client.on_status(name, frame["height"], frame.get("head"))


def test_catch_up_fetches_verifies_and_applies_every_block() -> None:
    keys = [SigningKey.generate() for _ in range(4)]
    ahead, behind = _chain(keys, 5)
    client = _wire(ahead, behind)
    applied = asyncio.run(client.catch_up())
    assert applied == 5
    assert behind.store.head() == ahead.store.head()
    assert behind.store.state_reader().root == ahead.store.state_reader().root


def test_blocks_with_a_bad_certificate_are_not_stored() -> None:
    keys = [SigningKey.generate() for _ in range(4)]
    ahead, behind = _chain(keys, 3)
    client = _wire(ahead, behind, tamper=True)
    assert asyncio.run(client.catch_up()) == 0
    assert behind.store.height() == 0


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_height_claim_without_a_certificate_is_not_believed() -> None:
    """Regression (issue 19): a bare high claim made every validator pause and chase it."""
    keys = [SigningKey.generate() for _ in range(4)]
    ahead, behind = _chain(keys, 3)
    syncer = Syncer(behind, lambda peer, value: None)
    head = Syncer(ahead, lambda peer, value: None).announcement()
    assert isinstance(head, dict) and isinstance(head["head"], list)
    header, cert = head["head"]
    assert isinstance(header, dict)
    lies: list[tuple[int, object]] = [
        (10**6, None),  # a bare number
        (10**6, head["head"]),  # a real certified header, of another height
        (10**6, [{**header, "height": 10**6}, cert]),  # the header altered: the certificate no longer matches
        (3, [header, {**cert, "sigs": cert["sigs"][:1]}]),  # below quorum  # type: ignore[index]
    ]
    for number, (height, proof) in enumerate(lies):
        syncer.on_status(f"liar{number}", height, proof)
        assert syncer.lag() == 0, (number, syncer.live_heights())
    assert syncer.unproven_claims == len(lies)
    syncer.on_status("honest", 3, head["head"])
    assert syncer.lag() == 3


def test_an_unproven_height_counts_only_up_to_what_more_than_f_power_claims() -> None:
    keys = [SigningKey.generate() for _ in range(4)]
    _, behind = _chain(keys, 0)
    syncer = Syncer(behind, lambda peer, value: None)
    syncer.on_status(keys[1].key_id, 9)  # f = 1: one validator's word is not enough
    assert syncer.lag() == 0
    syncer.on_status(keys[2].key_id, 5)  # two of four: at least one of them is honest
    assert syncer.live_heights() == {keys[1].key_id: 5, keys[2].key_id: 5}
    assert syncer.lag() == 5


def test_a_peer_that_failed_a_catch_up_is_not_asked_again_until_its_backoff_ends(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression (issue 19): bad peers were forgotten between catch-ups, so a silent peer
    cost a full request timeout every 0.5 s."""
    monkeypatch.setattr(sync_module, "SYNC_REQUEST_TIMEOUT_MS", 20)
    keys = [SigningKey.generate() for _ in range(4)]
    ahead, behind = _chain(keys, 2)
    asked: list[str] = []
    clock = _Clock()
    client = Syncer(behind, lambda peer, value: asked.append(peer), clock=clock)  # nobody answers
    _announce(Syncer(ahead, lambda peer, value: None), client, "silent")
    paused: list[int] = []
    assert asyncio.run(client.catch_up(before_apply=lambda: paused.append(1))) == 0
    assert asked == ["silent"] and client.peer_failures == 1
    assert paused == []  # never paused on the claim alone
    for _ in range(3):
        assert asyncio.run(client.catch_up()) == 0
    assert asked == ["silent"]
    assert client.lag() == 0  # a peer backing off does not make us lag
    clock.now += SYNC_PEER_BACKOFF_MS_MIN / 1000 + 0.1
    _announce(Syncer(ahead, lambda peer, value: None), client, "silent")
    asyncio.run(client.catch_up())
    assert asked == ["silent", "silent"]
    clock.now += SYNC_PEER_BACKOFF_MS_MIN / 1000 + 0.1  # the backoff doubled: still not due
    _announce(Syncer(ahead, lambda peer, value: None), client, "silent")
    asyncio.run(client.catch_up())
    assert asked == ["silent", "silent"]


def test_consensus_is_paused_only_with_a_verified_block_in_hand() -> None:
    keys = [SigningKey.generate() for _ in range(4)]
    ahead, behind = _chain(keys, 4)
    client = _wire(ahead, behind)
    heights_at_pause: list[int] = []
    applied = asyncio.run(client.catch_up(before_apply=lambda: heights_at_pause.append(behind.height())))
    assert applied == 4
    assert heights_at_pause == [0]  # once, before the first block was stored
