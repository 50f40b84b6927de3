"""The properties checked at every step of a simulation.

* agreement — no two honest nodes commit different blocks at one height;
* validity — every committed block carries a certificate that verifies
  (``CommitCertificate.verify``, whether the core assembled it from precommits or
  took it from a commit message) against the validator set of its height, and its transactions execute (the application
  re-executes strictly when it applies the block);
* no honest double-sign — every proposal and vote an honest node sends is
  compared with everything it signed before, across restarts;
* durability — a node never loses or replaces a block it committed, restarts included;
* proposer agreement — every honest node computes the same round-0 proposer for a
  height from its own committed blocks (the rule of ``ValidatorSet.proposer``);
* liveness — checked by the world: after the final heal every honest node commits
  new heights within ``LIVENESS_TICKS_MAX``; then, in the degraded phase, with up to f
  validators down, skip and rejoin (see :mod:`tests.sim.world`).
"""

from __future__ import annotations

from collections.abc import Callable

from ledger.block import Block, CommitCertificate, Vote
from ledger.errors import LedgerError
from ledger.keys import PublicKey
from ledger.validators import ValidatorSet
from node.consensus.messages import Proposal

VIOLATIONS_KEPT_MAX = 20


class Checker:
    def __init__(self, verify: Callable[[PublicKey, Vote], bool]) -> None:
        self._verify = verify
        self.violations: list[str] = []
        self._decided: dict[int, bytes] = {}  # height -> block hash (first honest commit)
        self._signed: dict[tuple[str, int, int, str], bytes | None] = {}
        self._committed: dict[str, list[bytes]] = {}  # node name -> hashes by height
        self.commits = 0
        self._certs_ok: set[tuple[bytes, bytes]] = set()
        self.evidence = 0
        self.proposal_evidence = 0
        self._round0: dict[int, str] = {}  # height -> round-0 proposer (first honest node to compute it)

    def violation(self, text: str) -> None:
        if len(self.violations) < VIOLATIONS_KEPT_MAX:
            self.violations.append(text)

    # --- hooks called by the world ----------------------------------------------------
    def on_signed(self, node: str, message: object) -> None:
        """An honest node put a signed message on the wire."""
        if isinstance(message, Vote):
            key = (message.validator, message.height, message.round, message.kind)
            value: bytes | None = message.block_hash
        elif isinstance(message, Proposal):
            key = (message.proposer, message.height, message.round, "proposal")
            value = message.block.hash
        else:
            return
        before = self._signed.setdefault(key, value)
        if before != value:
            self.violation(f"honest double-sign by {node}: {key[3]} at height {key[1]} round {key[2]}")

    def on_commit(self, node: str, block: Block, cert: CommitCertificate, validators: ValidatorSet) -> None:
        """``node`` (honest) applied ``block``; ``validators`` is its set for that height."""
        self.commits += 1
        height = block.header.height
        checked = (block.hash, validators.hash)
        if checked not in self._certs_ok:
            # The ledger's own check, once per block (each costs a signature check per signer) ...
            try:
                cert.verify(block.header, validators)
                self._certs_ok.add(checked)
            except LedgerError as exc:
                self.violation(f"validity: {node} committed height {height} with a bad certificate: {exc}")
        else:
            # ... and for other nodes' certificates the same rule with memoized signature checks.
            problem = self._certificate_problem(block, cert, validators)
            if problem:
                self.violation(f"validity: {node} committed height {height} with a bad certificate: {problem}")
        first = self._decided.setdefault(height, block.hash)
        if first != block.hash:
            self.violation(f"agreement: {node} committed {block.hash.hex()[:12]} at height {height}, "
                           f"another honest node {first.hex()[:12]}")
        chain = self._committed.setdefault(node, [])
        if height != len(chain) + 1:
            self.violation(f"durability: {node} committed height {height} after {len(chain)}")
        chain.append(block.hash)

    def _certificate_problem(self, block: Block, cert: CommitCertificate, validators: ValidatorSet) -> str:
        try:
            cert.verify(block.header, validators, self._verify)
        except LedgerError as exc:
            return str(exc)
        return ""

    def on_round0_proposer(self, node: str, height: int, proposer: str) -> None:
        """``node`` (honest) computed ``proposer`` as round-0 proposer of ``height`` from its
        own committed blocks (``ValidatorSet.proposer`` with ``inactive_at``): every honest
        node, a restarted or catching-up one included, must compute the same."""
        first = self._round0.setdefault(height, proposer)
        if first != proposer:
            self.violation(f"proposer agreement: {node} computed round-0 proposer {proposer[:8]} at height "
                           f"{height}, another honest node {first[:8]}")

    def on_restart(self, node: str, held: list[bytes]) -> None:
        """After a restart ``held`` are the block hashes the node's ledger still has."""
        chain = self._committed.get(node, [])
        if held[: len(chain)] != chain:
            self.violation(f"durability: {node} lost committed blocks across a restart")

    def on_evidence(self, accused: str, honest: bool, first: Vote | Proposal, second: Vote | Proposal,
                    validators: ValidatorSet) -> None:
        self.evidence += 1
        if isinstance(first, Proposal) and isinstance(second, Proposal):
            self.proposal_evidence += 1
            proves = (first.proposer == second.proposer == accused
                      and (first.chain_id, first.height, first.round) == (second.chain_id, second.height, second.round)
                      and (first.block.hash, first.pol_round) != (second.block.hash, second.pol_round))
        elif isinstance(first, Vote) and isinstance(second, Vote):
            proves = (first.validator == second.validator == accused and first.block_hash != second.block_hash
                      and (first.height, first.round, first.kind) == (second.height, second.round, second.kind))
        else:
            proves = False
        if not (proves and first.verify(validators) and second.verify(validators)):
            self.violation(f"evidence against {accused[:8]} does not prove equivocation")
        elif honest:
            self.violation(f"evidence of equivocation against honest validator {accused[:8]}")

    def height_of(self, node: str) -> int:
        return len(self._committed.get(node, []))

    @property
    def heights(self) -> int:
        return len(self._decided)


__all__ = ["Checker"]
