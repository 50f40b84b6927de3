"""DCQL, the Digital Credentials Query Language of OpenID4VP 1.0 (§6), for SD-JWT VC.

A verifier asks one question at one door with one query: several credentials
(``credentials``), each with the claims it wants (``claims``, claims path pointers,
§7), and which combinations satisfy it (``credential_sets``, ``claim_sets``).
:func:`parse_query` reads a query strictly against the text of §6 — required members,
types, identifier syntax, unique ids, every reference resolved — and bounds every
list (:mod:`identity.constants`); unknown members are ignored as §6 requires.

:func:`requested_paths` says what a query asks of one credential, and
:func:`beyond_registration` compares a whole query with what a service is
registered to ask (:mod:`identity.services`): the wallet refuses a request that
asks more, and says why. Only the ``dc+sd-jwt`` format is supported; a query for
another format is refused here rather than half-understood.
"""

from __future__ import annotations

import re
from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from identity.constants import (
    DCQL_CLAIM_SETS_MAX,
    DCQL_CLAIMS_MAX,
    DCQL_CREDENTIAL_SETS_MAX,
    DCQL_CREDENTIALS_MAX,
    DCQL_ID_CHARS_MAX,
    DCQL_PATH_DEPTH_MAX,
    DCQL_PATH_ELEMENT_CHARS_MAX,
    DCQL_VALUES_MAX,
    DCQL_VCT_VALUES_MAX,
    TYP_SD_JWT_VC,
)
from identity.errors import DcqlError

_ID_RE = re.compile(rf"^[A-Za-z0-9_-]{{1,{DCQL_ID_CHARS_MAX}}}$")

PathElement = str | int | None
ClaimPath = tuple[PathElement, ...]


@dataclass(frozen=True, slots=True)
class ClaimsQuery:
    """One entry of ``claims``: a claims path pointer, an optional id and expected values."""

    path: ClaimPath
    id: str | None = None
    values: tuple[str | int | bool, ...] | None = None


@dataclass(frozen=True, slots=True)
class CredentialQuery:
    """One entry of ``credentials`` (format ``dc+sd-jwt``)."""

    id: str
    vct_values: tuple[str, ...] | None
    claims: tuple[ClaimsQuery, ...] | None = None
    claim_sets: tuple[tuple[str, ...], ...] | None = None
    multiple: bool = False
    require_cryptographic_holder_binding: bool = True


@dataclass(frozen=True, slots=True)
class CredentialSetQuery:
    """One entry of ``credential_sets``: alternative lists of credential query ids."""

    options: tuple[tuple[str, ...], ...]
    required: bool = True
    purpose: Any = None


@dataclass(frozen=True, slots=True)
class DcqlQuery:
    """A parsed DCQL query; :meth:`to_json` gives back its canonical JSON form."""

    credentials: tuple[CredentialQuery, ...]
    credential_sets: tuple[CredentialSetQuery, ...] | None = None

    def credential(self, query_id: str) -> CredentialQuery:
        for item in self.credentials:
            if item.id == query_id:
                return item
        raise DcqlError(f"no credential query {query_id!r}")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"credentials": [_credential_json(c) for c in self.credentials]}
        if self.credential_sets is not None:
            out["credential_sets"] = [_set_json(s) for s in self.credential_sets]
        return out


# --- parsing ---------------------------------------------------------------------------------------
def parse_query(value: object) -> DcqlQuery:
    """The DCQL query ``value`` (decoded JSON), or :class:`DcqlError` naming the first fault."""
    query = _object(value, "the DCQL query")
    credentials = tuple(_parse_credential(c, f"credentials[{i}]")
                        for i, c in enumerate(_list(query.get("credentials"), "credentials",
                                                    DCQL_CREDENTIALS_MAX)))
    ids = [c.id for c in credentials]
    if len(set(ids)) != len(ids):
        raise DcqlError("a credential query id appears more than once")
    sets = None
    if "credential_sets" in query:
        sets = tuple(_parse_set(s, f"credential_sets[{i}]", set(ids))
                     for i, s in enumerate(_list(query["credential_sets"], "credential_sets",
                                                 DCQL_CREDENTIAL_SETS_MAX)))
    return DcqlQuery(credentials, sets)


