"""`imi sdjwt`: offline SD-JWT VC — issue, present, verify.

Times come from the clock unless the hidden ``--now`` (seconds) pins them,
which tests and the docs' worked example use. Exit 0 ok, 1 invalid (one line
``error [reason]: ...`` on stderr), 2 usage.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer

from cli._common import (
    fail,
    parse_predicates,
    print_json,
    read_json_object,
    read_public_key,
    read_signing_key,
    read_text_file,
)
from identity.constants import CREDENTIAL_LIFETIME_S_DEFAULT
from identity.errors import IdentityError
from identity.presentation import present as present_credential
from identity.request import PresentationRequest
from identity.sdjwt import HolderBinding
from identity.sdjwt import issue as issue_credential
from identity.verifier import CnfHolderKeys, FixedIssuerKey, NoStatus, verify_presentation

app = typer.Typer(help="Offline SD-JWT VC: issue, present, verify.", no_args_is_help=True)

VCT_DEFAULT = "urn:imi:credential:1"
NOW_HELP = "Current time in seconds since the epoch (for tests)."


def _now(now: int | None) -> int:
    return int(time.time()) if now is None else now


def _paths(values: list[str]) -> list[str]:
    return [p.strip() for v in values for p in v.split(",") if p.strip()]


@app.command("issue")
def issue(
    issuer_key: Path = typer.Option(..., "--issuer-key", help="Issuer private JWK file."),
    holder_jwk: Path = typer.Option(..., "--holder-jwk", help="Holder public JWK file (cnf.jwk)."),
    claims: Path = typer.Option(..., "--claims", help="JSON object of claims; all selectively disclosable."),
    vct: str = typer.Option(VCT_DEFAULT, "--vct", help="Credential type."),
    predicate: list[str] = typer.Option([], "--predicate", help="NAME=T1,T2: a predicate derived from the "
                                        "claims, e.g. age_equal_or_over=18,21 (from birthdate)."),
    iss: str | None = typer.Option(None, "--iss", help="Issuer identifier (default: JWK thumbprint URI)."),
    exp: int = typer.Option(CREDENTIAL_LIFETIME_S_DEFAULT, "--exp", min=1, help="Lifetime in seconds."),
    now: int | None = typer.Option(None, "--now", hidden=True, help=NOW_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print {ok, credential, disclosures, iss, vct, iat, exp, "
                                 "holder_kid}."),
) -> None:
    """Issue an SD-JWT VC and print it (compact, ends with '~')."""
    key = read_signing_key(issuer_key, "issuer key")
    holder = read_public_key(holder_jwk, "holder JWK")
    user_claims = read_json_object(claims, "claims file")
    predicates = parse_predicates(predicate)
    issued_at = _now(now)
    issuer_id = iss if iss is not None else f"urn:ietf:params:oauth:jwk-thumbprint:sha-256:{key.key_id}"
    try:
        credential = issue_credential(
            user_claims, issuer_key=key, iss=issuer_id, vct=vct,
            holder=HolderBinding.from_key(holder), iat=issued_at, exp=issued_at + exp, predicates=predicates,
        )
    except IdentityError as exc:
        fail(str(exc), reason=exc.reason)
    if as_json:
        print_json({"ok": True, "credential": credential.serialize(), "disclosures": len(credential.disclosures),
                    "iss": issuer_id, "vct": vct, "iat": issued_at, "exp": issued_at + exp,
                    "holder_kid": holder.key_id})
    else:
        typer.echo(credential.serialize())


@app.command("present")
def present(
    credential: Path = typer.Option(..., "--credential", help="File holding the issued SD-JWT."),
    disclose: list[str] = typer.Option(..., "--disclose", help="Claim paths, comma-separated (a.b, x.0)."),
    holder_key: Path = typer.Option(..., "--holder-key", help="Holder private JWK file."),
    nonce: str = typer.Option(..., "--nonce", help="The verifier's nonce."),
    aud: str = typer.Option(..., "--aud", help="The verifier's identifier."),
    now: int | None = typer.Option(None, "--now", hidden=True, help=NOW_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print {ok, presentation, disclosed, nonce, aud, iat}."),
) -> None:
    """Print a presentation (SD-JWT+KB) revealing only the named claims."""
    text = read_text_file(credential, "credential").strip()
    key = read_signing_key(holder_key, "holder key")
    paths, at = _paths(disclose), _now(now)
    try:
        out = present_credential(text, paths, holder_key=key, nonce=nonce, aud=aud, iat=at)
    except IdentityError as exc:
        fail(str(exc), reason=exc.reason)
    if as_json:
        print_json({"ok": True, "presentation": out, "disclosed": paths, "nonce": nonce, "aud": aud, "iat": at})
    else:
        typer.echo(out)


@app.command("verify")
def verify(
    presentation: Path = typer.Option(..., "--presentation", help="File holding the SD-JWT+KB."),
    issuer_jwk: Path | None = typer.Option(None, "--issuer-jwk", help="Trusted issuer public JWK file "
                                           "(offline form; required without --node)."),
    nonce: str = typer.Option(..., "--nonce", help="The nonce you sent."),
    aud: str = typer.Option(..., "--aud", help="Your identifier (KB-JWT aud)."),
    claim: list[str] = typer.Option([], "--claim", help="Claim paths that must be disclosed."),
    predicate: list[str] = typer.Option([], "--predicate", help="Paths that must be true (age_equal_or_over.18)."),
    vct: list[str] = typer.Option([], "--vct", help="Accepted credential types (default any)."),
    max_age: int | None = typer.Option(None, "--max-age", min=0, help="Max credential age, seconds."),
    as_json: bool = typer.Option(False, "--json", help="Print the disclosed claims as JSON."),
    now: int | None = typer.Option(None, "--now", hidden=True, help=NOW_HELP),
    node: str | None = typer.Option(None, "--node", help="Ledger-backed form: issuer key, accreditation, "
                                    "holder DID and status from the ledger through this node (light client)."),
    genesis: Path | None = typer.Option(None, "--genesis", envvar="IMI_GENESIS",
                                        help="Trusted genesis.json (with --node)."),
) -> None:
    """Verify a presentation; print the disclosed claims, or exit 1 with the reason."""
    text = read_text_file(presentation, "presentation").strip()
    if (node is None) == (issuer_jwk is None):
        typer.echo("error: give exactly one of --issuer-jwk (offline) and --node (ledger)", err=True)
        raise typer.Exit(2)
    try:
        request = PresentationRequest(
            nonce=nonce, aud=aud, vct=frozenset(vct), claims=tuple(_paths(claim)),
            predicates=tuple(_paths(predicate)), max_age_s=max_age,
        )
    except (ValueError, IdentityError) as exc:
        fail(f"bad request: {exc}", reason="bad-request", as_json=as_json)
    if node is not None:
        from cli._ledger_client import ledger_verdict
        from identity.ledger_constants import FRESHNESS_MS_DEFAULT

        result = ledger_verdict(text, request, node=node, genesis=genesis, freshness_ms=FRESHNESS_MS_DEFAULT,
                                now=_now(now))
    else:
        assert issuer_jwk is not None
        result = verify_presentation(
            text, request, issuer_keys=FixedIssuerKey(read_public_key(issuer_jwk, "issuer JWK")),
            holder_keys=CnfHolderKeys(), status=NoStatus(), now=_now(now),
        )
    if not result.valid or result.claims is None:
        fail(result.detail or result.reason, reason=result.reason, as_json=as_json)
    if as_json:
        typer.echo(json.dumps(result.claims, indent=2, sort_keys=True, ensure_ascii=False))
        return
    for name, value in result.claims.items():
        typer.echo(f"{name}: {json.dumps(value, ensure_ascii=False)}")
