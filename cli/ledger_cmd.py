"""`imi ledger`: Inspect and audit the ledger.

``imi ledger audit`` downloads a node's chain block by block and verifies it
from a genesis the auditor holds (see :mod:`cli.audit`): exit 0 with a summary,
or exit 1 naming the first bad block and the reason. ``imi ledger head`` shows
the node's latest header as the node reports it (unverified). ``imi ledger genesis``
prints a genesis file's hash (recomputed) for the out-of-band check of the ceremony.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import httpx
import typer

from cli._common import fail, print_json
from cli.audit import AUDIT_HTTP_TIMEOUT_S, AuditError, AuditReport, HttpChainSource, audit_chain
from ledger.errors import LedgerError
from ledger.genesis import Genesis

app = typer.Typer(help="Inspect and audit the ledger.", no_args_is_help=True)

NODE_OPTION = typer.Option(..., "--node", envvar="IMI_NODE", help="Node API base URL, e.g. http://127.0.0.1:8080.")


def http_client() -> httpx.Client:
    """The HTTP client of these commands (tests replace it with an in-process client)."""
    return httpx.Client(timeout=AUDIT_HTTP_TIMEOUT_S)


def _load_genesis(path: Path, as_json: bool) -> Genesis:
    try:
        return Genesis.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        fail(f"cannot read {path}: {exc}", reason="bad-genesis", as_json=as_json)
    except LedgerError as exc:
        fail(f"{path}: {exc}", reason=exc.reason, as_json=as_json)


def _print_summary(report: AuditReport) -> None:
    print(f"chain {report.chain_id} (genesis {report.genesis_hash[:16]}…): OK")
    print(f"  blocks      {report.blocks} verified from the genesis, {report.txs} txs "
          f"({report.bodies_checked} bodies checked, heights {report.from_height}..{report.to_height})")
    print(f"  head hash   {report.head_hash}")
    print(f"  state root  {report.state_root}")
    print(f"  log size    {report.log_size}, consistency {report.consistency}")
    print(f"  validator-set changes {report.validator_set_changes}")
    print(f"  seconds     {report.seconds:.2f}")


def _run_audit(source: HttpChainSource, genesis: Genesis, from_height: int, to_height: int | None,
               show_progress: bool) -> AuditReport:
    if not show_progress:
        return audit_chain(genesis, source, from_height=from_height, to_height=to_height)
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    columns = (TextColumn("auditing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("audit", total=None)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        return audit_chain(genesis, source, from_height=from_height, to_height=to_height, progress=advance)


@app.command("audit")
def audit(
    node: str = NODE_OPTION,
    genesis_file: Path = typer.Option(..., "--genesis", envvar="IMI_GENESIS",
                                      help="The genesis you trust (JSON); the root of the audit."),
    from_height: int = typer.Option(1, "--from", min=1, help="Download transaction bodies from this "
                                    "height (lower blocks are checked by their tx ids)."),
    to_height: int | None = typer.Option(None, "--to", min=1, help="Last height to audit (default: the head)."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON result only (no progress bar)."),
) -> None:
    """Verify every block, certificate, Merkle root and validator-set change of a node's chain."""
    if to_height is not None and from_height > to_height:
        raise typer.BadParameter(f"--from {from_height} exceeds --to {to_height}", param_hint="--from")
    genesis = _load_genesis(genesis_file, as_json)
    client = http_client()
    source = HttpChainSource(node, client=client)
    try:
        report = _run_audit(source, genesis, from_height, to_height,
                            show_progress=not as_json and sys.stderr.isatty())
    except AuditError as exc:
        if as_json:
            print_json({"ok": False, "height": exc.height, "reason": exc.reason, "detail": str(exc)})
            raise typer.Exit(1) from None
        fail(f"first bad block at height {exc.height}: {exc}", reason=exc.reason)
    finally:
        client.close()
    if as_json:
        print_json(report.to_json())
    else:
        _print_summary(report)


@app.command("head")
def head(
    node: str = NODE_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show the node's latest header as reported (run `imi ledger audit` to verify it)."""
    client = http_client()
    try:
        answer = HttpChainSource(node, client=client).latest_block()
    except AuditError as exc:
        fail(str(exc), reason=exc.reason, as_json=as_json)
    finally:
        client.close()
    try:
        header: dict[str, Any] = dict(answer["header"])
        summary = {key: header[key] for key in (
            "chain_id", "height", "hash", "time_ms", "tx_count", "log_size", "log_root",
            "state_root", "validator_set_hash", "proposer")}
        summary["signatures"] = len(answer["certificate"]["signatures"])
    except (KeyError, TypeError, ValueError):
        fail("node's latest block answer is malformed", reason="bad-answer", as_json=as_json)
    if as_json:
        print_json(summary)
    else:
        for key, value in summary.items():
            print(f"{key:<20} {value}")


@app.command("genesis")
def genesis_info(
    genesis_file: Path = typer.Option(..., "--genesis", envvar="IMI_GENESIS", help="Genesis JSON file."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show a genesis file's hash (recomputed from its content), chain id, validators and trustees."""
    genesis = _load_genesis(genesis_file, as_json)
    summary = {
        "hash": genesis.hash.hex(),
        "chain_id": genesis.chain_id,
        "time_ms": genesis.time_ms,
        "validators": [{"name": v.name, "address": v.address, "key_id": v.key_id, "power": v.power,
                        "tls_spki_sha256": v.tls_spki_sha256.hex()} for v in genesis.validators.validators],
        "trustees": [t.key_id for t in genesis.trustees],
        "trustee_threshold": genesis.trustee_threshold,
    }
    if as_json:
        print_json(summary)
        return
    print(f"genesis {summary['hash']}  chain {genesis.chain_id}")
    for v in genesis.validators.validators:
        print(f"  validator {v.name:<12} {v.address:<24} {v.key_id}  tls {v.tls_spki_sha256.hex()[:16]}…")
    print(f"  trustees  {genesis.trustee_threshold} of {len(genesis.trustees)}")