def _parse_credential(value: object, where: str) -> CredentialQuery:
    item = _object(value, where)
    query_id = _identifier(item.get("id"), f"{where}.id")
    if item.get("format") != TYP_SD_JWT_VC:
        raise DcqlError(f"{where}.format must be {TYP_SD_JWT_VC!r} (the only format supported)",
                        reason="unsupported-format")
    meta = _object(item.get("meta", {}), f"{where}.meta")
    vct_values = None
    if "vct_values" in meta:
        vct_values = tuple(_string(v, f"{where}.meta.vct_values[]") for v in
                           _list(meta["vct_values"], f"{where}.meta.vct_values", DCQL_VCT_VALUES_MAX))
    claims = None
    if "claims" in item:
        claims = tuple(_parse_claim(c, f"{where}.claims[{i}]")
                       for i, c in enumerate(_list(item["claims"], f"{where}.claims", DCQL_CLAIMS_MAX)))
        _check_claims(claims, where)
    claim_sets = None
    if "claim_sets" in item:
        if claims is None:
            raise DcqlError(f"{where}.claim_sets needs claims")
        known = {c.id for c in claims}
        if None in known:
            raise DcqlError(f"{where}: every claim needs an id when claim_sets is present")
        claim_sets = tuple(_id_list(s, f"{where}.claim_sets[]", known, DCQL_CLAIMS_MAX)
                           for s in _list(item["claim_sets"], f"{where}.claim_sets", DCQL_CLAIM_SETS_MAX))
    return CredentialQuery(
        query_id, vct_values, claims, claim_sets,
        multiple=_bool(item.get("multiple", False), f"{where}.multiple"),
        require_cryptographic_holder_binding=_bool(
            item.get("require_cryptographic_holder_binding", True),
            f"{where}.require_cryptographic_holder_binding"),
    )


def _parse_claim(value: object, where: str) -> ClaimsQuery:
    item = _object(value, where)
    claim_id = _identifier(item["id"], f"{where}.id") if "id" in item else None
    path = parse_path(item.get("path"), f"{where}.path")
    values = None
    if "values" in item:
        values = tuple(_scalar(v, f"{where}.values[]")
                       for v in _list(item["values"], f"{where}.values", DCQL_VALUES_MAX))
    return ClaimsQuery(path, claim_id, values)


def _check_claims(claims: Sequence[ClaimsQuery], where: str) -> None:
    ids = [c.id for c in claims if c.id is not None]
    if len(set(ids)) != len(ids):
        raise DcqlError(f"{where}: a claim id appears more than once")
    paths = [c.path for c in claims]
    if len(set(paths)) != len(paths):  # §7: never the same claim twice in one query
        raise DcqlError(f"{where}: the same claims path appears more than once")


def _parse_set(value: object, where: str, known: set[str]) -> CredentialSetQuery:
    item = _object(value, where)
    options = tuple(_id_list(o, f"{where}.options[]", known, DCQL_CREDENTIALS_MAX)
                    for o in _list(item.get("options"), f"{where}.options", DCQL_CREDENTIAL_SETS_MAX))
    purpose = item.get("purpose")
    if purpose is not None and not isinstance(purpose, str | int | dict):
        raise DcqlError(f"{where}.purpose must be a string, number or object")
    return CredentialSetQuery(options, _bool(item.get("required", True), f"{where}.required"), purpose)


def parse_path(value: object, where: str = "path") -> ClaimPath:
    """A claims path pointer (§7): a non-empty array of strings, non-negative integers and nulls."""
    elements = _list(value, where, DCQL_PATH_DEPTH_MAX)
    path: list[PathElement] = []
    for element in elements:
        if element is None or (type(element) is int and element >= 0) or isinstance(element, str) and 0 < len(element) <= DCQL_PATH_ELEMENT_CHARS_MAX:
            path.append(element)
        else:
            raise DcqlError(f"{where} elements must be strings, non-negative integers or null")
    return tuple(path)


# --- what a query asks -----------------------------------------------------------------------------
def requested_paths(query: CredentialQuery) -> tuple[ClaimPath, ...] | None:
    """Every claims path the credential query may be answered with; ``None`` means every claim.

    With ``claim_sets`` the verifier gets one of the combinations, so it may learn
    any claim named in any of them (the union).
    """
    if query.claims is None:
        return None
    if query.claim_sets is None:
        return tuple(c.path for c in query.claims)
    wanted = {claim_id for option in query.claim_sets for claim_id in option}
    return tuple(c.path for c in query.claims if c.id in wanted)


