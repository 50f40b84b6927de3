"""`imi wallet`: the citizen's encrypted wallet.

The wallet file comes from ``--wallet`` (or ``IMI_WALLET``); the password from
``--password-file``, else ``IMI_WALLET_PASSWORD``, else a prompt. A recovery kit
(the DID's next key, kept off the phone) is encrypted the same way under its own
password: ``--kit-password-file``, else ``IMI_KIT_PASSWORD``, else a prompt. Exit 0
ok, 1 with ``error [reason]: ...`` on stderr, 2 usage.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer

from cli import _ledger_client
from cli._common import (
    Alg,
    fail,
    print_json,
    read_json_object,
    read_text_file,
    serve_app,
    usage,
)
from cli._ledger_client import check_did_arg
from identity.errors import IdentityError
from identity.ledger_constants import FRESHNESS_MS_DEFAULT
from identity.request import PresentationRequest
from identity.wallet import CredentialSummary, KdfParams, Wallet
from ledger.keys import SigningKey

app = typer.Typer(help="The citizen's encrypted wallet.", no_args_is_help=True)

WALLET_OPT = typer.Option(..., "--wallet", envvar="IMI_WALLET", help="Wallet file.")
PASSWORD_OPT = typer.Option(None, "--password-file", help="File whose first line is the password.")
NOW_OPT = typer.Option(None, "--now", hidden=True, help="Seconds since the epoch (tests).")


def _json_opt(shape: str) -> Any:
    return typer.Option(False, "--json", help=f"Print {shape}; failures as {{ok: false, reason}}.")


def _prompt_secret(label: str, *, confirm: bool) -> str:
    """A hidden prompt on the terminal, or on stderr when there is none: never on stdout, which
    may be redirected into the answer's file."""
    return str(typer.prompt(label, hide_input=True, confirmation_prompt=confirm, err=True))


def _password(password_file: Path | None, *, confirm: bool = False) -> str:
    if password_file is not None:
        lines = read_text_file(password_file, "password file").splitlines()
        return lines[0] if lines else ""
    from_env = os.environ.get("IMI_WALLET_PASSWORD")
    if from_env is not None:
        return from_env
    return _prompt_secret("wallet password", confirm=confirm)


def _open(wallet: Path, password_file: Path | None) -> Wallet:
    try:
        return Wallet.open(wallet, _password(password_file))
    except IdentityError as exc:
        fail(str(exc), reason=exc.reason)


def _now(now: int | None) -> int:
    return int(time.time()) if now is None else now


@app.command("init")
def init(
    wallet: Path = WALLET_OPT,
    password_file: Path | None = PASSWORD_OPT,
    alg: Alg = typer.Option(Alg.ES256, "--alg", help="Algorithm of the first holder key."),
    fast_kdf: bool = typer.Option(False, "--insecure-fast-kdf", hidden=True, help="Tests only."),
    as_json: bool = _json_opt("{ok, wallet, kid, alg}"),
) -> None:
    """Create a wallet with one holder key; print the key id."""
    try:
        kdf = KdfParams.fastest() if fast_kdf else KdfParams()
        opened = Wallet.create(wallet, _password(password_file, confirm=True), kdf=kdf)
        key_id = opened.new_key(alg.value)
        opened.save()
    except IdentityError as exc:
        fail(str(exc), reason=exc.reason)
    if as_json:
        print_json({"ok": True, "wallet": str(wallet), "kid": key_id, "alg": alg.value})
    else:
        typer.echo(key_id)


@app.command("key-new")
def key_new(wallet: Path = WALLET_OPT, password_file: Path | None = PASSWORD_OPT,
            alg: Alg = typer.Option(Alg.ES256, "--alg", help="EdDSA or ES256."),
            as_json: bool = _json_opt("{ok, kid, alg}")) -> None:
    """Add a holder key; print its id."""
    opened = _open(wallet, password_file)
    try:
        key_id = opened.new_key(alg.value)
        opened.save()
    except IdentityError as exc:
        fail(str(exc), reason=exc.reason)
    if as_json:
        print_json({"ok": True, "kid": key_id, "alg": alg.value})
    else:
        typer.echo(key_id)


