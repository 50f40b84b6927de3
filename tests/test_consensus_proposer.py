"""The proposer rule: a validator absent from the recent certificates is skipped at round 0.

The rule (``ValidatorSet.proposer`` / ``ValidatorSet.inactive``) reads only the signer
sets of the ``last_commit`` certificates carried by committed headers, so every honest
validator — a restarted or catching-up one included — picks the same proposer.
"""

from __future__ import annotations

import dataclasses
from dataclasses import replace

import pytest

from ledger.block import PRECOMMIT, Block, BlockHeader, CommitCertificate, Vote, certify
from ledger.chain import verify_chain
from ledger.constants import PROPOSER_WINDOW_HEIGHTS
from ledger.errors import BlockError
from ledger.keys import SigningKey
from ledger.merkle import EMPTY_ROOT
from ledger.validators import ValidatorSet, proposer_window
from node.consensus.core import Core
from tests import factories
from tests.sim.world import SIM_TIMEOUTS, run_seed
from tests.test_consensus_core import Cluster
from tests.test_node_application import _app, _genesis

K = PROPOSER_WINDOW_HEIGHTS


def _set(n: int = 4) -> tuple[ValidatorSet, list[str]]:
    c = factories.consortium(n)
    ids = [v.key_id for v in c.validators.validators]
    return c.validators, ids


def test_a_validator_absent_from_every_certificate_in_the_window_is_skipped_at_round_0_only() -> None:
    vset, ids = _set()
    dead = ids[2]
    window = [frozenset(i for i in ids if i != dead)] * K
    inactive = vset.inactive(window)
    assert inactive == {dead}
    round0 = [vset.proposer(h, 0, inactive).key_id for h in range(1, 40)]
    assert dead not in round0
    assert set(round0) == set(ids) - {dead}  # the others share its turns
    for h in range(1, 40):  # later rounds: the plain rotation, dead member included
        for r in range(1, 2 * len(ids)):
            assert vset.proposer(h, r, inactive) == vset.validators[(h + r) % len(ids)]
        assert {vset.proposer(h, r, inactive).key_id for r in range(1, len(ids) + 1)} == set(ids)


def test_one_certificate_in_the_window_that_holds_it_brings_it_back() -> None:
    vset, ids = _set()
    dead = ids[0]
    without = frozenset(i for i in ids if i != dead)
    assert vset.inactive([without] * K) == {dead}
    assert vset.inactive([without] * (K - 1) + [frozenset(ids)]) == frozenset()
    assert vset.inactive([frozenset(ids)] + [without] * (K - 1)) == frozenset()
    # only the last K sets count: an old signature no longer keeps it in
    assert vset.inactive([frozenset(ids)] + [without] * K) == {dead}


def test_the_first_heights_and_an_empty_window_skip_nobody() -> None:
    vset, ids = _set()
    assert vset.inactive([frozenset(ids[:3])] * (K - 1)) == frozenset()
    everyone = vset.inactive([frozenset()] * K)
    assert everyone == set(ids)
    for h in range(1, 20):  # nobody left: round 0 falls back to the plain rotation
        assert vset.proposer(h, 0, everyone) == vset.proposer(h, 0)
    assert list(proposer_window(1)) == [] and list(proposer_window(K + 5)) == list(range(5, K + 5))


def test_a_header_carries_only_the_previous_blocks_certificate_and_round_trips() -> None:
    c = factories.consortium()
    first = factories.header(c, 1, c.genesis.hash)
    cert = factories.certify(c, first, signers=3)
    second = replace(factories.header(c, 2, first.hash), last_commit=cert)
    assert BlockHeader.from_value(second.to_value()) == second
    assert BlockHeader.from_json(second.to_json()).hash == second.hash
    assert second.hash != factories.header(c, 2, first.hash).hash  # the header commits to it
    with pytest.raises(BlockError):
        replace(factories.header(c, 3, second.hash), last_commit=cert)  # not block 2's
    with pytest.raises(BlockError):
        replace(factories.header(c, 2, bytes(32)), last_commit=cert)  # another parent


def _chain(c: factories.Consortium, blocks: int, absent: str,
           plain_at: int | None = None) -> list[tuple[Block, CommitCertificate]]:
    """A chain whose certificates never hold ``absent``; proposers follow the rule
    (or the plain rotation at height ``plain_at``)."""
    signers = [v for v in c.validators.validators if v.key_id != absent]
    out: list[tuple[Block, CommitCertificate]] = []
    prev, last = c.genesis.hash, None
    recent: list[frozenset[str]] = []
    for height in range(1, blocks + 1):
        inactive = frozenset() if height == plain_at else c.validators.inactive(recent)
        proposer = c.validators.proposer(height, 0, inactive).key_id
        hdr = replace(factories.header(c, height, prev), proposer=proposer, last_commit=last,
                      log_root=EMPTY_ROOT)
        sigs = tuple((v.key_id, c.keys[v.key_id].sign(
            Vote(factories.CHAIN_ID, height, 0, PRECOMMIT, hdr.hash, v.key_id).signing_bytes())) for v in signers)
        last = CommitCertificate(factories.CHAIN_ID, height, 0, hdr.hash, sigs)
        out.append((Block(hdr, ()), last))
        recent.append(frozenset() if hdr.last_commit is None else hdr.last_commit.signers)
        prev = hdr.hash
    return out


