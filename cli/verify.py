"""`imi verify`: check a presentation against the ledger, trusting no node.

The verifier runs :func:`identity.verifier.verify_presentation` itself, with the
ledger adapters of :mod:`identity.ledger_trust` over a
:class:`~identity.light_client.LightClient` that reads ONE node (``--node``) and
checks every answer against commit certificates rooted in ``--genesis``. A lying
or stale node yields an invalid verdict with a reason, never a wrong "valid".

Exit 0 valid (prints the disclosed claims), 1 invalid (``error [reason]: ...`` or
``{"ok": false, "valid": false, "reason": ...}`` with ``--json``), 2 usage.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer

from cli._common import EXIT_INVALID, fail, read_json_object, read_text_file
from cli._ledger_client import GENESIS_OPTION, NODE_OPTION, ledger_verdict
from identity.ledger_constants import FRESHNESS_MS_DEFAULT
from identity.request import PresentationRequest
from identity.verifier import VerificationResult


def report(result: VerificationResult, *, as_json: bool, now: int) -> None:
    """Print the verdict; exit 1 when invalid."""
    if as_json:
        typer.echo(json.dumps({"ok": result.valid, "valid": result.valid,
                               "reason": None if result.valid else result.reason,
                               "detail": result.detail, "disclosed": dict(result.claims or {}),
                               "checked_at": now}, indent=2, sort_keys=True, ensure_ascii=False))
        if not result.valid:
            raise typer.Exit(EXIT_INVALID)
        return
    if not result.valid or result.claims is None:
        fail(result.detail or result.reason, reason=result.reason)
    typer.echo("valid")
    for name, value in result.claims.items():
        typer.echo(f"{name}: {json.dumps(value, ensure_ascii=False)}")


def verify(
    presentation: Path = typer.Option(..., "--presentation", help="File holding the SD-JWT+KB."),
    request: Path = typer.Option(..., "--request", help="Your request (PresentationRequest JSON)."),
    node: str = NODE_OPTION,
    genesis: Path | None = GENESIS_OPTION,
    freshness_ms: int = typer.Option(FRESHNESS_MS_DEFAULT, "--freshness-ms",
                                     help="Reject ledger answers whose header is older than this."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable verdict."),
    now: int | None = typer.Option(None, "--now", hidden=True, help="Seconds since the epoch (tests)."),
) -> None:
    """Verify a presentation locally against the ledger (light client over one node, trusts none)."""
    text = read_text_file(presentation, "presentation").strip()
    try:
        question = PresentationRequest.from_json(read_json_object(request, "request"))
    except ValueError as exc:
        fail(f"bad request: {exc}", reason="bad-request", as_json=as_json)
    at = int(time.time()) if now is None else now
    report(ledger_verdict(text, question, node=node, genesis=genesis, freshness_ms=freshness_ms, now=at),
           as_json=as_json, now=at)


__all__ = ["report", "verify"]
