"""Parallel catch-up: ranges asked of several peers at once, answers in any order, bad and
silent peers replaced, a validator set that changes inside a range, batched atomic writes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from ledger.block import certify
from ledger.encoding import Value
from ledger.errors import CertificateError
from ledger.execution import genesis_state
from ledger.genesis import DEFAULT_POLICY, Genesis
from ledger.keys import SigningKey
from ledger.storage import LedgerStore
from ledger.tx import Transaction
from ledger.validators import Validator, ValidatorSet
from node import sync as sync_module
from node.application import LedgerApplication
from node.mempool import Mempool
from node.sync import Syncer
from tests.sim.app import VALSET_TX_TYPE, make_executor
from tests.test_storage_ledger import CountingKV

CHAIN = "sync-parallel-test"


def _now() -> int:
    return int(time.time() * 1000)


def _members(keys: list[SigningKey]) -> ValidatorSet:
    return ValidatorSet.of(Validator(f"v{i}", k.public_key, 1, f"127.0.0.1:{9000 + i}", bytes(32))
                           for i, k in enumerate(keys))


def _app(genesis: Genesis, trustee: SigningKey) -> LedgerApplication:
    store = LedgerStore(CountingKV())
    store.initialize(genesis, genesis_state(genesis))
    executor = make_executor(CHAIN, trustee.key_id)
    pool = Mempool(executor, state=lambda: store.state_reader(), next_height=lambda: store.height() + 1,
                   is_committed=store.has_tx, now_ms=_now)
    return LedgerApplication(store=store, executor=executor, genesis=genesis, mempool=pool,
                             my_key_id="", now_ms=_now)


def _note(number: int) -> Transaction:
    key = SigningKey.generate()
    return Transaction.create(chain_id=CHAIN, type="test.note", sender=key.key_id,
                              payload={"data": number.to_bytes(4, "big")}, expires_at_ms=_now() + 60_000).sign(key)


class _Chain:
    """A chain of ``heights`` blocks of a few notes; with ``change_at``, the trustee's
    transaction in that block replaces the fourth validator by a new key (effective a
    few heights later), and later blocks are signed by the new set."""

    def __init__(self, heights: int, change_at: int | None = None) -> None:
        self.keys = [SigningKey.generate() for _ in range(4)]
        self.newcomer = SigningKey.generate()
        self.trustee = SigningKey.generate()
        self.genesis = Genesis(CHAIN, _now() - 1000, _members(self.keys), (self.trustee.public_key,), 1,
                               dict(DEFAULT_POLICY))
        self.ahead = _app(self.genesis, self.trustee)
        app = self.ahead
        assert app.mempool is not None
        for height in range(1, heights + 1):
            validators = app.validators_at(height)
            app.my_key_id = validators.proposer(height, 0, app.inactive_at(height)).key_id
            for number in range(3):
                app.mempool.add(_note(height * 10 + number))
            if height == change_at:
                new_set = _members([*self.keys[:3], self.newcomer])
                app.mempool.add(Transaction.create(
                    chain_id=CHAIN, type=VALSET_TX_TYPE, sender=self.trustee.key_id,
                    payload={"set": new_set.to_value()}, expires_at_ms=_now() + 60_000).sign(self.trustee))
            block = app.build_block(height, 0)
            signers = [k for k in [*self.keys, self.newcomer] if validators.get(k.key_id) is not None][-3:]
            app.apply_committed(block, certify(block.header, signers))

    def fresh(self) -> LedgerApplication:
        return _app(self.genesis, self.trustee)


class _Net:
    """One client syncer and server syncers over ``chain.ahead``, talking through the event
    loop: per-peer answer delays, peers that never answer, peers that tamper."""

    def __init__(self, chain: _Chain, behind: LedgerApplication, peers: list[str], *,
                 delay_s: dict[str, float] | None = None, silent: frozenset[str] = frozenset(),
                 tamper: dict[str, Callable[[list[Value]], None]] | None = None) -> None:
        self.delay_s = delay_s or {}
        self.silent, self.tamper = silent, tamper or {}
        self.asked: list[tuple[str, int, int]] = []
        self.answered: list[tuple[str, int]] = []  # (peer, from) in the order the client got them
        self.servers = {p: Syncer(chain.ahead, self._answer_from(p)) for p in peers}
        self.client = Syncer(behind, self._ask)
        for peer, server in self.servers.items():
            frame = server.announcement()
            assert isinstance(frame, dict)
            self.client.on_status(peer, frame["height"], frame.get("head"))

    def _ask(self, peer: str, value: Value) -> None:
        assert isinstance(value, dict) and value["t"] == "sync_req"
        start, count = value["from"], value["count"]
        assert isinstance(start, int) and isinstance(count, int)
        self.asked.append((peer, start, count))
        if peer not in self.silent:
            asyncio.get_running_loop().call_soon(self.servers[peer].on_request, "client", start, count)

    def _answer_from(self, peer: str) -> Callable[[str, Value], None]:
        def send(_: str, value: Value) -> None:
            assert isinstance(value, dict)
            blocks, start = value["blocks"], value["from"]
            assert isinstance(blocks, list) and isinstance(start, int)
            if peer in self.tamper:
                blocks = _plain(blocks)
                self.tamper[peer](blocks)

            def deliver() -> None:
                self.answered.append((peer, start))
                self.client.on_response(peer, blocks, start)

            asyncio.get_running_loop().call_later(self.delay_s.get(peer, 0.0), deliver)
        return send


def _plain(blocks: list[Value]) -> list[Value]:
    """An answer's pairs as plain (mutable) values, as a peer would put on the wire."""
    from ledger.encoding import decode, encode
    decoded = decode(encode(blocks))
    assert isinstance(decoded, list)
    return decoded