def path_covers(allowed: ClaimPath, requested: ClaimPath) -> bool:
    """Whether the registered path ``allowed`` covers ``requested``.

    ``allowed`` covers its own sub-claims (``["address"]`` covers ``["address",
    "locality"]``), never the other way round; a null (every element) in ``allowed``
    covers any index or null at that place, an index covers only itself.
    """
    if len(allowed) > len(requested):
        return False
    for mine, theirs in zip(allowed, requested, strict=False):
        if mine is None:
            if not (theirs is None or type(theirs) is int):
                return False
        elif mine != theirs or type(mine) is not type(theirs):
            return False
    return True


def beyond_registration(query: DcqlQuery, allowed: Mapping[str, Iterable[ClaimPath]]) -> list[str]:
    """What ``query`` asks beyond ``allowed`` (vct -> registered claims paths), one line each.

    Empty means the query stays within the registration. A credential query must name
    its types (``meta.vct_values``), each registered, and its claims; asking for a
    whole credential (no ``claims``) is always beyond a registration.
    """
    faults: list[str] = []
    for item in query.credentials:
        if not item.vct_values:
            faults.append(f"{item.id}: no vct_values: any credential type")
            continue
        unknown = [v for v in item.vct_values if v not in allowed]
        if unknown:
            faults.append(f"{item.id}: type(s) not registered: {', '.join(unknown)}")
            continue
        paths = requested_paths(item)
        if paths is None:
            faults.append(f"{item.id}: no claims: every claim of the credential")
            continue
        for vct in item.vct_values:
            registered = tuple(allowed[vct])
            for path in paths:
                if not any(path_covers(mine, path) for mine in registered):
                    faults.append(f"{item.id}: {vct} claim {list(path)} not registered")
    return faults


# --- small strict readers ----------------------------------------------------------------------------
def _object(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise DcqlError(f"{where} must be an object")
    return value


def _list(value: object, where: str, most: int) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise DcqlError(f"{where} must be a non-empty array")
    if len(value) > most:
        raise DcqlError(f"{where} has more than {most} entries", reason="dcql-too-large")
    return value


def _identifier(value: object, where: str) -> str:
    if not isinstance(value, str) or not _ID_RE.match(value):
        raise DcqlError(f"{where} must be 1..{DCQL_ID_CHARS_MAX} of A-Z a-z 0-9 _ -")
    return value


def _id_list(value: object, where: str, known: Container[object], most: int) -> tuple[str, ...]:
    ids = tuple(_identifier(v, where) for v in _list(value, where, most))
    missing = [i for i in ids if i not in known]
    if missing:
        raise DcqlError(f"{where} names unknown id(s): {', '.join(missing)}")
    return ids


def _string(value: object, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise DcqlError(f"{where} must be a non-empty string")
    return value


def _bool(value: object, where: str) -> bool:
    if not isinstance(value, bool):
        raise DcqlError(f"{where} must be true or false")
    return value


def _scalar(value: object, where: str) -> str | int | bool:
    if not isinstance(value, str | int | bool):
        raise DcqlError(f"{where} must be a string, an integer or a boolean")
    return value


# --- back to JSON --------------------------------------------------------------------------------------
def _credential_json(item: CredentialQuery) -> dict[str, Any]:
    out: dict[str, Any] = {"id": item.id, "format": TYP_SD_JWT_VC, "meta": {}}
    if item.vct_values is not None:
        out["meta"]["vct_values"] = list(item.vct_values)
    if item.claims is not None:
        out["claims"] = [_claim_json(c) for c in item.claims]
    if item.claim_sets is not None:
        out["claim_sets"] = [list(s) for s in item.claim_sets]
    if item.multiple:
        out["multiple"] = True
    if not item.require_cryptographic_holder_binding:
        out["require_cryptographic_holder_binding"] = False
    return out


def _claim_json(claim: ClaimsQuery) -> dict[str, Any]:
    out: dict[str, Any] = {"path": list(claim.path)}
    if claim.id is not None:
        out["id"] = claim.id
    if claim.values is not None:
        out["values"] = list(claim.values)
    return out


def _set_json(item: CredentialSetQuery) -> dict[str, Any]:
    out: dict[str, Any] = {"options": [list(o) for o in item.options]}
    if not item.required:
        out["required"] = False
    if item.purpose is not None:
        out["purpose"] = item.purpose
    return out


__all__ = [
    "ClaimPath",
    "ClaimsQuery",
    "CredentialQuery",
    "CredentialSetQuery",
    "DcqlQuery",
    "beyond_registration",
    "parse_path",
    "parse_query",
    "path_covers",
    "requested_paths",
]
