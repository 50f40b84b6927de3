"""Audit a node's chain from the genesis: download block by block, verify everything.

The verification is :class:`ledger.chain.ChainVerifier` (links, heights, time,
proposer, tx root, RFC 9162 log root and size, validator-set changes, commit
certificates); this module only fetches what it needs from ONE node and turns
the node's JSON into ledger objects. Nothing the node says is trusted: every
transaction body is checked against its id, every validator set against the
certified hash, and the log consistency proof between the first and last
audited heights against the verified headers' log roots.

Heights below ``from_height`` are verified from their transaction ids only
(header chain, certificates, tx and log roots, validator sets) without
downloading the transaction bodies; heights from ``from_height`` to
``to_height`` are verified with every body.

The source of the node's answers is a :class:`ChainSource`; :class:`HttpChainSource`
speaks the REST API over an injectable ``httpx.Client`` (tests pass a
``fastapi.testclient.TestClient``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import httpx

from ledger.block import Block, BlockHeader, CommitCertificate
from ledger.chain import ChainVerifier
from ledger.encoding import decode
from ledger.errors import ImiError, LedgerError
from ledger.genesis import Genesis
from ledger.keys import b64url_decode
from ledger.merkle import verify_consistency
from ledger.tx import Transaction
from ledger.validators import ValidatorSet

AUDIT_HTTP_TIMEOUT_S = 30.0
AUDIT_BLOCK_TXS_FETCH_MAX = 10_000  # a block claiming more ids than this is refused before fetching


class AuditError(ImiError):
    """The audit stopped at ``height`` (0: before any block) for a stable ``reason``.

    Reasons are ChainVerifier's (``broken-link``, ``bad-certificate-signature``,
    ``tx-root-mismatch``, ``log-root-mismatch``, ``unknown-validator-set``…) or
    this module's: ``node-unreachable``, ``node-error`` (or the node's problem
    reason), ``bad-answer`` (malformed JSON), ``tx-mismatch`` (a body does not
    hash to its id or sits elsewhere), ``tx-unavailable``, ``block-unavailable``,
    ``bad-range``, ``consistency-mismatch``.
    """

    def __init__(self, message: str, *, height: int, reason: str) -> None:
        super().__init__(message, reason=reason, context={"height": height})
        self.height = height


class ChainSource(Protocol):
    """What the audit asks a node. Each call returns the decoded JSON answer or raises AuditError."""

    def latest_block(self) -> Mapping[str, Any]: ...

    def block(self, height: int) -> Mapping[str, Any]: ...

    def transaction(self, tx_id_hex: str) -> Mapping[str, Any]: ...

    def validators(self, height: int) -> Mapping[str, Any]: ...

    def consistency(self, from_height: int, to_height: int) -> Mapping[str, Any]: ...


class HttpChainSource:
    """:class:`ChainSource` over the node's REST API. ``client`` defaults to a new ``httpx.Client``."""

    def __init__(self, base_url: str, *, client: httpx.Client | None = None,
                 timeout_s: float = AUDIT_HTTP_TIMEOUT_S) -> None:
        self.base_url = base_url.rstrip("/")
        self._owned = client is None
        self._client = client if client is not None else httpx.Client(timeout=timeout_s)

    def _get(self, path: str, params: Mapping[str, str] | None = None, *, height: int = 0) -> Mapping[str, Any]:
        try:
            response = self._client.get(self.base_url + path, params=dict(params or {}))
        except httpx.HTTPError as exc:
            raise AuditError(f"cannot reach {self.base_url}: {exc}", height=height,
                             reason="node-unreachable") from exc
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code != 200:
            reason = body.get("reason") if isinstance(body, dict) else None
            raise AuditError(f"node answered HTTP {response.status_code} for {path}", height=height,
                             reason=str(reason or "node-error"))
        if not isinstance(body, dict):
            raise AuditError(f"node answered non-object JSON for {path}", height=height, reason="bad-answer")
        return body

    def latest_block(self) -> Mapping[str, Any]:
        return self._get("/v1/blocks/latest")

    def block(self, height: int) -> Mapping[str, Any]:
        return self._get(f"/v1/blocks/{height}", height=height)

    def transaction(self, tx_id_hex: str) -> Mapping[str, Any]:
        return self._get(f"/v1/transactions/{tx_id_hex}")

    def validators(self, height: int) -> Mapping[str, Any]:
        return self._get("/v1/validators", {"height": str(height)}, height=height)

    def consistency(self, from_height: int, to_height: int) -> Mapping[str, Any]:
        return self._get("/v1/proofs/consistency", {"from": str(from_height), "to": str(to_height)},
                         height=to_height)

    def close(self) -> None:
        if self._owned:
            self._client.close()


