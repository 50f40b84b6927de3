"""OpenAPI models of the identity endpoints (:mod:`identity.http.node_routes`).

Each read answer extends the node's state answer (``node.api.models.StateResponse``:
key, height, value, proof, header, certificate) with the members that interpret
the value (:mod:`identity.views`).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from identity.constants import PRESENTATION_CHARS_MAX
from node.api.models import CertificateModel, HeaderModel, StateResponse


class DidResponse(StateResponse):
    did: str
    didDocument: dict[str, Any] = Field(description="W3C DID Core document (JsonWebKey2020 methods).")
    didDocumentMetadata: dict[str, Any] = Field(
        description="versionId, deactivated, created/updated height and time, nextKeyCommitment.")


class IssuerResponse(StateResponse):
    issuer: dict[str, Any] = Field(description="Accreditation record: did, name, status, vcts, times.")


class ServiceResponse(StateResponse):
    service: dict[str, Any] = Field(description="Registered service: did, name and purpose (en, zh-CN), "
                                                "queries [{vct, claims: [claims path]}], status, times.")


class CredentialTypeResponse(StateResponse):
    credential_type: dict[str, Any] = Field(description="The published credential type definition.")


class StatusListResponse(StateResponse):
    status_list: dict[str, Any] = Field(
        description='draft-ietf-oauth-status-list form: {"bits": 1|2, "lst": base64url(zlib(bytes))}.')
    list: dict[str, Any] = Field(description="list_id, issuer, bits, size, version, updated_ms/height.")


class VerifyRequest(BaseModel):
    """``POST /v1/verify`` body: a compact SD-JWT(+KB) and the verifier's question."""

    model_config = ConfigDict(extra="forbid", strict=True)

    presentation: str = Field(max_length=PRESENTATION_CHARS_MAX, description="Compact SD-JWT VC with KB-JWT.")
    request: dict[str, Any] = Field(description="identity.request.PresentationRequest JSON: nonce, aud, vct, "
                                                "claims, predicates, trusted_issuers, max_age_s, "
                                                "require_key_binding.")


class VerifyResponse(BaseModel):
    model_config = ConfigDict(extra="forbid")

    valid: bool
    reason: str | None = Field(description="null when valid; else a stable code of identity.verifier.")
    detail: str
    disclosed: dict[str, Any] = Field(description="Verified disclosed claims (empty when invalid).")
    checked_at: int = Field(description="The verifier's time, seconds since the epoch.")
    checked_at_height: int = Field(description="Every ledger read of this verdict is at this height.")
    block_hash: str
    header: HeaderModel
    certificate: CertificateModel


__all__ = [
    "CredentialTypeResponse",
    "DidResponse",
    "IssuerResponse",
    "ServiceResponse",
    "StatusListResponse",
    "VerifyRequest",
    "VerifyResponse",
]
