"""Interpreted views of certified identity records, shared by the node API and its clients.

An identity answer (``GET /v1/dids/{did}`` and friends) is a state answer —
``{key, height, value, proof, header, certificate}`` as ``GET /v1/state`` gives it —
plus members that interpret ``value`` for humans and simple clients (the DID
document, the issuer record, the Token Status List). Those members are a pure
function of ``value``: :func:`view` computes them, on the node to build the
answer and in :class:`identity.fetcher.IdentityHttpFetcher` to check that
what a node served is exactly what the proven bytes say. So a node that edits
the readable part without the bytes is caught, and one that edits the bytes is
caught by the light client's proof check.

Kinds (the state key's first segment, :mod:`ledger.statekeys`):

==========  =================================================================
``did``     ``did``, ``didDocument``, ``didDocumentMetadata`` (DID Core §7.1)
``issuer``  ``issuer``: {did, name, status, vcts, accredited_ms, updated_*}
``service`` ``service``: {did, name, purpose, queries, status, registered_ms, updated_*}
``vct``     ``credential_type``: the published definition
``status``  ``status_list``: {bits, lst} (draft-ietf-oauth-status-list), and
            ``list``: {list_id, issuer, bits, size, version, updated_*}
==========  =================================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from identity import did as didmod
from identity import status_list as sl
from identity.errors import LightClientError, StatusListError
from ledger.encoding import Value, decode
from ledger.errors import KeyError_, LedgerError
from ledger.keys import b64url_decode

# Members every state answer carries; everything else in an identity answer is a view.
STATE_MEMBERS = frozenset({"key", "height", "value", "proof", "header", "certificate"})
KINDS = ("did", "issuer", "service", "vct", "status")


def kind_of(key: bytes) -> str | None:
    """The identity kind of a state key (``did``, ``issuer``, ``service``, ``vct``, ``status``), or None."""
    head, sep, _ = key.partition(b"/")
    kind = head.decode("ascii", errors="replace")
    return kind if sep and kind in KINDS else None


def plain(value: Value) -> Any:
    """A stored value as JSON: bytes become lowercase hex (as in transaction views)."""
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def _record(raw: bytes) -> dict[str, Any]:
    try:
        value = decode(raw)
    except LedgerError as exc:
        raise LightClientError(f"stored value is not canonical: {exc}", reason="malformed-value") from exc
    if not isinstance(value, dict):
        raise LightClientError("stored value is not a record", reason="malformed-value")
    return value


def did_view(record: Mapping[str, Any]) -> dict[str, Any]:
    return {"did": record["did"], **didmod.resolution(record)}


def status_list_view(record: Mapping[str, Any]) -> dict[str, Any]:
    lst, bits = record["lst"], record["bits"]
    if not isinstance(lst, bytes) or not isinstance(bits, int):
        raise LightClientError("status list record has an unexpected shape", reason="malformed-value")
    meta = {k: plain(v) for k, v in record.items() if k != "lst"}
    return {"status_list": sl.to_json(lst, bits), "list": meta}


def view(kind: str, raw: bytes) -> dict[str, Any]:
    """The interpreted members of an answer of ``kind`` whose certified value is ``raw``.

    Raises :class:`LightClientError` (``malformed-value``) when the bytes do not
    hold a record of that kind.
    """
    record = _record(raw)
    try:
        if kind == "did":
            return did_view(record)
        if kind == "issuer":
            return {"issuer": plain(record)}
        if kind == "service":
            return {"service": plain(record)}
        if kind == "vct":
            return {"credential_type": plain(record)}
        if kind == "status":
            return status_list_view(record)
    except (KeyError, TypeError, ValueError, LedgerError, StatusListError) as exc:
        raise LightClientError(f"{kind} record has an unexpected shape: {exc}", reason="malformed-value") from exc
    raise LightClientError(f"no view for kind {kind!r}", reason="malformed-value")


def check_view(kind: str, answer: Mapping[str, Any]) -> None:
    """Raise :class:`LightClientError` (``inconsistent-answer``) unless the interpreted
    members of ``answer`` are exactly :func:`view` of its ``value`` (none when absent).

    This checks the answer against itself only; the light client then proves
    ``value`` against a certified header.
    """
    served = {k: v for k, v in answer.items() if k not in STATE_MEMBERS}
    raw = answer.get("value")
    if raw is None:
        expected: dict[str, Any] = {}
        served = {k: v for k, v in served.items() if k not in _PROBLEM_MEMBERS}
    else:
        try:
            expected = view(kind, b64url_decode(raw))
        except KeyError_ as exc:
            raise LightClientError(f"value is not base64url: {exc}", reason="malformed-response") from exc
    if served != expected:
        differing = sorted(set(served) ^ set(expected) | {k for k in served if served.get(k) != expected.get(k)})
        raise LightClientError(f"answer's {', '.join(differing)[:120]} differ from its certified value",
                               reason="inconsistent-answer")


# A proven absence comes as an RFC 9457 problem whose extension members are the state answer.
_PROBLEM_MEMBERS = frozenset({"type", "title", "status", "detail", "reason"})

__all__ = ["KINDS", "STATE_MEMBERS", "check_view", "did_view", "kind_of", "plain", "status_list_view", "view"]
