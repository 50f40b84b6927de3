"""Catch-up: blocks fetched from a peer are verified (certificate, roots) before they are stored."""

from __future__ import annotations

import asyncio

from ledger.block import certify
from ledger.encoding import Value
from ledger.keys import SigningKey
from node.application import LedgerApplication
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
    client.on_status("server", ahead.height())
    return client


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
