"""Read committed data from the node's LedgerStore and shape it for the API.

This is the only API module that calls the store, so a change of the store's
interface touches one file. Everything returned is plain JSON (dicts), with
each answer carrying the header and commit certificate that make it checkable
by a client holding only the genesis.

Reads are synchronous. On the event loop thread (where the node commits blocks)
the reads of one request (no ``await`` between them) see one consistent height;
proofs built on the API's worker threads (:mod:`node.api.offload`) read at a
height fixed beforehand, and committed heights never change. The anchor cache
uses only single dict operations, so it is safe to share with those threads.
"""

from __future__ import annotations

from typing import Any

from ledger import statekeys
from ledger.block import Block, CommitCertificate
from ledger.encoding import decode
from ledger.errors import StorageError
from ledger.genesis import Genesis
from ledger.keys import b64url_encode
from ledger.lru import BoundedLRU
from ledger.storage import LedgerStore
from ledger.tx import Transaction
from ledger.validators import ValidatorSet
from node.api.constants import API_ANCHORS_CACHED_MAX
from node.api.problems import ApiProblem


class ChainReader:
    """JSON views of blocks, transactions, state and proofs at committed heights."""

    __slots__ = ("_anchors", "genesis", "store")

    def __init__(self, store: LedgerStore, genesis: Genesis) -> None:
        self.store = store
        self.genesis = genesis
        # JSON of recent committed headers and certificates by height: a committed
        # height never changes, and every answer about it (each tx of a block waiting
        # for ?wait=commit, state reads, /v1/verify) carries the same anchor.
        self._anchors: BoundedLRU[int, tuple[dict[str, Any], dict[str, Any]]] = BoundedLRU(
            API_ANCHORS_CACHED_MAX)

    # --- heights and blocks -----------------------------------------------------

    def head_height(self) -> int:
        """Height of the last committed block (0 before block 1)."""
        return int(self.store.height())

    def require_height(self, height: int) -> int:
        head = self.head_height()
        if head == 0:
            raise ApiProblem("no-blocks", "no block has been committed yet")
        if not 1 <= height <= head:
            raise ApiProblem("unknown-block", f"height {height} is not committed; head is {head}")
        return height

    def block_and_certificate(self, height: int) -> tuple[Block, CommitCertificate]:
        self.require_height(height)
        block = self.store.block(height)
        certificate = self.store.certificate(height)
        if block is None or certificate is None:
            raise ApiProblem("unknown-block", f"block {height} is not available on this node")
        return block, certificate

    def block_json(self, height: int) -> dict[str, Any]:
        block, certificate = self.block_and_certificate(height)
        return {
            "hash": block.header.hash.hex(),
            "header": block.header.to_json(),
            "certificate": certificate.to_json(),
            "txs": [tx.tx_id.hex() for tx in block.txs],
        }

    def anchor(self, height: int) -> dict[str, Any]:
        """Header and certificate of ``height``: what a client checks every answer against."""
        self.require_height(height)
        cached = self._anchors.get(height)
        if cached is None:
            header = self.store.header(height)
            certificate = self.store.certificate(height)
            if header is None or certificate is None:
                raise ApiProblem("unknown-block", f"block {height} is not available on this node")
            cached = (header.to_json(), certificate.to_json())
            self._anchors.put(height, cached)
        header_json, certificate_json = cached
        # Copies, so a caller that edits its answer cannot edit the cache.
        return {"header": dict(header_json),
                "certificate": {**certificate_json,
                                "signatures": [dict(s) for s in certificate_json["signatures"]]}}


    # --- transactions --------------------------------------------------------------

    def tx_location(self, tx_id: bytes) -> tuple[int, int] | None:
        """(height, index in block) of a committed transaction, or None."""
        position = self.store.tx_position(tx_id)
        return None if position is None else (position[0], position[1])

    def committed_tx_json(self, tx_id: bytes, *, with_tx: bool = True) -> dict[str, Any] | None:
        """The committed transaction (unless ``with_tx`` is false: its submitter has it) with
        its inclusion proof, header and certificate; None if unknown."""
        # One read of the record; the transaction itself is parsed only when answered.
        if with_tx:
            record = self.store.tx(tx_id)
            position = None if record is None else (record.height, record.index, record.log_index)
        else:
            record, position = None, self.store.tx_position(tx_id)
        if position is None or position[0] > self.head_height():
            return None
        height, index, log_index = position
        anchor = self.anchor(height)
        log_size = anchor["header"]["log_size"]
        path = self.store.log.inclusion_proof(log_index, log_size)
        answer: dict[str, Any] = {"id": tx_id.hex(), "status": "committed", "height": height, "index": index}
        if record is not None:
            tx: Transaction = record.tx
            answer["tx"] = {"view": tx.to_view(), "b64": tx.to_b64()}
        answer["inclusion_proof"] = {
            "leaf": tx_id.hex(),
            "leaf_index": log_index,
            "tree_size": log_size,
            "root": anchor["header"]["log_root"],
            "hashes": [h.hex() for h in path],
        }
        answer.update(anchor)
        return answer

    # --- state ------------------------------------------------------------------------

    def state_json(self, key: bytes, height: int) -> dict[str, Any]:
        anchor = self.anchor(height)
        value, proof = self.store.state_prove(key, height)
        return {
            "key": key.decode("utf-8"),
            "height": height,
            "value": None if value is None else b64url_encode(value),
            "proof": proof.to_json(),
            **anchor,
        }

    # --- proofs --------------------------------------------------------------------------

    def consistency_json(self, from_height: int, to_height: int) -> dict[str, Any]:
        if from_height > to_height:
            raise ApiProblem("bad-request", "from must not exceed to")
        old = self.anchor(from_height)
        new = self.anchor(to_height)
        old_size, new_size, hashes = self.store.consistency_proof(from_height, to_height)
        return {
            "from_height": from_height,
            "to_height": to_height,
            "from_size": old_size,
            "to_size": new_size,
            "hashes": [h.hex() for h in hashes],
            "from_header": old["header"],
            "from_certificate": old["certificate"],
            "to_header": new["header"],
            "to_certificate": new["certificate"],
        }

    # --- validators ------------------------------------------------------------------------

    def validators_json(self, height: int) -> dict[str, Any]:
        """The set certifying ``height`` (1 <= height <= head + 1), proven at ``height - 1``."""
        head = self.head_height()
        if not 1 <= height <= head + 1:
            raise ApiProblem("unknown-block", f"height {height}: validators known for 1..{head + 1}")
        proof_height = height - 1
        out: dict[str, Any]
        if proof_height == 0:
            validators: ValidatorSet = self.genesis.validators
            out = {"value": None, "proof": None, "header": None, "certificate": None}
        else:
            anchor = self.anchor(proof_height)
            value, proof = self.store.state_prove(statekeys.VALSET_CURRENT, proof_height)
            if value is None:
                raise StorageError(f"no validator set in state at height {proof_height}")
            validators = ValidatorSet.from_value(decode(value))
            out = {"value": b64url_encode(value), "proof": proof.to_json(), **anchor}
        out.update({
            "height": height,
            "proof_height": proof_height,
            "validator_set_hash": validators.hash.hex(),
            "total_power": validators.total_power,
            "quorum_power": validators.quorum_power,
            "validators": [
                {"name": v.name, "key_id": v.key_id, "jwk": v.public_key.to_jwk(), "power": v.power,
                 "address": v.address, "tls_spki_sha256": b64url_encode(v.tls_spki_sha256)}
                for v in validators.validators
            ],
        })
        return out


__all__ = ["ChainReader"]