def test_an_auditor_checks_the_rule_from_the_headers_alone() -> None:
    c = factories.consortium()
    absent = c.validators.validators[1].key_id
    chain = _chain(c, 3 * K, absent)
    assert verify_chain(c.genesis, chain).height == 3 * K
    assert absent not in {b.header.proposer for b, _ in chain[K + 1:]}
    skipped_turn = next(h for h in range(K + 2, 3 * K) if c.validators.proposer(h, 0).key_id == absent)
    with pytest.raises(BlockError) as caught:
        verify_chain(c.genesis, _chain(c, skipped_turn, absent, plain_at=skipped_turn))
    assert caught.value.reason == "wrong-proposer"


def test_a_validator_refuses_a_block_whose_last_commit_does_not_verify() -> None:
    keys = [SigningKey.generate() for _ in range(4)]
    genesis = _genesis(keys)
    apps = {k.key_id: _app(genesis, k) for k in keys}
    for height in (1, 2):
        proposer = genesis.validators.proposer(height, 0).key_id
        block = apps[proposer].build_block(height, 0)
        assert (block.header.last_commit is None) == (height == 1)
        for app in apps.values():
            assert app.validate_block(block)
        if height == 2:
            break
        cert = certify(block.header, keys[:3])
        for app in apps.values():
            app.apply_committed(block, cert)
    other = next(a for k, a in apps.items() if k != proposer)
    last = block.header.last_commit
    assert last is not None
    forged = dataclasses.replace(last, signatures=((last.signatures[0][0], bytes(64)), *last.signatures[1:]))
    assert not other.validate_block(Block(replace(block.header, last_commit=forged), block.txs))
    assert not other.validate_block(Block(replace(block.header, last_commit=None), block.txs))
    short = dataclasses.replace(last, signatures=last.signatures[:2])  # no quorum
    assert not other.validate_block(Block(replace(block.header, last_commit=short), block.txs))


def _round0_proposers(cluster: Cluster, height: int) -> set[str]:
    """What each node computes as the round-0 proposer of ``height`` from its own chain."""
    return {n.app.validators_at(height).proposer(height, 0, n.app.inactive_at(height)).key_id
            for n in cluster.nodes if n.app.ledger.height >= height - 1}


def test_with_one_of_four_down_every_height_after_the_window_decides_at_round_0() -> None:
    cluster = Cluster(4)
    dead = 2
    dead_id = cluster.nodes[dead].key.key_id
    cluster.cut = {dead}
    target = 3 * K
    cluster.run(4_000, until=lambda: min(h for i, h in enumerate(cluster.heights()) if i != dead) >= target)
    alive = cluster.nodes[0].app.ledger
    assert alive.height >= target
    headers = [b.header for b, _ in alive.blocks]
    late = headers[K + 2:]
    assert all(h.round == 0 for h in late), [(h.height, h.round) for h in late if h.round]
    assert any(cluster.validators.proposer(h.height, 0).key_id == dead_id for h in late)  # its turns came
    for height in range(K + 3, alive.height + 1):
        assert _round0_proposers(cluster, height) != {dead_id}
        assert len(_round0_proposers(cluster, height)) == 1  # agreement
    assert dead_id in cluster.nodes[0].app.inactive_at(alive.height + 1)


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_simulated_validators_down_for_good_are_skipped_and_rejoin_after_restart(seed: int) -> None:
    """The simulator's degraded phase crashes every honest validator the fault budget
    allows (f minus the Byzantine ones), checks that after the window none is ever the
    round-0 proposer and that every node computes the same one, then restarts them and
    checks that each is back in the round-0 rotation within REJOIN_HEIGHTS_MAX heights."""
    result = run_seed(seed, 4 if seed % 2 == 0 else 7)
    assert result.degraded_crashes >= 1 and result.skips > 0
    assert result.violations == []


def test_the_simulator_catches_a_core_that_ignores_the_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    def plain(core: Core, round_: int) -> str:
        return core.validators.proposer(core.height, round_).key_id

    monkeypatch.setattr(Core, "_proposer_id", plain)
    result = run_seed(2, 4)
    assert any(v.startswith("proposer rule") for v in result.violations), result.violations


def test_a_round_whose_proposer_is_dead_ends_at_its_propose_timeout_not_later() -> None:
    """2f+1 nil precommits end the round at once: no precommit timeout after the
    propose timeout (a dead round-0 proposer cost 500 ms more on a real node)."""
    cluster = Cluster(4)
    dead = cluster.by_id(cluster.validators.proposer(1, 0).key_id)
    cluster.cut = {dead}
    alive = [i for i in range(4) if i != dead]
    ticks = 0
    while min(cluster.heights()[i] for i in alive) < 1:
        cluster.run(1)
        ticks += 1
        assert ticks < 200
    header = cluster.nodes[alive[0]].app.ledger.blocks[0][0].header
    assert header.round == 1
    timeouts = SIM_TIMEOUTS
    assert ticks < timeouts.propose_base + timeouts.precommit_base


def test_precommits_that_arrive_after_the_quorum_join_the_next_headers_last_commit() -> None:
    """With all four up a quorum is three: the fourth precommit comes late, and without
    adding it the slowest validator would drop out of the certificates and the rotation."""
    cluster = Cluster(4)
    cluster.run(2_000, until=lambda: min(cluster.heights()) >= 3 * K)
    headers = [b.header for b, _ in cluster.nodes[0].app.ledger.blocks]
    assert all(h.last_commit is not None and len(h.last_commit.signers) == 4 for h in headers[1:])
    assert all(len(cert.signers) == 3 for _, cert in cluster.nodes[0].app.ledger.blocks)  # decided at quorum
    assert cluster.nodes[0].app.inactive_at(len(headers) + 1) == frozenset()
