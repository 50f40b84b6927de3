"""Execution rules for identity transactions: ``IDENTITY_HANDLERS``.

Compose them into a node with ``Executor(chain_id, {**DEVNET_HANDLERS,
**IDENTITY_HANDLERS})``. Every handler follows the execution contract of
:mod:`ledger.execution`: deterministic (time and height from the block context
only), reads and writes through the overlay, and rejects by raising an
:class:`~identity.errors.IdentityTxError` with a stable reason.

Every handler first calls :func:`identity.authz.authorize` (the authorization
table), then checks the payload and the lifecycle transition, then writes.

Payloads (bytes are CBOR byte strings; ``?`` marks optional fields):

=====================  =================================================================
type                   payload
=====================  =================================================================
did.create             {jwk, next_key_commitment, services?, registrar?}
did.update             {services?, keys?: [{jwk, purposes}]} (at least one)
did.rotate             {jwk (the committed next key), next_key_commitment}
did.deactivate         {jwk (the committed next key, which signs)}
did.recover            {jwk (new key), next_key_commitment, issuer}
gov.validator_add      {validator: {name, jwk, power, address, tls_spki_sha256}}
gov.validator_remove   {key_id}
gov.issuer_accredit    {did, name, vcts: [vct]}
gov.issuer_suspend     {did}   (also gov.issuer_reinstate, gov.issuer_remove)
gov.service_register   {did, name: {en, zh-CN}, purpose: {en, zh-CN}, queries: [{vct, claims:
                       [claims path]}]}   (identity.services)
gov.service_suspend    {did}   (also gov.service_reinstate, gov.service_remove)
gov.policy_set         {policy: {self_register_dids?, issuer_recovery?, recovery_vct?,
                       heartbeat_ms?}}
gov.trustees_set       {keys: [jwk], threshold}
vct.publish            {vct, name, claims, selectively_disclosable?, predicates?}
anchor.put             {digests: [32 bytes]}
status.create_list     {list_id, bits (1|2), size}
status.set             {list_id, updates: [[index, status]]}
=====================  =================================================================
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from identity import did as didmod
from identity import governance as gov
from identity import services
from identity import status_list as sl
from identity.anchors import parse_digests
from identity.authz import AUTH_TABLE, Authorized, authorize
from identity.credtypes import parse_definition
from identity.errors import (
    IdentityTxError,
    NotFoundTxError,
    PayloadError,
    StatusListError,
    TransitionError,
)
from identity.ledger_constants import (
    DID_VERSIONS_MAX,
    STATUS_LIST_ID_CHARS_MAX,
    STATUS_LIST_SIZE_MIN,
    STATUS_UPDATES_PER_TX_MAX,
)
from ledger import statekeys
from ledger.encoding import Value
from ledger.errors import BlockError
from ledger.execution import BlockContext, Handler, Overlay, schedule_validator_set
from ledger.tx import Transaction
from ledger.validators import Validator, ValidatorSet

_LIST_ID_RE = re.compile(rf"^[A-Za-z0-9._:-]{{1,{STATUS_LIST_ID_CHARS_MAX}}}$")
Apply = Callable[[Transaction, Overlay, BlockContext, Authorized], None]


def _fields(tx: Transaction, required: set[str], optional: frozenset[str] | set[str] = frozenset()) -> Mapping[str, Any]:
    keys = set(tx.payload)
    if keys - required - optional or required - keys:
        raise PayloadError(f"{tx.type} payload must have {sorted(required)} "
                           f"(optional {sorted(optional)})", reason="bad-payload")
    return tx.payload


def _int(value: Value) -> int:
    """A stored integer (state written by these rules); anything else is corrupt state."""
    if type(value) is not int:
        raise IdentityTxError("stored record has a non-integer field", reason="corrupt-record")
    return value


def _stamp(ctx: BlockContext) -> dict[str, Value]:
    return {"updated_ms": ctx.time_ms, "updated_height": ctx.height}


# --- DIDs -------------------------------------------------------------------------------------
def _write_did(state: Overlay, record: dict[str, Value]) -> None:
    did, version = str(record["did"]), _int(record["version"])
    if version > DID_VERSIONS_MAX:
        raise TransitionError("DID has too many versions", reason="too-many-versions")
    state.put_value(statekeys.did_key(did), record)
    state.put_value(statekeys.did_version_key(did, version), record)


def _next_version(tx: Transaction, auth: Authorized, ctx: BlockContext, action: str,
                  **changes: Value) -> dict[str, Value]:
    assert auth.record is not None
    old = auth.record.value
    record: dict[str, Value] = dict(old)
    record.update(changes)
    record.update(_stamp(ctx))
    record["status"] = didmod.transition(auth.record.status, action)
    record["version"] = auth.record.version + 1
    record["via"] = tx.type
    record["tx"] = tx.tx_id
    return record


def _new_commitment(tx: Transaction, auth: Authorized | None) -> bytes:
    commitment = didmod.check_commitment(tx.payload["next_key_commitment"])
    if auth is not None and auth.record is not None and commitment == auth.record.next_key_commitment:
        raise PayloadError("the new next-key commitment repeats the old one", reason="commitment-reuse")
    jwk = tx.payload["jwk"]
    if isinstance(jwk, dict) and commitment == didmod.key_commitment(jwk):
        raise PayloadError("the next key must differ from the key being installed",
                           reason="commitment-reuse")
    return commitment


def did_create(tx: Transaction, state: Overlay, ctx: BlockContext, auth: Authorized) -> None:
    p = _fields(tx, {"jwk", "next_key_commitment"}, {"services", "registrar"})
    didmod.transition(None if auth.record is None else auth.record.status, "create")
    controller = didmod.key_entry(p["jwk"])
    record: dict[str, Value] = {
        "did": tx.sender, "version": 1, "status": didmod.ACTIVE,
        "controller_key": controller["id"], "keys": [controller],
        "next_key_commitment": _new_commitment(tx, None),
        "services": didmod.parse_services(p.get("services", [])),
        "created_ms": ctx.time_ms, "created_height": ctx.height, "via": tx.type, "tx": tx.tx_id,
        **_stamp(ctx),
    }
    _write_did(state, record)


def did_update(tx: Transaction, state: Overlay, ctx: BlockContext, auth: Authorized) -> None:
    p = _fields(tx, set(), {"services", "keys"})
    if not p:
        raise PayloadError("did.update needs services or keys", reason="bad-payload")
    assert auth.record is not None
    changes: dict[str, Value] = {}
    if "services" in p:
        changes["services"] = didmod.parse_services(p["services"])
    if "keys" in p:
        controller_id = str(auth.record.value["controller_key"])
        controller = [e for e in auth.record.value["keys"] if e["id"] == controller_id]
        changes["keys"] = controller + didmod.parse_extra_keys(p["keys"], controller_id)
    _write_did(state, _next_version(tx, auth, ctx, "update", **changes))


def did_rotate(tx: Transaction, state: Overlay, ctx: BlockContext, auth: Authorized) -> None:
    p = _fields(tx, {"jwk", "next_key_commitment"})
    controller = didmod.key_entry(p["jwk"])
    # A rotation establishes a new key state: extra keys go too, so keys a thief of
    # the old controller key may have added do not survive it. Re-add with did.update.
    _write_did(state, _next_version(
        tx, auth, ctx, "rotate", controller_key=controller["id"], keys=[controller],
        next_key_commitment=_new_commitment(tx, auth)))


def did_deactivate(tx: Transaction, state: Overlay, ctx: BlockContext, auth: Authorized) -> None:
    _fields(tx, {"jwk"})
    _write_did(state, _next_version(tx, auth, ctx, "deactivate"))


def did_recover(tx: Transaction, state: Overlay, ctx: BlockContext, auth: Authorized) -> None:
    p = _fields(tx, {"jwk", "next_key_commitment", "issuer"})
    controller = didmod.key_entry(p["jwk"])
    # The holder lost every key: all of them are dropped, only the new one is bound.
    _write_did(state, _next_version(
        tx, auth, ctx, "recover", controller_key=controller["id"], keys=[controller],
        next_key_commitment=_new_commitment(tx, auth), recovered_by=p["issuer"]))


# --- governance ------------------------------------------------------------------------------------
def _schedule(state: Overlay, ctx: BlockContext, validators: list[Validator]) -> None:
    try:
        new_set = ValidatorSet.of(validators)
    except BlockError as exc:
        raise PayloadError(f"resulting validator set: {exc}", reason="bad-validator-set") from exc
    schedule_validator_set(state, new_set, ctx)


def gov_validator_add(tx: Transaction, state: Overlay, ctx: BlockContext, auth: Authorized) -> None:
    p = _fields(tx, {"validator"})
    try:
        validator = Validator.from_value(p["validator"])
    except BlockError as exc:
        raise PayloadError(f"validator: {exc}", reason="bad-validator") from exc
    current = gov.latest_validator_set(state)
    if current.get(validator.key_id) is not None:
        raise TransitionError("validator already in the set", reason="validator-exists")
    _schedule(state, ctx, list(current.validators) + [validator])


def gov_validator_remove(tx: Transaction, state: Overlay, ctx: BlockContext, auth: Authorized) -> None:
    p = _fields(tx, {"key_id"})
    current = gov.latest_validator_set(state)
    if not isinstance(p["key_id"], str) or current.get(p["key_id"]) is None:
        raise NotFoundTxError("no such validator", reason="validator-not-found")
    _schedule(state, ctx, [v for v in current.validators if v.key_id != p["key_id"]])


def gov_issuer_accredit(tx: Transaction, state: Overlay, ctx: BlockContext, auth: Authorized) -> None:
    p = _fields(tx, {"did", "name", "vcts"})
    did = didmod.check_did(p["did"])
    record = _did_record(state, did)
    if record is None or not record.active:
        raise NotFoundTxError("issuer DID not found or deactivated", reason="did-not-found")
    old = gov.read_issuer(state, did)
    status = gov.issuer_transition(None if old is None else old["status"], "accredit")
    state.put_value(statekeys.issuer_key(did), {
        "did": did, "name": gov.check_name(p["name"]), "vcts": gov.parse_vcts(p["vcts"]),
        "status": status, "accredited_ms": ctx.time_ms if old is None else old["accredited_ms"],
        **_stamp(ctx),
    })


def _lifecycle_move(action: str, read: Callable[[Overlay, str], dict[str, Any] | None],
                    transition: Callable[[str | None, str], str], key: Callable[[str], bytes]) -> Apply:
    """A ``{did}`` transaction moving an issuer's or a service's record along its table."""
    def apply(tx: Transaction, state: Overlay, ctx: BlockContext, auth: Authorized) -> None:
        did = didmod.check_did(_fields(tx, {"did"})["did"])
        old = read(state, did)
        status = transition(None if old is None else old["status"], action)
        assert old is not None  # the tables allow no move from "never recorded" but the first
        state.put_value(key(did), {**old, "status": status, **_stamp(ctx)})
    return apply


def _issuer_move(action: str) -> Apply:
    return _lifecycle_move(action, gov.read_issuer, gov.issuer_transition, statekeys.issuer_key)


def _service_move(action: str) -> Apply:
    return _lifecycle_move(action, services.read_service, services.service_transition,
                           statekeys.service_key)


def gov_service_register(tx: Transaction, state: Overlay, ctx: BlockContext, auth: Authorized) -> None:
    p = _fields(tx, {"did", "name", "purpose", "queries"})
    did = didmod.check_did(p["did"])
    record = _did_record(state, did)
    if record is None or not record.active:
        raise NotFoundTxError("service DID not found or deactivated", reason="did-not-found")
    old = services.read_service(state, did)
    status = services.service_transition(None if old is None else old["status"], "register")
    state.put_value(statekeys.service_key(did), {
        "did": did, **services.parse_registration(p), "status": status,
        "registered_ms": ctx.time_ms if old is None else old["registered_ms"], **_stamp(ctx),
    })


def gov_policy_set(tx: Transaction, state: Overlay, ctx: BlockContext, auth: Authorized) -> None:
    update = gov.parse_policy_update(_fields(tx, {"policy"})["policy"])
    current = state.get_value(statekeys.POLICY)
    policy = dict(current) if isinstance(current, dict) else {}
    policy.update(update)
    state.put_value(statekeys.POLICY, policy)


def gov_trustees_set(tx: Transaction, state: Overlay, ctx: BlockContext, auth: Authorized) -> None:
    state.put_value(statekeys.TRUSTEES, gov.parse_trustees(_fields(tx, {"keys", "threshold"})))


# --- issuers: credential types, anchors, status lists -------------------------------------------------
def vct_publish(tx: Transaction, state: Overlay, ctx: BlockContext, auth: Authorized) -> None:
    definition = parse_definition(tx.payload)
    key = statekeys.vct_key(str(definition["vct"]))
    old = state.get_value(key)
    version = _int(old["version"]) + 1 if isinstance(old, dict) else 1
    state.put_value(key, {**definition, "issuer": tx.sender, "version": version, **_stamp(ctx)})


def anchor_put(tx: Transaction, state: Overlay, ctx: BlockContext, auth: Authorized) -> None:
    for digest in parse_digests(_fields(tx, {"digests"})["digests"]):
        key = statekeys.anchor_key(digest.hex())
        if state.get(key) is not None:
            raise TransitionError("anchor already recorded", reason="anchor-exists")
        state.put_value(key, {"issuer": tx.sender, "time_ms": ctx.time_ms, "height": ctx.height})


def _list_id(value: object) -> str:
    if not isinstance(value, str) or not _LIST_ID_RE.match(value):
        raise PayloadError("list_id must match [A-Za-z0-9._:-]{1,96}", reason="bad-list-id")
    return value


def status_create_list(tx: Transaction, state: Overlay, ctx: BlockContext, auth: Authorized) -> None:
    p = _fields(tx, {"list_id", "bits", "size"})
    key = statekeys.status_list_key(_list_id(p["list_id"]))
    if state.get(key) is not None:
        raise TransitionError("status list already exists", reason="list-exists")
    size = p["size"]
    if type(size) is not int or size < STATUS_LIST_SIZE_MIN or size % 8:
        raise PayloadError(f"size must be a multiple of 8, at least {STATUS_LIST_SIZE_MIN}",
                           reason="bad-size")
    try:
        lst = sl.new_list(size, p["bits"])
    except StatusListError as exc:
        raise PayloadError(str(exc), reason=exc.reason) from exc
    state.put_value(key, {"list_id": p["list_id"], "issuer": tx.sender, "bits": p["bits"], "size": size,
                          "lst": lst, "version": 1, **_stamp(ctx)})


def status_set(tx: Transaction, state: Overlay, ctx: BlockContext, auth: Authorized) -> None:
    p = _fields(tx, {"list_id", "updates"})
    key = statekeys.status_list_key(_list_id(p["list_id"]))
    record = state.get_value(key)
    assert isinstance(record, dict)  # authorize checked the list exists
    updates = p["updates"]
    if not isinstance(updates, list) or not 0 < len(updates) <= STATUS_UPDATES_PER_TX_MAX:
        raise PayloadError(f"updates must list 1..{STATUS_UPDATES_PER_TX_MAX} entries", reason="bad-payload")
    pairs: list[tuple[int, int]] = []
    for item in updates:
        if not (isinstance(item, list) and len(item) == 2 and all(type(x) is int for x in item)):
            raise PayloadError("each update is [index, status]", reason="bad-payload")
        if not 0 <= item[0] < _int(record["size"]):
            raise PayloadError("index outside the list", reason="index-out-of-range")
        pairs.append((item[0], item[1]))
    try:
        lst = sl.apply_updates(record["lst"], record["bits"], pairs)  # type: ignore[arg-type]
    except StatusListError as exc:
        raise TransitionError(str(exc), reason=exc.reason) from exc
    state.put_value(key, {**record, "lst": lst, "version": _int(record["version"]) + 1,
                          **_stamp(ctx)})


def _did_record(state: Overlay, did: str) -> didmod.DidRecord | None:
    from identity.authz import read_did

    return read_did(state, did)


# --- composition --------------------------------------------------------------------------------------
def _handler(apply: Apply) -> Handler:
    def handler(tx: Transaction, state: Overlay, ctx: BlockContext) -> None:
        auth = authorize(tx, state, ctx)
        apply(tx, state, ctx, auth)
    handler.__name__ = apply.__name__ if hasattr(apply, "__name__") else "handler"
    handler.__doc__ = apply.__doc__
    return handler


_APPLY: dict[str, Apply] = {
    "did.create": did_create,
    "did.update": did_update,
    "did.rotate": did_rotate,
    "did.deactivate": did_deactivate,
    "did.recover": did_recover,
    "gov.validator_add": gov_validator_add,
    "gov.validator_remove": gov_validator_remove,
    "gov.issuer_accredit": gov_issuer_accredit,
    "gov.issuer_suspend": _issuer_move("suspend"),
    "gov.issuer_reinstate": _issuer_move("reinstate"),
    "gov.issuer_remove": _issuer_move("remove"),
    "gov.service_register": gov_service_register,
    "gov.service_suspend": _service_move("suspend"),
    "gov.service_reinstate": _service_move("reinstate"),
    "gov.service_remove": _service_move("remove"),
    "gov.policy_set": gov_policy_set,
    "gov.trustees_set": gov_trustees_set,
    "vct.publish": vct_publish,
    "anchor.put": anchor_put,
    "status.create_list": status_create_list,
    "status.set": status_set,
}
if set(_APPLY) != set(AUTH_TABLE):  # checked under -O too: a type without its row is never authorized
    raise ImportError(f"every transaction type needs exactly one authorization row: "
                      f"{sorted(set(_APPLY) ^ set(AUTH_TABLE))}")

IDENTITY_HANDLERS: dict[str, Handler] = {t: _handler(a) for t, a in _APPLY.items()}

__all__ = ["IDENTITY_HANDLERS", "IdentityTxError"]