@pytest.fixture()
def small_ranges(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ranges of two blocks and batches of three, so a short chain makes many of each."""
    monkeypatch.setattr(sync_module, "SYNC_BLOCKS_PER_REQUEST_MAX", 2)
    monkeypatch.setattr(sync_module, "SYNC_BATCH_BLOCKS_MAX", 3)


def _same_chain(a: LedgerApplication, b: LedgerApplication) -> None:
    assert a.store.height() == b.store.height()
    assert a.store.head() == b.store.head()
    assert a.store.state_reader().root == b.store.state_reader().root


@pytest.mark.usefixtures("small_ranges")
def test_ranges_go_to_several_peers_at_once_and_answers_out_of_order_are_applied_in_order() -> None:
    chain = _Chain(14)
    behind = chain.fresh()
    net = _Net(chain, behind, ["slow", "fast1", "fast2"], delay_s={"slow": 0.05})
    applied = asyncio.run(net.client.catch_up())
    assert applied == 14
    _same_chain(behind, chain.ahead)
    assert {peer for peer, _, _ in net.asked} == {"slow", "fast1", "fast2"}
    starts = [start for _, start in net.answered]
    assert starts != sorted(starts)  # later ranges arrived before earlier ones
    assert net.client.peer_failures == 0 and net.client.blocks_synced == 14
    assert net.client.target_height == 14 and net.client.tx_per_s > 0


@pytest.mark.usefixtures("small_ranges")
def test_a_peer_sending_bad_certificates_is_backed_off_and_its_ranges_are_asked_of_others() -> None:
    chain = _Chain(10)
    behind = chain.fresh()

    def below_quorum(blocks: list[Value]) -> None:
        for pair in blocks:
            pair[1]["sigs"] = pair[1]["sigs"][:1]  # type: ignore[index,call-overload]

    net = _Net(chain, behind, ["liar", "honest1", "honest2"], tamper={"liar": below_quorum})
    assert asyncio.run(net.client.catch_up()) == 10
    _same_chain(behind, chain.ahead)
    assert net.client.backing_off("liar") and net.client.peer_failures >= 1
    assert not net.client.backing_off("honest1") and not net.client.backing_off("honest2")
    assert ("liar", 1, 2) in net.asked or any(p == "liar" for p, _, _ in net.asked)


@pytest.mark.usefixtures("small_ranges")
def test_a_peer_answering_other_heights_is_backed_off() -> None:
    chain = _Chain(6)
    behind = chain.fresh()

    def shifted(blocks: list[Value]) -> None:
        blocks.reverse()  # the right blocks, out of place

    net = _Net(chain, behind, ["liar", "honest"], tamper={"liar": shifted})
    assert asyncio.run(net.client.catch_up()) == 6
    _same_chain(behind, chain.ahead)
    assert net.client.backing_off("liar")


@pytest.mark.usefixtures("small_ranges")
def test_a_silent_peers_range_is_asked_again_of_another_after_its_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sync_module, "SYNC_REQUEST_TIMEOUT_MS", 50)
    chain = _Chain(8)
    behind = chain.fresh()
    net = _Net(chain, behind, ["silent", "honest"], silent=frozenset({"silent"}))
    assert asyncio.run(net.client.catch_up()) == 8
    _same_chain(behind, chain.ahead)
    lost = [start for peer, start, _ in net.asked if peer == "silent"]
    assert lost, "the silent peer was never asked"
    for start in lost:  # every range it held was asked again of the honest peer
        assert any(peer == "honest" and s <= start < s + n for peer, s, n in net.asked)
    assert net.client.backing_off("silent") and not net.client.backing_off("honest")


@pytest.mark.usefixtures("small_ranges")
def test_a_validator_set_change_inside_a_range_is_followed() -> None:
    chain = _Chain(12, change_at=3)
    ahead = chain.ahead
    assert ahead.validators_at(12).get(chain.newcomer.key_id) is not None  # the change took effect
    assert ahead.validators_at(1).get(chain.newcomer.key_id) is None
    changed = next(h for h in range(1, 13) if ahead.validators_at(h).get(chain.newcomer.key_id) is not None)
    certificate = ahead.committed_block(changed)
    assert certificate is not None and chain.newcomer.key_id in certificate[1].signers
    behind = chain.fresh()
    # The head's certificate is by the new set, which this node does not know yet: the
    # claims count because two of the four genesis validators (more than f) make them.
    net = _Net(chain, behind, [k.key_id for k in chain.keys[:2]])
    assert asyncio.run(net.client.catch_up()) == 12
    _same_chain(behind, ahead)
    assert net.client.peer_failures == 0


def test_a_batch_is_one_write_and_a_bad_block_stores_only_those_before_it() -> None:
    chain = _Chain(6)
    behind = chain.fresh()
    kv = behind.store.kv
    assert isinstance(kv, CountingKV)
    writes_before = kv.writes
    pairs = [chain.ahead.committed_block(h) for h in range(1, 7)]
    assert all(p is not None for p in pairs)
    good = [p for p in pairs[:3] if p is not None]
    bad_block, bad_cert = pairs[3]  # type: ignore[misc]
    forged = type(bad_cert)(bad_cert.chain_id, bad_cert.height, bad_cert.round, bad_cert.block_hash,
                            bad_cert.signatures[:1])
    paused: list[int] = []
    consumed, error = behind.apply_certified([*good, (bad_block, forged)],
                                             before_store=lambda: paused.append(behind.height()))
    assert (consumed, behind.height(), kv.writes - writes_before) == (3, 3, 1)  # three blocks, one write
    assert error is not None and isinstance(error, CertificateError)
    assert paused == [0]
    _ = LedgerStore(behind.store.kv)  # the written head passes the integrity check
    rest = [p for p in pairs[3:] if p is not None]
    assert behind.apply_certified(rest) == (3, None)
    _same_chain(behind, chain.ahead)


def test_blocks_are_served_as_their_canonical_bytes_without_parsing_transactions() -> None:
    chain = _Chain(3)
    store = chain.ahead.store
    for height in (1, 2, 3):
        block = store.block(height)
        wire = store.block_canonical(height)
        assert block is not None and wire is not None
        assert wire.data == block.canonical().data and wire.depth == block.canonical().depth
    assert store.block_canonical(4) is None and store.block_canonical(0) is None


@pytest.mark.usefixtures("small_ranges")
def test_a_transaction_with_a_bad_signature_in_a_certified_header_is_refused_despite_checks_ahead() -> None:
    """The signatures are checked ahead on a worker thread; a failure there must not be taken
    for a pass. A tx's id leaves its signatures out, so a forged signature keeps the header
    (and its certificate) valid: only the strict re-execution can refuse the block."""
    from ledger.encoding import decode, encode

    chain = _Chain(6)
    behind = chain.fresh()

    def forge_signature(blocks: list[Value]) -> None:
        txs = blocks[0][0]["txs"]  # type: ignore[index,call-overload]
        tx = decode(txs[0])
        assert isinstance(tx, dict) and isinstance(tx["sigs"], list)
        sig = tx["sigs"][0]
        assert isinstance(sig, dict) and isinstance(sig["sig"], bytes)
        sig["sig"] = bytes([sig["sig"][0] ^ 1]) + sig["sig"][1:]
        txs[0] = encode(tx)

    net = _Net(chain, behind, ["forger", "honest"], tamper={"forger": forge_signature})
    assert asyncio.run(net.client.catch_up()) == 6
    _same_chain(behind, chain.ahead)
    assert net.client.backing_off("forger") and net.client.peer_failures >= 1
    net.client.close()


def test_checks_ahead_remember_only_passes() -> None:
    from ledger.encoding import decode, encode
    from ledger.errors import SignatureError
    from node.sync import _check_signatures

    good = _note(1)
    value = decode(good.to_bytes())
    assert isinstance(value, dict) and isinstance(value["sigs"], list) and isinstance(value["sigs"][0], dict)
    raw_sig = value["sigs"][0]["sig"]
    assert isinstance(raw_sig, bytes)
    value["sigs"][0]["sig"] = bytes([raw_sig[0] ^ 1]) + raw_sig[1:]
    forged = Transaction.from_bytes(encode(value))
    assert forged.tx_id == good.tx_id  # the id leaves signatures out
    _check_signatures([good, forged], CHAIN)
    good.check_stateless(CHAIN)  # remembered: no error, nothing to redo
    with pytest.raises(SignatureError):
        forged.check_stateless(CHAIN)  # a failure ahead is not remembered as a pass