@app.command("key-public")
def key_public(key_id: str | None = typer.Argument(None, help="Key id (default: the only/first key)."),
               wallet: Path = WALLET_OPT, password_file: Path | None = PASSWORD_OPT,
               as_json: bool = _json_opt("{ok, kid, alg, public_jwk}")) -> None:
    """Print a holder public JWK (give it to an issuer as --holder-jwk)."""
    opened = _open(wallet, password_file)
    ids = opened.key_ids()
    chosen = key_id if key_id is not None else (ids[0] if ids else "")
    try:
        public = opened.public_key(chosen)
    except IdentityError as exc:
        fail(str(exc), reason=exc.reason)
    if as_json:
        print_json({"ok": True, "kid": public.key_id, "alg": public.alg, "public_jwk": public.to_jwk()})
    else:
        typer.echo(json.dumps(public.to_jwk(), indent=2))


@app.command("add")
def add(credential: Path = typer.Option(..., "--credential", help="File holding an issued SD-JWT."),
        key: str | None = typer.Option(None, "--key", help="Holder key id (default: from cnf.jwk)."),
        wallet: Path = WALLET_OPT, password_file: Path | None = PASSWORD_OPT,
        now: int | None = NOW_OPT, as_json: bool = _json_opt("{ok, id, vct, iss, holder_key, claims}")) -> None:
    """Store a credential; print its id."""
    opened = _open(wallet, password_file)
    try:
        cred_id = opened.add_credential(read_text_file(credential, "credential"), holder_key=key,
                                        now=_now(now))
        opened.save()
    except IdentityError as exc:
        fail(str(exc), reason=exc.reason)
    if as_json:
        held = next(s for s in opened.credentials() if s.id == cred_id)
        print_json({"ok": True, "id": cred_id, "vct": held.vct, "iss": held.iss, "holder_key": held.holder_key,
                    "claims": list(held.claims)})
    else:
        typer.echo(cred_id)


@app.command("list")
def list_(wallet: Path = WALLET_OPT, password_file: Path | None = PASSWORD_OPT,
          as_json: bool = typer.Option(False, "--json", help="Print a JSON list.")) -> None:
    """List held credentials (id, type, issuer, claim names, one-time use of its batch)."""
    summaries = _open(wallet, password_file).credentials()
    if as_json:
        typer.echo(json.dumps([{"id": s.id, "iss": s.iss, "vct": s.vct, "iat": s.iat, "exp": s.exp,
                                "holder_key": s.holder_key, "claims": list(s.claims), **_usage(s)}
                               for s in summaries], indent=2))
        return
    for s in summaries:
        typer.echo(f"{s.id}  {s.vct}  {s.iss}  claims: {', '.join(s.claims)}  "
                   f"[{s.usage()}, presented {s.uses}x]")


def _usage(summary: CredentialSummary) -> dict[str, Any]:
    return {"uses": summary.uses, "batch": list(summary.batch), "batch_unused": summary.batch_unused}


@app.command("show")
def show(cred_id: str = typer.Argument(..., help="Credential id (imi wallet list)."), wallet: Path = WALLET_OPT,
         password_file: Path | None = PASSWORD_OPT,
         as_json: bool = _json_opt("{ok, id, claims, uses, batch, batch_unused}")) -> None:
    """Print every claim of one credential (JSON); its batch's one-time use goes to stderr."""
    opened = _open(wallet, password_file)
    try:
        claims = opened.show(cred_id)
    except IdentityError as exc:
        fail(str(exc), reason=exc.reason)
    summary = next(s for s in opened.credentials() if s.id == cred_id)
    if as_json:
        typer.echo(json.dumps({"ok": True, "id": cred_id, "claims": claims, **_usage(summary)}, indent=2,
                              sort_keys=True, ensure_ascii=False))
        return
    typer.echo(json.dumps(claims, indent=2, sort_keys=True, ensure_ascii=False))
    typer.echo(f"one-time use: {summary.usage()} in its batch; this one presented {summary.uses}x", err=True)


