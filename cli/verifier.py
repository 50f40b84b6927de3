"""`imi verifier`: a registered service's OpenID4VP verifier — serve it, ask, read the verdict.

``serve`` runs the verifier service (``identity/http/verifier_service.py``) for a service
DID registered on the ledger (``imi gov service-register``), signing request objects with
an assertion key of that DID. ``request`` and ``result`` are its staff API for scripts:

    imi verifier request --verifier URL --token-file F --dcql FILE --json
        → {"id": "…", "request_uri": "openid4vp://…"}
    imi verifier result --verifier URL --token-file F --id ID --json
        → {"state": "pending"|"done", "valid": true|false, "reason": str|null, "claims": {…}}
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import typer

from cli import _ledger_client
from cli._common import (
    print_json,
    read_json_object,
    read_signing_key,
    read_text_file,
    serve_app,
    usage,
    write_private,
)
from identity.ledger_constants import FRESHNESS_MS_DEFAULT

app = typer.Typer(help="A registered service's OpenID4VP verifier (serve, request, result).",
                  no_args_is_help=True)

VERIFIER_OPT = typer.Option(..., "--verifier", envvar="IMI_VERIFIER", help="Verifier service base URL.")
TOKEN_FILE_OPT = typer.Option(..., "--token-file", help="File whose first line is the staff token.")
LOOPBACK = ("127.0.0.1", "::1", "localhost")


def _token(path: Path) -> str:
    lines = read_text_file(path, "token file").splitlines()
    if not lines or not lines[0].strip():
        usage(f"{path} holds no token")
    return lines[0].strip()


def _call(method: str, url: str, token: str, as_json: bool, body: dict[str, Any] | None = None) -> dict[str, Any]:
    return _ledger_client.staff_call(method, url, token, service="verifier", as_json=as_json, body=body)


@app.command()
def request(
    verifier: str = VERIFIER_OPT,
    token_file: Path = TOKEN_FILE_OPT,
    dcql: Path = typer.Option(..., "--dcql", help="File holding a DCQL query object (OpenID4VP 1.0 §6)."),
    callback: str | None = typer.Option(None, "--callback", help="Where the verdict is POSTed when it arrives."),
    as_json: bool = typer.Option(False, "--json", help='Print {"id", "request_uri"}.'),
) -> None:
    """Ask a question: print the request id and the openid4vp:// URI to show as a QR code."""
    query = read_json_object(dcql, "DCQL query")
    body: dict[str, Any] = {"dcql_query": query}
    if callback is not None:
        body["callback_uri"] = callback
    answer = _call("POST", verifier.rstrip("/") + "/v1/requests", _token(token_file), as_json, body)
    if as_json:
        print_json({"id": answer["id"], "request_uri": answer["request_uri"]})
    else:
        print(answer["request_uri"])
        typer.echo(f"request id {answer['id']} (imi verifier result --id {answer['id']})", err=True)


@app.command()
def result(
    verifier: str = VERIFIER_OPT,
    token_file: Path = TOKEN_FILE_OPT,
    request_id: str = typer.Option(..., "--id", help="The request id printed by imi verifier request."),
    as_json: bool = typer.Option(False, "--json", help='Print {"state", "valid", "reason", "claims"}.'),
) -> None:
    """The verdict of a request: pending, or done with valid/invalid and only the asked claims."""
    answer = _call("GET", verifier.rstrip("/") + "/v1/requests/" + request_id, _token(token_file), as_json)
    out = {k: answer.get(k) for k in ("state", "valid", "reason", "claims")}
    if as_json:
        print_json(out)
    elif out["state"] != "done":
        print(out["state"])
    else:
        print(("valid" if out["valid"] else f"invalid [{out['reason']}]") + " " +
              " ".join(f"{path}={value}" for answers in (out["claims"] or {}).values()
                       for path, value in answers.items() if path not in ("vct", "iss")))
        if not out["valid"]:
            raise typer.Exit(1)


@app.command()
def serve(
    did: str = typer.Option(..., "--did", help="The service's did:imi (registered on the ledger)."),
    key: Path = typer.Option(..., "--key", help="An assertion private JWK of that DID (signs requests)."),
    node: str = _ledger_client.NODE_OPTION,
    genesis: Path | None = _ledger_client.GENESIS_OPTION,
    public_url: str | None = typer.Option(None, "--public-url",
                                          help="How wallets reach this service (default http://HOST:PORT)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Bind address (loopback by default)."),
    port: int = typer.Option(8710, "--port", min=1, max=65535),
    token_file: Path = typer.Option(..., "--token-file", help="The staff token's file; created (0600) if missing."),
    freshness_ms: int = typer.Option(FRESHNESS_MS_DEFAULT, "--freshness-ms", min=1,
                                     help="Reject ledger answers whose header is older than this."),
    as_json: bool = typer.Option(False, "--json", help="Log one JSON object per line (stderr): "
                                 "ts, level, logger, message."),
) -> None:
    """Serve the verifier service and its counter page (/counter) for the service DID."""

    from identity.errors import NotFoundError
    from identity.http.constants import VERIFIER_READ_REUSE_MS
    from identity.http.verifier_service import (
        VerifierConfig,
        create_verifier_app,
        ledger_verify_one,
    )

    _ledger_client.check_did_arg(did)
    signing_key = read_signing_key(key, "service key")
    if not token_file.exists():
        write_private(token_file, secrets.token_urlsafe(32) + "\n", force=False, what="staff token")
    token = _token(token_file)
    url = (public_url or f"http://{host}:{port}").rstrip("/")
    if host not in LOOPBACK and not url.startswith("https://"):
        usage("a non-loopback --host needs an https --public-url (put it behind a TLS proxy)")
    light = _ledger_client.verified_client(node, genesis, freshness_ms, reuse_ms=VERIFIER_READ_REUSE_MS)

    def registration() -> dict[str, Any] | None:
        try:
            return light.service(did, _ledger_client.now_ms())
        except NotFoundError:
            return None

    config = VerifierConfig(did, signing_key, f"{did}#{signing_key.key_id}", url, token)
    app_ = create_verifier_app(config, registration=registration, verify_one=ledger_verify_one(light))
    serve_app(app_, host=host, port=port, as_json=as_json, logger="imi.verifier",
              banner=f"verifier for {did} on {url} (counter page {url}/counter)")