@dataclass(frozen=True, slots=True)
class _TxRef:
    """A transaction known only by its id: enough for the tx and log roots (ids are the leaves)."""

    tx_id: bytes


@dataclass
class AuditReport:
    """What a successful audit checked: ``blocks`` 1..``to_height`` from the genesis, with
    transaction bodies from ``from_height`` on. ``seconds`` is wall time; ``consistency``
    is ``"verified"`` or ``"skipped"`` (``from_height == to_height``: nothing to compare)."""

    chain_id: str
    genesis_hash: str
    from_height: int
    to_height: int
    blocks: int
    txs: int
    bodies_checked: int
    head_hash: str
    state_root: str
    log_size: int
    validator_set_changes: int
    consistency: str
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": True, "chain_id": self.chain_id, "genesis_hash": self.genesis_hash,
            "from": self.from_height, "to": self.to_height, "blocks": self.blocks, "txs": self.txs,
            "bodies_checked": self.bodies_checked, "head_hash": self.head_hash,
            "state_root": self.state_root, "log_size": self.log_size,
            "validator_set_changes": self.validator_set_changes, "consistency": self.consistency,
            "seconds": round(self.seconds, 3),
        }


def _bad(height: int, what: str) -> AuditError:
    return AuditError(f"block {height}: malformed answer ({what})", height=height, reason="bad-answer")


def _parse_block_answer(height: int, answer: Mapping[str, Any]) -> tuple[BlockHeader, CommitCertificate, list[str]]:
    """Header, certificate and tx id list of ``/v1/blocks/{height}``; the header hash must match."""
    try:
        header = BlockHeader.from_json(answer["header"])
        certificate = CommitCertificate.from_json(answer["certificate"])
        tx_ids = answer["txs"]
    except KeyError as exc:
        raise _bad(height, f"missing {exc}") from exc
    except LedgerError as exc:
        raise AuditError(f"block {height}: {exc}", height=height, reason=exc.reason) from exc
    if not isinstance(tx_ids, list) or not all(isinstance(t, str) for t in tx_ids):
        raise _bad(height, "txs is not a list of ids")
    if len(tx_ids) > AUDIT_BLOCK_TXS_FETCH_MAX:
        raise AuditError(f"block {height}: {len(tx_ids)} tx ids", height=height, reason="block-too-large")
    if header.height != height:
        raise AuditError(f"asked for block {height}, got {header.height}", height=height, reason="bad-height")
    return header, certificate, tx_ids


def _tx_id_bytes(height: int, tx_id_hex: str) -> bytes:
    try:
        raw = bytes.fromhex(tx_id_hex)
    except ValueError as exc:
        raise _bad(height, "tx id is not hex") from exc
    return raw


def _fetch_tx(source: ChainSource, height: int, index: int, tx_id_hex: str) -> Transaction:
    """The body of transaction ``tx_id_hex``; it must hash to that id and sit at (height, index)."""
    try:
        answer = source.transaction(tx_id_hex)
    except AuditError as exc:
        raise AuditError(f"block {height}: transaction #{index} unavailable: {exc} [{exc.reason}]",
                         height=height, reason="tx-unavailable") from exc
    try:
        tx = Transaction.from_b64(answer["tx"]["b64"])
    except (KeyError, TypeError) as exc:
        raise _bad(height, f"transaction {tx_id_hex[:16]}… has no body") from exc
    except (LedgerError, ValueError) as exc:
        raise AuditError(f"block {height}: transaction #{index} does not decode: {exc}", height=height,
                         reason="tx-mismatch") from exc
    if tx.tx_id.hex() != tx_id_hex:
        raise AuditError(f"block {height}: transaction #{index} body does not hash to its id {tx_id_hex}",
                         height=height, reason="tx-mismatch")
    if answer.get("height") != height or answer.get("index") != index:
        raise AuditError(f"block {height}: transaction #{index} is placed at height {answer.get('height')} "
                         f"index {answer.get('index')}", height=height, reason="tx-mismatch")
    return tx


def _validator_set(answer: Mapping[str, Any]) -> ValidatorSet | None:
    """The validator set in a ``/v1/validators`` answer (its canonical ``value``), or None."""
    value = answer.get("value")
    if not isinstance(value, str):
        return None
    try:
        return ValidatorSet.from_value(decode(b64url_decode(value)))
    except (LedgerError, ValueError, TypeError):
        return None