@app.command("when-used-up")
def when_used_up(policy: str | None = typer.Argument(None, help="reuse (answer with the least-used one and "
                                                                 "say so) or refuse; none: print it."),
                 wallet: Path = WALLET_OPT, password_file: Path | None = PASSWORD_OPT,
                 as_json: bool = _json_opt("{ok, when_used_up}")) -> None:
    """What answering does once every one-time credential of a batch was presented."""
    opened = _open(wallet, password_file)
    if policy is not None:
        try:
            opened.set_when_used_up(policy)
            opened.save()
        except IdentityError as exc:
            fail(str(exc), reason=exc.reason, as_json=as_json)
    if as_json:
        print_json({"ok": True, "when_used_up": opened.when_used_up})
    else:
        typer.echo(opened.when_used_up)


@app.command("answer")
def answer(request: Path = typer.Option(..., "--request", help="JSON request (nonce, aud, claims, ...)."),
           credential: str | None = typer.Option(None, "--credential", help="Use this credential id."),
           wallet: Path = WALLET_OPT, password_file: Path | None = PASSWORD_OPT,
           now: int | None = NOW_OPT,
           as_json: bool = _json_opt("{ok, presentation, credential, vct, iss, aud, nonce, disclosed}")) -> None:
    """Answer a verifier's request with the minimum disclosure; print the presentation."""
    try:
        parsed = PresentationRequest.from_json(read_json_object(request, "request"))
    except ValueError as exc:
        fail(f"bad request: {exc}", reason="bad-request")
    opened = _open(wallet, password_file)
    try:
        presentation = opened.answer(parsed, now=_now(now), credential=credential)
        opened.save()
    except IdentityError as exc:
        fail(str(exc), reason=exc.reason)
    if as_json:
        record = opened.history()[-1]  # the answer just given
        print_json({"ok": True, "presentation": presentation, "credential": record.credential, "vct": record.vct,
                    "iss": record.iss, "aud": record.aud, "nonce": record.nonce,
                    "disclosed": list(record.disclosed)})
    else:
        typer.echo(presentation)


@app.command("history")
def history(wallet: Path = WALLET_OPT, password_file: Path | None = PASSWORD_OPT,
            as_json: bool = typer.Option(False, "--json", help="Print a JSON list.")) -> None:
    """What was shown, to whom, when."""
    records = _open(wallet, password_file).history()
    if as_json:
        typer.echo(json.dumps([r.to_json() for r in records], indent=2))
        return
    for r in records:
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(r.at))
        typer.echo(f"{when}  to {r.aud}  {r.vct}  disclosed: {', '.join(r.disclosed)}")


# --- ledger-backed: DID keys, issuance from an issuer service (identity.holder) ------------------
KIT_PASSWORD_OPT = typer.Option(None, "--kit-password-file",
                                help="File whose first line is the recovery kit's password "
                                     "(else IMI_KIT_PASSWORD, else a prompt).")
FAST_KDF_OPT = typer.Option(False, "--insecure-fast-kdf", hidden=True, help="Tests only.")


def _kit_password(password_file: Path | None, *, confirm: bool) -> str:
    if password_file is not None:
        lines = read_text_file(password_file, "kit password file").splitlines()
        return lines[0] if lines else ""
    from_env = os.environ.get("IMI_KIT_PASSWORD")
    if from_env is not None:
        return from_env
    return _prompt_secret("recovery kit password", confirm=confirm)


def _refuse_existing_kit(path: Path, as_json: bool) -> None:
    """Checked before anything is sent to the ledger, so no DID is left without its kit."""
    if path.exists():
        fail(f"{str(path)!r} exists; a recovery kit is never overwritten", reason="file-exists", as_json=as_json)


