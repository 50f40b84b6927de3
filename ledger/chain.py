"""Verify a chain from its genesis: every link, root and certificate.

Whoever holds the genesis can check any chain a node hands over, block by
block, without trusting the node: header links, heights, times, the proposer,
the body against ``tx_root``, the global transaction log against ``log_root``
and ``log_size`` (kept as a compact frontier: O(log n) memory), the validator
set named in each header (following certified changes), and the commit
certificate. State roots are certified by the certificates; re-executing to
reproduce them is the auditor's optional extra step (``reexecute``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ledger.block import Block, BlockHeader, CommitCertificate
from ledger.constants import PROPOSER_WINDOW_HEIGHTS
from ledger.errors import BlockError, LedgerError
from ledger.genesis import Genesis
from ledger.merkle import EMPTY_ROOT, leaf_hash, node_hash
from ledger.validators import ValidatorSet


class LogFrontier:
    """The roots of the perfect subtrees of an append-only RFC 9162 log (a compact range).

    Holds at most log2(size) + 1 hashes; the root is folded right to left, which
    is RFC 9162's MTH because the largest subtree is always on the left.
    """

    __slots__ = ("_peaks", "size")

    def __init__(self) -> None:
        self.size = 0
        self._peaks: list[tuple[int, bytes]] = []  # (height, hash), left to right

    def append(self, leaf_data: bytes) -> None:
        height, current = 0, leaf_hash(leaf_data)
        while self._peaks and self._peaks[-1][0] == height:
            _, left = self._peaks.pop()
            current = node_hash(left, current)
            height += 1
        self._peaks.append((height, current))
        self.size += 1

    def root(self) -> bytes:
        if not self._peaks:
            return EMPTY_ROOT
        current = self._peaks[-1][1]
        for _, left in reversed(self._peaks[:-1]):
            current = node_hash(left, current)
        return current


@dataclass
class ChainVerifier:
    """Checks blocks one after another, starting right after the genesis.

    ``validator_set_for(hash)`` returns the validator set with that hash (e.g.
    fetched from a node); its hash is re-checked here, so the source need not be
    trusted. ``reexecute(block)`` may return the state root the verifier computes
    itself; it must equal the header's.
    """

    genesis: Genesis
    validator_set_for: Callable[[bytes], ValidatorSet | None] = lambda _h: None
    reexecute: Callable[[Block], bytes] | None = None
    height: int = 0
    head_hash: bytes = field(init=False)
    time_ms: int = field(init=False)
    log: LogFrontier = field(default_factory=LogFrontier)
    validators: ValidatorSet = field(init=False)
    # The last verified header and its set (to check the next header's last_commit), and
    # the signer sets the last PROPOSER_WINDOW_HEIGHTS headers carried (the proposer rule).
    previous: tuple[BlockHeader, ValidatorSet] | None = None
    recent_signers: list[frozenset[str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.head_hash = self.genesis.hash
        self.time_ms = self.genesis.time_ms
        self.validators = self.genesis.validators

    def verify_next(self, block: Block, certificate: CommitCertificate) -> None:
        """Check ``block`` as the successor of the last verified one; raises :class:`BlockError`.

        On failure nothing changes, so the caller can report the first bad height.
        """
        h = block.header
        if h.chain_id != self.genesis.chain_id:
            raise BlockError(f"block {h.height}: chain id {h.chain_id!r}", reason="wrong-chain")
        if h.height != self.height + 1:
            raise BlockError(f"expected height {self.height + 1}, got {h.height}", reason="bad-height")
        if h.prev_hash != self.head_hash:
            raise BlockError(f"block {h.height}: prev_hash does not link", reason="broken-link")
        if h.time_ms < self.time_ms:
            raise BlockError(f"block {h.height}: time goes backwards", reason="bad-time")
        if h.validator_set_hash != self.validators.hash:
            raise BlockError(f"block {h.height}: unexpected validator set", reason="wrong-validator-set")
        inactive = self.validators.inactive(self.recent_signers)
        if h.proposer != self.validators.proposer(h.height, h.round, inactive).key_id:
            raise BlockError(f"block {h.height}: proposer out of turn", reason="wrong-proposer")
        try:
            if h.last_commit is not None and self.previous is not None:
                h.last_commit.verify(*self.previous)
            block.check_body()
            certificate.verify(h, self.validators)
        except BlockError as exc:
            raise type(exc)(f"block {h.height}: {exc}", reason=exc.reason) from exc
        log = LogFrontier()
        log.size, log._peaks = self.log.size, list(self.log._peaks)  # same class
        for tx in block.txs:
            log.append(tx.tx_id)
        if h.log_size != log.size or h.log_root != log.root():
            raise BlockError(f"block {h.height}: transaction log root or size mismatch",
                             reason="log-root-mismatch")
        if self.reexecute is not None and self.reexecute(block) != h.state_root:
            raise BlockError(f"block {h.height}: state root not reproduced", reason="state-root-mismatch")
        next_validators = self.validators
        if h.next_validator_set_hash != self.validators.hash:
            candidate = self.validator_set_for(h.next_validator_set_hash)
            if candidate is None or candidate.hash != h.next_validator_set_hash:
                raise BlockError(f"block {h.height}: next validator set unavailable or wrong",
                                 reason="unknown-validator-set")
            next_validators = candidate
        self.previous = (h, self.validators)
        signers = frozenset() if h.last_commit is None else h.last_commit.signers
        self.recent_signers = [*self.recent_signers, signers][-PROPOSER_WINDOW_HEIGHTS:]
        self.height, self.head_hash, self.time_ms = h.height, h.hash, h.time_ms
        self.log, self.validators = log, next_validators


def verify_chain(
    genesis: Genesis,
    blocks: list[tuple[Block, CommitCertificate]],
    validator_set_for: Callable[[bytes], ValidatorSet | None] = lambda _h: None,
) -> ChainVerifier:
    """Verify ``blocks`` (heights 1..n in order) from ``genesis``; returns the verifier at the head.

    Raises :class:`BlockError` (with the height in its message) at the first bad block.
    """
    verifier = ChainVerifier(genesis, validator_set_for)
    for block, certificate in blocks:
        try:
            verifier.verify_next(block, certificate)
        except LedgerError as exc:
            if isinstance(exc, BlockError):
                raise
            raise BlockError(f"block {block.header.height}: {exc}", reason=exc.reason) from exc
    return verifier


__all__ = ["ChainVerifier", "LogFrontier", "verify_chain"]
