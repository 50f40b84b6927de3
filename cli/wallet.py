"""`imi wallet`: the citizen's encrypted wallet.

The wallet file comes from ``--wallet`` (or ``IMI_WALLET``); the password from
``--password-file``, else ``IMI_WALLET_PASSWORD``, else a prompt. Exit 0 ok,
1 with ``error [reason]: ...`` on stderr, 2 usage.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import typer

from cli._common import fail
from cli.key import Alg, read_json_object, read_text_file
from identity.errors import IdentityError
from identity.request import PresentationRequest
from identity.wallet import KdfParams, Wallet

app = typer.Typer(help="The citizen's encrypted wallet.", no_args_is_help=True)

WALLET_OPT = typer.Option(..., "--wallet", envvar="IMI_WALLET", help="Wallet file.")
PASSWORD_OPT = typer.Option(None, "--password-file", help="File whose first line is the password.")
NOW_OPT = typer.Option(None, "--now", hidden=True, help="Seconds since the epoch (tests).")


def _password(password_file: Path | None, *, confirm: bool = False) -> str:
    if password_file is not None:
        lines = read_text_file(password_file, "password file").splitlines()
        return lines[0] if lines else ""
    from_env = os.environ.get("IMI_WALLET_PASSWORD")
    if from_env is not None:
        return from_env
    return str(typer.prompt("wallet password", hide_input=True, confirmation_prompt=confirm))


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
) -> None:
    """Create a wallet with one holder key; print the key id."""
    try:
        kdf = KdfParams.fastest() if fast_kdf else KdfParams()
        opened = Wallet.create(wallet, _password(password_file, confirm=True), kdf=kdf)
        key_id = opened.new_key(alg.value)
        opened.save()
    except IdentityError as exc:
        fail(str(exc), reason=exc.reason)
    typer.echo(key_id)


@app.command("key-new")
def key_new(wallet: Path = WALLET_OPT, password_file: Path | None = PASSWORD_OPT,
            alg: Alg = typer.Option(Alg.ES256, "--alg")) -> None:
    """Add a holder key; print its id."""
    opened = _open(wallet, password_file)
    try:
        key_id = opened.new_key(alg.value)
        opened.save()
    except IdentityError as exc:
        fail(str(exc), reason=exc.reason)
    typer.echo(key_id)


@app.command("key-public")
def key_public(key_id: str | None = typer.Argument(None, help="Key id (default: the only/first key)."),
               wallet: Path = WALLET_OPT, password_file: Path | None = PASSWORD_OPT) -> None:
    """Print a holder public JWK (give it to an issuer as --holder-jwk)."""
    opened = _open(wallet, password_file)
    ids = opened.key_ids()
    chosen = key_id if key_id is not None else (ids[0] if ids else "")
    try:
        typer.echo(json.dumps(opened.public_key(chosen).to_jwk(), indent=2))
    except IdentityError as exc:
        fail(str(exc), reason=exc.reason)


@app.command("add")
def add(credential: Path = typer.Option(..., "--credential", help="File holding an issued SD-JWT."),
        key: str | None = typer.Option(None, "--key", help="Holder key id (default: from cnf.jwk)."),
        wallet: Path = WALLET_OPT, password_file: Path | None = PASSWORD_OPT,
        now: int | None = NOW_OPT) -> None:
    """Store a credential; print its id."""
    opened = _open(wallet, password_file)
    try:
        cred_id = opened.add_credential(read_text_file(credential, "credential"), holder_key=key,
                                        now=_now(now))
        opened.save()
    except IdentityError as exc:
        fail(str(exc), reason=exc.reason)
    typer.echo(cred_id)


@app.command("list")
def list_(wallet: Path = WALLET_OPT, password_file: Path | None = PASSWORD_OPT,
          as_json: bool = typer.Option(False, "--json")) -> None:
    """List held credentials (id, type, issuer, claim names)."""
    summaries = _open(wallet, password_file).credentials()
    if as_json:
        typer.echo(json.dumps([{"id": s.id, "iss": s.iss, "vct": s.vct, "iat": s.iat, "exp": s.exp,
                                "holder_key": s.holder_key, "claims": list(s.claims)} for s in summaries],
                              indent=2))
        return
    for s in summaries:
        typer.echo(f"{s.id}  {s.vct}  {s.iss}  claims: {', '.join(s.claims)}")


@app.command("show")
def show(cred_id: str = typer.Argument(...), wallet: Path = WALLET_OPT,
         password_file: Path | None = PASSWORD_OPT) -> None:
    """Print every claim of one credential (JSON)."""
    try:
        claims = _open(wallet, password_file).show(cred_id)
    except IdentityError as exc:
        fail(str(exc), reason=exc.reason)
    typer.echo(json.dumps(claims, indent=2, sort_keys=True, ensure_ascii=False))


@app.command("answer")
def answer(request: Path = typer.Option(..., "--request", help="JSON request (nonce, aud, claims, ...)."),
           credential: str | None = typer.Option(None, "--credential", help="Use this credential id."),
           wallet: Path = WALLET_OPT, password_file: Path | None = PASSWORD_OPT,
           now: int | None = NOW_OPT) -> None:
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
    typer.echo(presentation)


@app.command("history")
def history(wallet: Path = WALLET_OPT, password_file: Path | None = PASSWORD_OPT,
            as_json: bool = typer.Option(False, "--json")) -> None:
    """What was shown, to whom, when."""
    records = _open(wallet, password_file).history()
    if as_json:
        typer.echo(json.dumps([r.to_json() for r in records], indent=2))
        return
    for r in records:
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(r.at))
        typer.echo(f"{when}  to {r.aud}  {r.vct}  disclosed: {', '.join(r.disclosed)}")