@app.command("did-create")
def did_create(node: str = typer.Option(..., "--node", envvar="IMI_NODE", help="Node API base URL."),
               recovery_kit: Path = typer.Option(..., "--recovery-kit",
                                                 help="Where to write the DID's next (pre-rotation) key; "
                                                      "keep it OFF this device."),
               alg: Alg = typer.Option(Alg.ES256, "--alg"),
               wallet: Path = WALLET_OPT, password_file: Path | None = PASSWORD_OPT,
               kit_password_file: Path | None = KIT_PASSWORD_OPT, fast_kdf: bool = FAST_KDF_OPT,
               as_json: bool = _json_opt("{ok, did, recovery_kit}")) -> None:
    """Register a did:imi controlled by a new wallet key; print the DID. Its next key goes to an
    encrypted recovery kit (the wallet's format, its own password)."""
    from identity import holder
    from identity.wallet import write_recovery_kit

    _refuse_existing_kit(recovery_kit, as_json)
    opened = _open(wallet, password_file)
    kit_password = _kit_password(kit_password_file, confirm=True)
    if not kit_password:
        fail("the recovery kit password must not be empty", reason="bad-password", as_json=as_json)
    client = _ledger_client.node_client(node)
    next_key = SigningKey.generate(alg.value)
    try:
        # The kit is written first: a DID whose next key was lost could never rotate again.
        write_recovery_kit(recovery_kit, kit_password, next_key,
                           kdf=KdfParams.fastest() if fast_kdf else None)
        did, _ = holder.create_did(opened, client, alg=alg.value, next_key=next_key)
        opened.save()
    except IdentityError as exc:
        fail(str(exc), reason=exc.reason, as_json=as_json)
    finally:
        client.close()
    typer.echo(json.dumps({"ok": True, "did": did, "recovery_kit": str(recovery_kit)}) if as_json else did)


@app.command("did-rotate")
def did_rotate(did: str = typer.Argument(...),
               node: str = typer.Option(..., "--node", envvar="IMI_NODE", help="Node API base URL."),
               recovery_kit: Path = typer.Option(..., "--recovery-kit", help="The kit holding the next key."),
               new_recovery_kit: Path = typer.Option(..., "--new-recovery-kit",
                                                     help="Where to write the new next key (encrypted)."),
               wallet: Path = WALLET_OPT, password_file: Path | None = PASSWORD_OPT,
               kit_password_file: Path | None = KIT_PASSWORD_OPT, fast_kdf: bool = FAST_KDF_OPT,
               as_json: bool = _json_opt("{ok, did, key}")) -> None:
    """Rotate a DID to the kit's next key (also on a new wallet after losing the phone); the new
    kit is encrypted under the same kit password."""
    from identity import holder
    from identity.wallet import read_recovery_kit, write_recovery_kit

    check_did_arg(did)
    _refuse_existing_kit(new_recovery_kit, as_json)
    kit_password = _kit_password(kit_password_file, confirm=False)
    try:
        next_key = read_recovery_kit(recovery_kit, kit_password)
    except IdentityError as exc:
        fail(f"recovery kit {str(recovery_kit)!r}: {exc}", reason=exc.reason, as_json=as_json)
    opened = _open(wallet, password_file)
    client = _ledger_client.node_client(node)
    new_next = SigningKey.generate(next_key.alg)
    try:
        # The new kit is written first: a DID whose next key was lost could never rotate again.
        write_recovery_kit(new_recovery_kit, kit_password, new_next,
                           kdf=KdfParams.fastest() if fast_kdf else None)
        holder.rotate_did(opened, client, did, next_key, new_next)
        opened.save()
    except IdentityError as exc:
        fail(str(exc), reason=exc.reason, as_json=as_json)
    finally:
        client.close()
    typer.echo(json.dumps({"ok": True, "did": did, "key": next_key.key_id}) if as_json else did)


@app.command("receive")
def receive(offer_uri: str = typer.Argument(..., help="openid-credential-offer://... (QR code or link)."),
            tx_code: str | None = typer.Option(None, "--tx-code", help="The PIN the agency gave you."),
            node: str = _ledger_client.NODE_OPTION,
            genesis: Path | None = _ledger_client.GENESIS_OPTION,
            did: str | None = typer.Option(None, "--did", help="Bind to this wallet DID (cnf.kid)."),
            batch: int = typer.Option(1, "--batch", min=1, max=10,
                                      help="Credentials per type, each bound to its own key (use each once)."),
            alg: Alg = typer.Option(Alg.ES256, "--alg", help="Algorithm of new holder keys."),
            wallet: Path = WALLET_OPT, password_file: Path | None = PASSWORD_OPT,
            now: int | None = NOW_OPT, as_json: bool = _json_opt("{ok, ids, issuer, credential_issuer}")) -> None:
    """Receive credentials from an OpenID4VCI offer: the issuer is checked against the ledger
    before anything is signed, every credential before it is stored."""
    from identity.oid4vci_client import receive as receive_offer

    ledger = _verified(node, genesis)
    opened = _open(wallet, password_file)
    http = _ledger_client.http_client()
    try:
        ids = receive_offer(opened, offer_uri, http=http, ledger=ledger, now=_now(now), tx_code=tx_code, did=did,
                            batch=batch, alg=alg.value, allow_http=os.environ.get("IMI_WALLET_ALLOW_HTTP") == "1")
        opened.save()
    except IdentityError as exc:
        fail(str(exc), reason=exc.reason, as_json=as_json)
    finally:
        http.close()
    record = opened.issuances()[-1]
    if as_json:
        print_json({"ok": True, "ids": ids, "issuer": record["iss"], "credential_issuer": record["credential_issuer"]})
    else:
        for cred_id in ids:
            typer.echo(cred_id)


