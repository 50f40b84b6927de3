"""Helpers for commands that talk to a node: options, clients, submission, verified reads.

Writes go to a node as transactions (``POST /v1/transactions?wait=commit``,
:func:`submit`); reads go through a light client (:func:`verified_client`) that
checks every answer against a commit certificate rooted in the trusted genesis.
Every HTTP client comes from :func:`http_client`, so a test can replace that one
function (``monkeypatch.setattr(cli._ledger_client, "http_client", ...)``) and every
command then talks to its mock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from cli._common import fail, read_text_file, refuse, usage
from identity import did as didmod
from identity.ledger_client import NodeClient
from identity.ledger_trust import LedgerHolderKeys, LedgerIssuerKeys, LedgerStatusLists
from identity.light_client import HttpFetcher, LightClient
from identity.request import PresentationRequest
from identity.verifier import VerificationResult, verify_presentation
from ledger.encoding import Value
from ledger.errors import ImiError, LedgerError
from ledger.genesis import Genesis
from ledger.keys import SigningKey
from ledger.tx import Transaction

NODE_HTTP_TIMEOUT_S = 40.0  # a submit waits for its commit

NODE_OPTION = typer.Option(..., "--node", envvar="IMI_NODE", help="Node API base URL.")
GENESIS_OPTION = typer.Option(None, "--genesis", envvar="IMI_GENESIS",
                              help="Trusted genesis.json (the light client's root of trust).")
JSON_OPTION = typer.Option(False, "--json", help="Machine-readable output.")


def http_client() -> Any:
    """The HTTP client for node and service calls (tests replace this with a mock transport)."""
    import httpx

    return httpx.Client(timeout=NODE_HTTP_TIMEOUT_S)


def node_client(node: str) -> NodeClient:
    return NodeClient(node, client=http_client())


def submit(node: str, type_: str, sender: str, payload: dict[str, Value], keys: list[SigningKey],
           as_json: bool, *, build: Callable[[Transaction], Transaction] | None = None) -> dict[str, Any]:
    """Build, sign, submit and wait for commit; exit 1 with the node's reason if refused."""
    client = node_client(node)
    try:
        tx = client.build(type_, sender, payload, *keys)
        answer = client.submit(build(tx) if build else tx)
    except ImiError as exc:
        refuse(exc, as_json)
    finally:
        client.close()
    return answer


def read_genesis(path: Path | None) -> Genesis:
    if path is None:
        usage("--genesis FILE (or IMI_GENESIS) is required: it is the root of trust")
    try:
        return Genesis.loads(read_text_file(path, "genesis"))
    except LedgerError as exc:
        fail(f"genesis {str(path)!r}: {exc}", reason=exc.reason)


def verified_client(node: str, genesis: Path | None, freshness_ms: int, *, reuse_ms: int = 0) -> LightClient:
    """A light client over ``node``, caught up; ``reuse_ms`` (capped at ``freshness_ms``)
    answers a current read again for that long (a long-lived service)."""
    if freshness_ms <= 0:
        usage("--freshness-ms must be positive")
    client = LightClient(read_genesis(genesis), HttpFetcher(node, client=http_client()), freshness_ms,
                         reuse_ms=min(reuse_ms, freshness_ms))
    try:  # a command starts from the genesis: follow every validator-set change now
        client.catch_up()
    except ImiError as exc:
        fail(str(exc), reason=exc.reason)
    return client


def ledger_verdict(presentation: str, request: PresentationRequest, *, node: str, genesis: Path | None,
                   freshness_ms: int, now: int) -> VerificationResult:
    """Verify locally with a light client over ``node`` (``imi verify`` and ``imi sdjwt verify --node``)."""
    client = verified_client(node, genesis, freshness_ms)

    def clock() -> int:  # one time for every ledger read of this verdict
        return now * 1000

    return verify_presentation(
        presentation, request, issuer_keys=LedgerIssuerKeys(client, clock_ms=clock),
        holder_keys=LedgerHolderKeys(client, clock_ms=clock), status=LedgerStatusLists(client), now=now)


def now_ms() -> int:
    return int(time.time() * 1000)


def check_did_arg(did: str) -> str:
    if not didmod.is_did(did):
        usage(f"{did!r} is not a did:imi identifier")
    return did


def staff_call(method: str, url: str, token: str, *, service: str, as_json: bool,
               body: dict[str, Any] | None = None) -> dict[str, Any]:
    """A staff request to an issuer or verifier service (bearer ``token``); its JSON object, or
    exit 1 with one line: ``<service>-unavailable``, ``<service>-error`` or the service's reason."""
    client = http_client()
    try:
        response = client.request(method, url, json=body, headers={"Authorization": f"Bearer {token}"})
        answer: Any = response.json()
    except ValueError:
        fail(f"{service} answered HTTP {response.status_code} without JSON", reason=f"{service}-error",
             as_json=as_json)
    except Exception as exc:  # noqa: BLE001 - transport failures: one line, no traceback
        fail(f"{service} {url} unreachable: {exc}", reason=f"{service}-unavailable", as_json=as_json)
    finally:
        client.close()
    if response.status_code != 200 or not isinstance(answer, dict):
        reason = answer.get("reason", f"{service}-error") if isinstance(answer, dict) else f"{service}-error"
        detail = answer.get("detail", "") if isinstance(answer, dict) else ""
        fail(f"{service} refused (HTTP {response.status_code}): {detail}", reason=str(reason), as_json=as_json)
    return answer