@dataclass
class _Walk:
    """Mutable state of one audit run."""

    genesis: Genesis
    source: ChainSource
    current: int = 0  # height being verified
    changes: int = 0
    headers: dict[int, BlockHeader] = field(default_factory=dict)

    def validator_set_for(self, wanted: bytes) -> ValidatorSet | None:
        # A header at h naming another next set: the node serves it as the set certifying h + 1.
        # A failed fetch is the verifier's "unknown-validator-set" at h.
        try:
            candidate = _validator_set(self.source.validators(self.current + 1))
        except AuditError:
            return None
        if candidate is not None and candidate.hash == wanted:
            self.changes += 1
        return candidate


def audit_chain(
    genesis: Genesis,
    source: ChainSource,
    *,
    from_height: int = 1,
    to_height: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> AuditReport:
    """Verify the node's chain from ``genesis`` up to ``to_height`` (default: its latest block).

    Requires ``from_height >= 1``. ``progress(done, total)`` is called after each
    block. Raises :class:`AuditError` naming the first bad height and a reason.
    """
    started = clock()
    if from_height < 1:
        raise ValueError("from_height must be >= 1")
    latest = source.latest_block()
    try:
        head = int(latest["header"]["height"])
    except (KeyError, TypeError, ValueError) as exc:
        raise AuditError("latest block answer is malformed", height=0, reason="bad-answer") from exc
    last = head if to_height is None else to_height
    if last > head:
        raise AuditError(f"node's head is {head}, below --to {last}", height=head + 1, reason="block-unavailable")
    if from_height > last:
        raise AuditError(f"--from {from_height} is above the last height {last}", height=from_height,
                         reason="bad-range")
    walk = _Walk(genesis, source)
    verifier = ChainVerifier(genesis, walk.validator_set_for)
    txs = bodies = 0
    for height in range(1, last + 1):
        walk.current = height
        header, certificate, tx_ids = _parse_block_answer(height, source.block(height))
        # _TxRef stands in for Transaction: the tx and log roots read only tx_id.
        body: tuple[Any, ...] = tuple(_TxRef(_tx_id_bytes(height, t)) for t in tx_ids)
        if height >= from_height:
            _check(height, Block(header, cast(tuple[Transaction, ...], body)).check_body)
            body = tuple(_fetch_tx(source, height, i, t) for i, t in enumerate(tx_ids))
            bodies += len(body)
        _check(height, verifier.verify_next, Block(header, cast(tuple[Transaction, ...], body)), certificate)
        if height in (from_height, last):
            walk.headers[height] = header
        txs += len(tx_ids)
        if progress is not None:
            progress(height, last)
    consistency = _check_consistency(source, walk.headers[from_height], walk.headers[last])
    return AuditReport(
        chain_id=genesis.chain_id, genesis_hash=genesis.hash.hex(), from_height=from_height, to_height=last,
        blocks=last, txs=txs, bodies_checked=bodies, head_hash=verifier.head_hash.hex(),
        state_root=walk.headers[last].state_root.hex(), log_size=verifier.log.size,
        validator_set_changes=walk.changes, consistency=consistency, seconds=clock() - started,
    )


def _check(height: int, step: Callable[..., None], *args: Any) -> None:
    """Run one verification step; a ledger error becomes the audit's failure at ``height``."""
    try:
        step(*args)
    except LedgerError as exc:
        raise AuditError(str(exc), height=height, reason=exc.reason) from exc


def _check_consistency(source: ChainSource, first: BlockHeader, last: BlockHeader) -> str:
    """Check the node's RFC 9162 consistency proof between two verified headers' logs."""
    if first.height == last.height:
        return "skipped"
    answer = source.consistency(first.height, last.height)
    try:
        from_size, to_size = int(answer["from_size"]), int(answer["to_size"])
        hashes = [bytes.fromhex(h) for h in answer["hashes"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise AuditError("consistency answer is malformed", height=last.height, reason="bad-answer") from exc
    if (from_size, to_size) != (first.log_size, last.log_size):
        raise AuditError(f"consistency proof is for log sizes {from_size}..{to_size}, headers say "
                         f"{first.log_size}..{last.log_size}", height=last.height, reason="consistency-mismatch")
    try:
        verify_consistency(first.log_size, last.log_size, first.log_root, last.log_root, hashes)
    except LedgerError as exc:
        raise AuditError(f"log consistency {first.height}..{last.height}: {exc}", height=last.height,
                         reason="consistency-mismatch") from exc
    return "verified"


__all__ = ["AUDIT_HTTP_TIMEOUT_S", "AuditError", "AuditReport", "ChainSource", "HttpChainSource", "audit_chain"]