def _verified(node: str, genesis: Path | None) -> Any:
    return _ledger_client.verified_client(node, genesis, FRESHNESS_MS_DEFAULT)


def _ask_consent(uri: str, opened: Wallet, light: Any, http: Any, *, lang: str, yes: bool, as_json: bool,
                 asks: str, question: str) -> tuple[Any, dict[str, Any], bool]:
    """Resolve and check a service's request (a refusal is recorded, then exit 1), show on stderr
    who asks, why and exactly what would be shared, and ask (``--yes``: agreed). Returns the
    prepared answer, its summary for ``--json`` and whether the person agreed."""
    from identity import presenter

    try:
        prepared = presenter.prepare(uri, wallet=opened, light=light, http=http, now_ms=_ledger_client.now_ms())
    except IdentityError as exc:
        opened.save()  # the refusal is recorded
        fail(str(exc), reason=exc.reason, as_json=as_json)
    summary: dict[str, Any] = {"service": prepared.name(lang), "did": prepared.request.service_did,
                               "purpose": prepared.purpose(lang),
                               "disclosed": [{"vct": d.vct, "issuer": d.issuer, "claims": list(d.paths),
                                              "reused": d.reused} for d in prepared.disclosures]}
    typer.echo(f"{summary['service']} ({summary['did']}) {asks}: {summary['purpose']}", err=True)
    for item in summary["disclosed"]:
        typer.echo(f"  share from {item['vct']}: {', '.join(item['claims'])}", err=True)
        if item["reused"]:
            typer.echo("  note: every one-time copy of it was presented before; a service that saw "
                       "it could link this answer (imi wallet when-used-up refuse to refuse instead)", err=True)
    return prepared, summary, yes or typer.confirm(question, default=False, err=True)


_T = TypeVar("_T")
YES_OPT = typer.Option(False, "--yes", help="Agree without asking (scripts).")
LANG_OPT = typer.Option("en", "--lang", help="Language of the asker's name and purpose: en or zh-CN.")


def _with_consent(uri: str, wallet: Path, password_file: Path | None, node: str, genesis: Path | None, *,
                  yes: bool, lang: str, as_json: bool, asks: str, question: str,
                  send: Callable[[Any, Wallet, Any, Any], _T]) -> tuple[dict[str, Any], bool, _T | None]:
    """Answer an OpenID4VP request at ``uri``: check it against the ledger and ask
    (:func:`_ask_consent`); if the person agreed, ``send(prepared, wallet, http, light)``,
    otherwise tell the service no. Either way the wallet is saved (its history records it); a
    failure exits 1 with one line. Returns (the summary for ``--json``, agreed, what send
    returned or None)."""
    from identity import presenter

    if lang not in ("en", "zh-CN"):
        usage("--lang must be en or zh-CN")
    opened = _open(wallet, password_file)
    light = _verified(node, genesis)
    http = _ledger_client.http_client()
    try:
        prepared, summary, agreed = _ask_consent(uri, opened, light, http, lang=lang, yes=yes, as_json=as_json,
                                                 asks=asks, question=question)
        try:
            if not agreed:
                presenter.decline(prepared, wallet=opened, http=http, now=_now(None), lang=lang)
                return summary, False, None
            return summary, True, send(prepared, opened, http, light)
        except IdentityError as exc:
            fail(str(exc), reason=exc.reason, as_json=as_json)
        finally:
            opened.save()
    finally:
        http.close()


