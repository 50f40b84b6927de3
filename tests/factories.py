"""Builders for tests: validator sets with their keys, signed blocks and certificates."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from ledger import block as ledger_block
from ledger.block import Block, BlockHeader, CommitCertificate, merkle_root
from ledger.genesis import DEFAULT_POLICY, Genesis
from ledger.keys import SigningKey
from ledger.merkle import EMPTY_ROOT
from ledger.tx import Transaction
from ledger.validators import Validator, ValidatorSet

CHAIN_ID = "imi-test"
FAR_FUTURE_MS = 3_600_000  # within the TTL of a block at time 1 s


@dataclass
class Consortium:
    keys: dict[str, SigningKey]  # key id -> consensus key
    validators: ValidatorSet
    trustee_keys: list[SigningKey]
    genesis: Genesis


def consortium(n: int = 4, trustees: int = 3, threshold: int = 2, seed: int = 0) -> Consortium:
    """A deterministic consortium: keys derived from ``seed`` so tests are reproducible."""
    def key(label: str) -> SigningKey:
        return SigningKey("EdDSA", hashlib.sha256(f"{seed}/{label}".encode()).digest())

    vkeys = [key(f"validator{i}") for i in range(n)]
    validators = ValidatorSet.of(
        Validator(f"v{i}", k.public_key, 1, f"127.0.0.1:{9000 + i}", hashlib.sha256(f"tls{i}".encode()).digest())
        for i, k in enumerate(vkeys)
    )
    tkeys = [key(f"trustee{i}") for i in range(trustees)]
    genesis = Genesis(CHAIN_ID, 1_700_000_000_000, validators, tuple(t.public_key for t in tkeys),
                      threshold, dict(DEFAULT_POLICY))
    return Consortium({k.key_id: k for k in vkeys}, validators, tkeys, genesis)


def note_tx(key: SigningKey | None = None, data: bytes = b"hello", expires_at_ms: int = FAR_FUTURE_MS) -> Transaction:
    key = key or SigningKey.generate()
    return Transaction.create(chain_id=CHAIN_ID, type="test.note", sender=key.key_id,
                              payload={"data": data}, expires_at_ms=expires_at_ms).sign(key)


def header(c: Consortium, height: int, prev_hash: bytes, txs: tuple[Transaction, ...] = (),
           state_root: bytes = EMPTY_ROOT, time_ms: int | None = None) -> BlockHeader:
    proposer = c.validators.proposer(height, 0)
    return BlockHeader(
        chain_id=CHAIN_ID, height=height, round=0, prev_hash=prev_hash,
        time_ms=time_ms if time_ms is not None else c.genesis.time_ms + height * 1000,
        tx_root=merkle_root([t.tx_id for t in txs]), tx_count=len(txs),
        log_root=EMPTY_ROOT, log_size=0, state_root=state_root,
        validator_set_hash=c.validators.hash, next_validator_set_hash=c.validators.hash,
        proposer=proposer.key_id,
    )


def certify(c: Consortium, hdr: BlockHeader, signers: int | None = None) -> CommitCertificate:
    """A certificate signed by the first ``signers`` validators (default: all)."""
    chosen = list(c.validators.validators)[: signers if signers is not None else len(c.validators)]
    return ledger_block.certify(hdr, (c.keys[v.key_id] for v in chosen))


def block(c: Consortium, height: int, prev_hash: bytes, txs: tuple[Transaction, ...] = ()) -> Block:
    return Block(header(c, height, prev_hash, txs), txs)


def build_chain(c: Consortium, blocks: int, txs_per_block: int = 2) -> list[tuple[Block, CommitCertificate]]:
    """A valid chain of ``blocks`` certified blocks with correct tx and log roots."""
    from ledger.chain import LogFrontier

    log = LogFrontier()
    prev = c.genesis.hash
    out: list[tuple[Block, CommitCertificate]] = []
    for height in range(1, blocks + 1):
        txs = tuple(note_tx(data=f"{height}/{i}".encode()) for i in range(txs_per_block))
        for tx in txs:
            log.append(tx.tx_id)
        base = header(c, height, prev, txs)
        hdr = BlockHeader(**{**{name: getattr(base, name) for name in (
            "chain_id", "height", "round", "prev_hash", "time_ms", "tx_root", "tx_count", "state_root",
            "validator_set_hash", "next_validator_set_hash", "proposer")},
            "log_root": log.root(), "log_size": log.size})
        out.append((Block(hdr, txs), certify(c, hdr, signers=3)))
        prev = hdr.hash
    return out
