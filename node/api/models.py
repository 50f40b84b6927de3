"""Request and response models of the REST API (documented in OpenAPI).

Hashes are lowercase hex; signatures and opaque bytes (transactions, state
values) are base64url without padding. Request models forbid unknown fields.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from node.api.constants import API_BATCH_TXS_MAX


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- problems ----------------------------------------------------------------------


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries declaring problem+json answers for ``statuses``."""
    return {s: {"model": ProblemModel, "content": {"application/problem+json": {}}} for s in statuses}


class ProblemModel(_Out):
    """RFC 9457 problem document (``application/problem+json``)."""

    type: str = Field(examples=["https://imi.example/problems/bad-signature"])
    title: str
    status: int
    detail: str
    reason: str = Field(description="Stable machine-readable code (see docs/api.md).")


# --- ledger objects ----------------------------------------------------------------


class CertificateSignatureModel(_Out):
    validator: str = Field(description="Key id (JWK thumbprint) of the validator.")
    sig: str = Field(description="Ed25519 precommit signature, base64url.")


class CertificateModel(_Out):
    """A commit certificate (``CommitCertificate.to_json``)."""

    chain_id: str
    height: int
    round: int
    block_hash: str
    signatures: list[CertificateSignatureModel]


class HeaderModel(_Out):
    """A block header (``BlockHeader.to_json``); ``hash`` is what the certificate signs."""

    hash: str
    chain_id: str
    height: int
    round: int
    prev_hash: str
    time_ms: int
    tx_root: str
    tx_count: int
    log_root: str
    log_size: int
    state_root: str
    validator_set_hash: str
    next_validator_set_hash: str
    proposer: str
    last_commit: CertificateModel | None = Field(
        description="The proposer's certificate of the previous block (null at height 1); "
                    "its signers decide who proposes round 0 of the next heights.")


class InclusionProofModel(_Out):
    """RFC 9162 inclusion proof of ``leaf`` (a tx id) in the global transaction log.

    Verify with ``leaf_index``, ``tree_size``, leaf hash ``SHA-256(0x00 || tx id)``
    and ``hashes`` (bottom-up audit path) against ``root`` = ``header.log_root``.
    """

    leaf: str
    leaf_index: int
    tree_size: int
    root: str
    hashes: list[str]


class StateProofLeafModel(_Out):
    path: str
    value_digest: str


class StateProofStepModel(_Out):
    depth: int
    sibling: str


class StateProofModel(_Out):
    """``StateProof.to_json``: membership if ``leaf.path`` is the key's path, else absence."""

    leaf: StateProofLeafModel | None
    steps: list[StateProofStepModel]


# --- transactions ------------------------------------------------------------------


class SubmitRequest(_Strict):
    tx: str = Field(description="base64url (no padding) of the canonical CBOR of a signed transaction.")


class SubmitAccepted(_Out):
    id: str = Field(description="Transaction id, hex.")
    status: Literal["pending"] = "pending"


class SubmitBatchRequest(_Strict):
    txs: list[str] = Field(max_length=API_BATCH_TXS_MAX,
                           description="base64url transactions, each as in `POST /v1/transactions`.")


class SubmitBatchResult(_Out):
    id: str | None = Field(None, description="Transaction id, hex (absent when the bytes did not parse).")
    status: Literal["pending", "committed", "rejected"]
    height: int | None = Field(None, description="Height of the block that holds it (`committed`).")
    index: int | None = Field(None, description="Its position in that block (`committed`).")
    problem: ProblemModel | None = Field(None, description="Why it was rejected (a problem document).")


class SubmitBatchResponse(_Out):
    results: list[SubmitBatchResult] = Field(description="One per submitted transaction, in order.")


class SubmitCommitted(_Out):
    id: str
    status: Literal["committed"] = "committed"
    height: int
    index: int
    inclusion_proof: InclusionProofModel
    header: HeaderModel
    certificate: CertificateModel


class TxBody(_Out):
    view: dict[str, Any] = Field(description="Readable view (bytes as hex); not a signing form.")
    b64: str = Field(description="base64url of the canonical CBOR, as submitted.")


class TxResponse(_Out):
    id: str
    status: Literal["committed", "pending"]
    height: int | None = None
    index: int | None = Field(None, description="Position within its block.")
    tx: TxBody | None = None
    inclusion_proof: InclusionProofModel | None = None
    header: HeaderModel | None = None
    certificate: CertificateModel | None = None


# --- chain ----------------------------------------------------------------------------


class BlockResponse(_Out):
    hash: str
    header: HeaderModel
    certificate: CertificateModel
    txs: list[str] = Field(description="Transaction ids in block order.")


class StateResponse(_Out):
    key: str
    height: int
    value: str | None = Field(description="base64url of the stored bytes (canonical CBOR), null if absent.")
    proof: StateProofModel
    header: HeaderModel
    certificate: CertificateModel


class ConsistencyResponse(_Out):
    from_height: int
    to_height: int
    from_size: int
    to_size: int
    hashes: list[str] = Field(description="RFC 9162 consistency proof from from_size to to_size.")
    from_header: HeaderModel
    from_certificate: CertificateModel
    to_header: HeaderModel
    to_certificate: CertificateModel


class ValidatorModel(_Out):
    name: str
    key_id: str
    jwk: dict[str, str]
    power: int
    address: str
    tls_spki_sha256: str


class ValidatorsResponse(_Out):
    height: int = Field(description="The height this set certifies.")
    validator_set_hash: str
    total_power: int
    quorum_power: int
    validators: list[ValidatorModel]
    proof_height: int = Field(description="State version of the proof: height - 1 (0 = genesis).")
    value: str | None = Field(description="base64url of valset/current at proof_height (null at genesis).")
    proof: StateProofModel | None = Field(description="Proof of valset/current at proof_height; null at genesis.")
    header: HeaderModel | None = Field(description="Header of proof_height (null at genesis).")
    certificate: CertificateModel | None


# --- operations ------------------------------------------------------------------------


class HealthResponse(_Out):
    status: Literal["ok"]
    name: str
    chain_id: str
    height: int


class ReadyResponse(_Out):
    """Readiness: whether this node should get traffic now (``GET /ready``)."""

    ready: bool
    syncing: bool = Field(description="Catching up from peers.")
    peers_connected: int = Field(description="Validators of the current set this node is connected to.")
    power_connected: int = Field(description="Voting power of this node and the validators it is connected to.")
    power_needed: int = Field(description="Voting power of a quorum of the current set (more than 2/3).")
    power_total: int = Field(description="Voting power of the current set.")
    height: int
    head_age_ms: int | None = Field(description="Wall clock minus the head's time; null before block 1.")
    head_age_ms_max: int
    why: list[str] = Field(description="What is not ready (empty when ready).")
    sync_target_height: int = Field(description="The highest trusted peer height the current (or last) "
                                    "catch-up aimed at (0 if none ran).")
    sync_blocks_per_s: float = Field(description="Blocks stored per second by the current (or last) catch-up.")
    sync_tx_per_s: float = Field(description="Transactions stored per second by the current (or last) catch-up.")


__all__ = [
    "BlockResponse",
    "CertificateModel",
    "ConsistencyResponse",
    "HeaderModel",
    "HealthResponse",
    "InclusionProofModel",
    "ProblemModel",
    "ReadyResponse",
    "StateProofModel",
    "StateResponse",
    "SubmitAccepted",
    "SubmitCommitted",
    "SubmitRequest",
    "TxBody",
    "TxResponse",
    "ValidatorModel",
    "ValidatorsResponse",
    "problem_responses",
]