@app.command("present")
def present(
    uri: str = typer.Argument(..., help="The service's openid4vp:// link (from its QR code)."),
    wallet: Path = WALLET_OPT,
    password_file: Path | None = PASSWORD_OPT,
    node: str = _ledger_client.NODE_OPTION,
    genesis: Path | None = _ledger_client.GENESIS_OPTION,
    yes: bool = YES_OPT,
    lang: str = LANG_OPT,
    as_json: bool = _json_opt("{ok, service, did, purpose, disclosed: [{vct, issuer, claims, reused}], sent}"),
) -> None:
    """Answer a service's OpenID4VP request: check it against the ledger, show who asks, why and
    exactly what would be shared, ask for consent, then send the fewest disclosures."""
    from identity import presenter

    summary, agreed, _ = _with_consent(
        uri, wallet, password_file, node, genesis, yes=yes, lang=lang, as_json=as_json, asks="asks",
        question="share exactly this?",
        send=lambda prepared, opened, http, _light: presenter.send(prepared, wallet=opened, http=http,
                                                                   now=_now(None), lang=lang))
    if as_json:
        print_json({"ok": True, **summary, "sent": agreed})
    else:
        print("sent" if agreed else "declined: nothing shared")


@app.command("enrol")
def enrol(
    uri: str = typer.Argument(..., help="The agency's openid4vp:// enrolment link (from its QR code or page)."),
    wallet: Path = WALLET_OPT,
    password_file: Path | None = PASSWORD_OPT,
    node: str = _ledger_client.NODE_OPTION,
    genesis: Path | None = _ledger_client.GENESIS_OPTION,
    yes: bool = YES_OPT,
    batch: int = typer.Option(1, "--batch", min=1, max=10,
                              help="Credentials per type, each bound to its own key (use each once)."),
    lang: str = LANG_OPT,
    as_json: bool = _json_opt("{ok, service, did, purpose, disclosed: [{vct, issuer, claims, reused}], sent, ids}"),
) -> None:
    """Enrol at an agency without a visit: present the identity credential it asks for (checked
    against the ledger, with consent), then receive its credentials, bound first to the key that
    presented. The offer must come from the issuer endpoint of the DID that asked."""
    from identity.remote_enrolment_client import enrol as enrol_remotely

    allow_http = os.environ.get("IMI_WALLET_ALLOW_HTTP") == "1"
    summary, agreed, received = _with_consent(
        uri, wallet, password_file, node, genesis, yes=yes, lang=lang, as_json=as_json, asks="asks, to enrol you",
        question="share exactly this and enrol?",
        send=lambda prepared, opened, http, light: enrol_remotely(prepared, wallet=opened, http=http, ledger=light,
                                                                  now=_now(None), batch=batch, lang=lang,
                                                                  allow_http=allow_http))
    ids = received or []
    if as_json:
        print_json({"ok": True, **summary, "sent": agreed, "ids": ids})
    elif agreed:
        for cred_id in ids:
            typer.echo(cred_id)
    else:
        print("declined: nothing shared")


@app.command("serve")
def serve(
    wallet: Path = WALLET_OPT,
    node: str = _ledger_client.NODE_OPTION,
    genesis: Path | None = _ledger_client.GENESIS_OPTION,
    port: int = typer.Option(8720, "--port", min=1, max=65535),
    as_json: bool = typer.Option(False, "--json", help="Log one JSON object per line (stderr): "
                                 "ts, level, logger, message."),
) -> None:
    """The wallet as a local web app on http://127.0.0.1:PORT (this device only; unlock it with
    the wallet password in the page): credentials, receive, answer, history, recovery kit and
    key rotation (sent to --node)."""

    from identity.http.wallet_app import create_wallet_app

    if not wallet.is_file():
        fail(f"no wallet at {wallet}", reason="no-wallet")
    app_ = create_wallet_app(wallet, light=_verified(node, genesis), http=_ledger_client.http_client(),
                             node=_ledger_client.node_client(node),
                             allow_http=os.environ.get("IMI_WALLET_ALLOW_HTTP") == "1")
    serve_app(app_, host="127.0.0.1", port=port, as_json=as_json, logger="imi.wallet",
              banner=f"wallet app on http://127.0.0.1:{port}/ (this device only)")
