"""`imi issue`: an agency's issuer service (run beside its validator) and its staff actions.

``imi issue init`` writes an issuer directory; ``imi issue serve`` serves
:func:`identity.http.issuer_service.create_issuer_app` (OpenID4VCI) for it over one node;
``imi issue offer|enrol|revoke|suspend|reinstate`` call the running service's staff
endpoints with the staff bearer token (``--token-file``/``--admin-token-file`` or
``IMI_ISSUER_ADMIN_TOKEN``; the service has no unauthenticated staff access at all).

Exit 0 ok, 1 refused (``error [reason]: ...``), 2 usage.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import typer

from cli import _ledger_client
from cli._common import (
    fail,
    print_json,
    read_text_file,
    serve_app,
    usage,
)
from cli._ledger_client import GENESIS_OPTION, JSON_OPTION, NODE_OPTION, check_did_arg, read_genesis
from identity.fetcher import IdentityHttpFetcher
from identity.issuer_agent import ISSUER_CONFIG, IssuerConfig
from identity.ledger_client import NodeClient
from identity.ledger_constants import FRESHNESS_MS_DEFAULT
from identity.light_client import LightClient
from ledger.files import PUBLIC_FILE_MODE, write_atomic

app = typer.Typer(help="An agency's issuer service: serve, revoke, suspend, reinstate.", no_args_is_help=True)

DIR_OPTION = typer.Option(..., "--issuer-dir", help=f"Directory holding {ISSUER_CONFIG}.")
ISSUER_OPTION = typer.Option(..., "--issuer", envvar="IMI_ISSUER", help="Issuer service base URL.")
TOKEN_OPTION = typer.Option(None, "--admin-token-file", "--token-file",
                            help="File whose first line is the staff (admin) token.")


def _token(path: Path | None) -> str | None:
    if path is not None:
        lines = read_text_file(path, "admin token file").splitlines()
        return lines[0].strip() if lines and lines[0].strip() else None
    return os.environ.get("IMI_ISSUER_ADMIN_TOKEN") or None


@app.command()
def init(
    issuer_dir: Path = DIR_OPTION,
    did: str = typer.Option(..., "--did", help="The issuer's (accredited) DID."),
    key: Path = typer.Option(..., "--key", help="An assertion private JWK of that DID."),
    list_id: str = typer.Option(..., "--list-id", help="The issuer's status list (imi issuer status-create)."),
    register: Path = typer.Option(..., "--register", help="The agency's register (JSON: subject -> claims)."),
    lifetime_s: int = typer.Option(365 * 24 * 3600, "--lifetime", min=1, help="Credential lifetime, seconds."),
    as_json: bool = typer.Option(False, "--json", help="Print {ok, config, did, key, list_id, register, "
                                 "lifetime_s}."),
) -> None:
    """Write DIR/issuer.json naming the DID, key, list and register (absolute paths)."""
    check_did_arg(did)
    for path, what in ((key, "key"), (register, "register")):
        if not path.is_file():
            usage(f"--{what} {str(path)!r} is not a file")
    config = {"did": did, "key": str(key.resolve()), "list_id": list_id,
              "register": str(register.resolve()), "lifetime_s": lifetime_s}
    try:
        issuer_dir.mkdir(parents=True, exist_ok=True)
        write_atomic(issuer_dir / ISSUER_CONFIG, json.dumps(config, indent=2), mode=PUBLIC_FILE_MODE)
        IssuerConfig.load(issuer_dir)
    except (OSError, ValueError) as exc:
        fail(str(exc), reason="bad-issuer-dir")
    if as_json:
        print_json({"ok": True, "config": str(issuer_dir / ISSUER_CONFIG), **config})
    else:
        typer.echo(str(issuer_dir / ISSUER_CONFIG))


@app.command()
def serve(
    issuer_dir: Path = DIR_OPTION,
    node: str = NODE_OPTION,
    genesis: Path | None = GENESIS_OPTION,
    port: int = typer.Option(8700, "--port", min=0, max=65535),
    host: str = typer.Option("127.0.0.1", "--host", help="Bind address (loopback by default)."),
    admin_token_file: Path | None = TOKEN_OPTION,
    public_url: str | None = typer.Option(None, "--public-url",
                                          help="The Credential Issuer Identifier wallets see (behind TLS: "
                                               "https://...); default http://HOST:PORT. The issuer DID's "
                                               "document must name it."),
    trusted_proxy: list[str] = typer.Option([], "--trusted-proxy",
                                            help="Peer address of a reverse proxy whose X-Forwarded-For is "
                                                 "believed for rate limits (repeatable; never for auth)."),
    freshness_ms: int = typer.Option(FRESHNESS_MS_DEFAULT, "--freshness-ms", min=1,
                                     help="Reject ledger answers whose header is older than this."),
    remote_enrolment: Path | None = typer.Option(None, "--remote-enrolment",
                                                 help="JSON file: which agencies' identity credentials prove "
                                                      "who a person is, and which claims must match the "
                                                      "register (enables zero-visit enrolment)."),
    as_json: bool = typer.Option(False, "--json", help="Log one JSON object per line (stderr): "
                                 "ts, level, logger, message."),
) -> None:
    """Serve the issuer (OpenID4VCI endpoints and staff API) for the issuer in DIR, over NODE."""
    from identity.remote_enrolment import RemoteEnrolmentConfig

    chain = read_genesis(genesis)
    token = _token(admin_token_file)
    if token is None:
        usage("--admin-token-file (or IMI_ISSUER_ADMIN_TOKEN) is required: staff are always authenticated")
    accepted = None
    if remote_enrolment is not None:
        try:
            accepted = RemoteEnrolmentConfig.load(remote_enrolment)
        except ValueError as exc:
            fail(f"--remote-enrolment: {exc}", reason="bad-remote-enrolment")
    url = (public_url or f"http://{host}:{port}").rstrip("/")
    try:
        config = IssuerConfig.load(issuer_dir)
        fetcher = IdentityHttpFetcher(node, client=_ledger_client.http_client())
        agent = config.agent(NodeClient(node, client=_ledger_client.http_client()),
                             LightClient(chain, fetcher, freshness_ms), url)
    except ValueError as exc:
        fail(str(exc), reason="bad-issuer-dir")

    from identity.http.issuer_service import create_issuer_app

    try:
        service = create_issuer_app(agent, admin_token=token, trusted_proxies=frozenset(trusted_proxy),
                                    remote_enrolment=accepted)
    except ValueError as exc:
        usage(str(exc))
    serve_app(service, host=host, port=port, as_json=as_json, logger="imi.issuer",
              banner=f"issuer {agent.did} serving {url} on {host}:{port} (list {agent.list_id})")


def _staff_call(issuer: str, path: str, body: dict[str, Any], token_file: Path | None,
                as_json: bool) -> dict[str, Any]:
    token = _token(token_file)
    if token is None:
        usage("--token-file (or IMI_ISSUER_ADMIN_TOKEN) is required")
    return _ledger_client.staff_call("POST", issuer.rstrip("/") + path, token, service="issuer",
                                     as_json=as_json, body=body)


@app.command()
def offer(
    subject: str = typer.Option(..., "--subject", help="The agency's subject id (its register)."),
    vct: list[str] = typer.Option(..., "--vct", help="Credential type to offer (repeatable)."),
    batch: int = typer.Option(1, "--batch", min=1, max=10, help="Credentials (holder keys) per request."),
    no_tx_code: bool = typer.Option(False, "--no-tx-code", help="No PIN (only for an enrolled subject)."),
    issuer: str = ISSUER_OPTION,
    token_file: Path | None = TOKEN_OPTION,
    as_json: bool = typer.Option(False, "--json", help='Print {"offer_uri", "tx_code"} (and the offer by '
                                 "reference, expires_at, enrol)."),
) -> None:
    """Staff: a credential offer for SUBJECT (an enrolment offer with a PIN if not enrolled yet)."""
    answer = _staff_call(issuer, "/v1/admin/offers", {"subject": subject, "vcts": list(vct), "batch": batch,
                                                      "tx_code": not no_tx_code}, token_file, as_json)
    if as_json:
        print_json({"offer_uri": answer["offer_uri"], "tx_code": answer["tx_code"],
                    "offer_uri_by_reference": answer["offer_uri_by_reference"],
                    "expires_at": answer["expires_at"], "enrol": answer["enrol"]})
    else:
        typer.echo(answer["offer_uri"])
        if answer["tx_code"] is not None:
            typer.echo(f"PIN (tell the holder, not in the QR code): {answer['tx_code']}", err=True)


@app.command()
def enrol(
    subject: str = typer.Option(..., "--subject", help="The agency's subject id (its register)."),
    did: str = typer.Option(..., "--holder-did", help="The holder's did:imi, after identity proofing."),
    issuer: str = ISSUER_OPTION,
    token_file: Path | None = TOKEN_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Staff: bind SUBJECT to a holder DID (later offers need a proof by that DID)."""
    check_did_arg(did)
    answer = _staff_call(issuer, "/v1/admin/enrol", {"subject": subject, "did": did}, token_file, as_json)
    if as_json:
        print_json({"ok": True, **answer})
    else:
        typer.echo(f"{subject} enrolled to {answer['holder']}")


def _status(action: str, issuer: str, idx: int, token_file: Path | None, as_json: bool) -> None:
    body = _staff_call(issuer, f"/v1/issuance/{action}", {"idx": idx}, token_file, as_json)
    if as_json:
        print_json({"ok": True, **body})
    else:
        typer.echo(f"{action} idx {idx} committed at height {body.get('height')}")


def _status_command(action: str, doc: str) -> None:
    def command(
        idx: int = typer.Option(..., "--idx", min=0, help="The credential's status_list.idx."),
        issuer: str = ISSUER_OPTION,
        admin_token_file: Path | None = TOKEN_OPTION,
        as_json: bool = JSON_OPTION,
    ) -> None:
        _status(action, issuer, idx, admin_token_file, as_json)

    command.__doc__ = doc
    app.command(action)(command)


_status_command("revoke", "Revoke a credential for good (status invalid; final).")
_status_command("suspend", "Suspend a credential (reinstate undoes it).")
_status_command("reinstate", "Reinstate a suspended credential.")

__all__ = ["app"]
