"""The contract between the consensus core and whoever drives it.

The core (:mod:`node.consensus.core`) is a pure state machine in the style of
etcd-io/raft: the driver hands it messages (``step``) and ticks (``tick``), and
after each call reads a :class:`Ready` that says, in this order,

1. ``persist`` — records to write durably (WAL) *before* anything is sent;
2. ``send``    — messages to send (``to=None`` means broadcast to all validators);
3. ``committed`` — blocks decided, each with its commit certificate, to apply;
4. ``evidence`` — pairs of conflicting messages signed by one validator
   (equivocation): two votes of one (height, round, kind), or two proposals of one
   (height, round) that differ in block or proof-of-lock round.

Time inside the core is abstract ticks. The application (block building and
re-execution, the validator set at a height, committed blocks for lagging peers)
is reached only through :class:`Application`, so the same core runs in the real
node and in the seeded simulator.

Driver obligations (see docs/consensus.md):

* write every ``Ready.persist`` record durably, in order, before sending any
  message of the same ``Ready``;
* apply every ``Ready.committed`` block (durably, idempotently: a block of a height
  the application already holds is skipped) before the next call into the core —
  the core asks ``validators_at(h + 1)`` on the first ``tick`` after deciding ``h``;
* on restart, pass the persisted records (all of them, or those from the last
  ``{"t": "height"}`` record on) as ``restored``.

Changes to this contract (issue 3):

* ``Message`` is :data:`node.consensus.messages.Message` (Proposal | Vote |
  CommitMessage | SyncRequest).
* ``CoreConfig.verify_signature`` (optional, default ``None``): a hook
  ``(public_key, signed) -> bool`` where ``signed`` is a Vote or Proposal (anything
  with ``signing_bytes()`` and ``signature``); the default is
  ``public_key.verify(signed.signing_bytes(), signed.signature)``. A driver may batch
  or cache checks; the simulator memoizes them across its simulated nodes (keyed
  by the whole signed content).
* ``Application.validators_at(h)`` is asked for every h from the first height the
  core runs up to last committed + 1; ``committed_block(h)`` is also used at
  construction to find the first height not yet committed.
* ``Application.inactive_at(h)`` (asked with ``validators_at(h)``, once per height):
  the members skipped as round-0 proposer (``ValidatorSet.proposer``'s ``inactive``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from ledger.block import Block, CommitCertificate, Vote
from ledger.encoding import Value
from ledger.keys import PublicKey
from ledger.validators import ValidatorSet
from node.consensus.messages import Message, Proposal


class Application(Protocol):
    """What the core needs from the ledger. Implementations must be deterministic."""

    def validators_at(self, height: int) -> ValidatorSet:
        """The set that certifies block ``height`` (known for last committed height + 1)."""
        ...

    def inactive_at(self, height: int) -> frozenset[str]:
        """Members of ``validators_at(height)`` skipped as the round-0 proposer of ``height``
        (``ValidatorSet.inactive`` over the signer sets that the last committed headers'
        ``last_commit`` certificates hold). Must depend on committed blocks only."""
        ...

    def build_block(self, height: int, round_: int, last_commit: CommitCertificate | None = None) -> Block:
        """Proposer side: pick transactions, execute them, return a block whose header
        carries the resulting state root (execute-then-vote) and, as ``last_commit``, the
        given certificate of block ``height - 1`` (None: the one stored with it)."""
        ...

    def validate_block(self, block: Block) -> bool:
        """Validator side: re-execute ``block`` on the last committed state and return
        True only if its header (links, roots, time, proposer) is reproduced exactly."""
        ...

    def committed_block(self, height: int) -> tuple[Block, CommitCertificate] | None:
        """A block this node has committed, to help a lagging peer (None if unknown)."""
        ...


@dataclass(frozen=True, slots=True)
class Envelope:
    """A message to send. ``to`` is a validator key id, or None for broadcast."""

    message: Message
    to: str | None = None


# An equivocation: (first, second), both Votes or both Proposals, signed by one
# validator for the same slot.
Evidence = tuple[Vote, Vote] | tuple[Proposal, Proposal]


@dataclass(frozen=True, slots=True)
class Ready:
    persist: tuple[Value, ...] = ()
    send: tuple[Envelope, ...] = ()
    committed: tuple[tuple[Block, CommitCertificate], ...] = ()
    evidence: tuple[Evidence, ...] = ()

    def is_empty(self) -> bool:
        return not (self.persist or self.send or self.committed or self.evidence)


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Timeouts in ticks; round r waits ``base + r * delta`` (they grow with the round)."""

    propose_base: int = 30
    propose_delta: int = 10
    prevote_base: int = 10
    prevote_delta: int = 5
    precommit_base: int = 10
    precommit_delta: int = 5
    commit_ticks: int = 1  # pause after a commit before the next height starts
    rebroadcast_ticks: int = 20  # resend own current-round messages when stuck


@dataclass(frozen=True, slots=True)
class CoreConfig:
    chain_id: str
    timeouts: Timeouts = field(default_factory=Timeouts)
    # (public key, signed Vote or Proposal) -> valid?; None means PublicKey.verify on signing_bytes().
    verify_signature: Callable[[PublicKey, Vote | Proposal], bool] | None = None


__all__ = ["Application", "CoreConfig", "Envelope", "Evidence", "Message", "Ready", "Timeouts"]
