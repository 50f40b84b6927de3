"""`imi node`: Run one validator.

``imi node init`` prepares a node directory for an operator joining a
consortium on another host (keys, TLS identity, config) and prints the public
validator entry to send to whoever assembles the genesis. ``imi node start``
runs a validator from a node directory. Transaction handlers are composed
here: the devnet's ``test.note`` plus the identity rules; the service keeps
``test.note`` only on a chain whose genesis enables it (``ledger.execution.chain_handlers``).
"""

from __future__ import annotations

import asyncio
import gc
import json
import sys
from pathlib import Path
from typing import Any

import typer
import uvloop

from cli._common import fail, print_json
from cli._consortium import init_node_dir
from ledger.execution import DEVNET_HANDLERS, Handler
from ledger.keys import b64url_encode
from node.errors import NodeError

app = typer.Typer(help="Run one validator.", no_args_is_help=True)


def compose_handlers() -> tuple[dict[str, Handler], list[Any]]:
    """The transaction handlers and extra API routers of a full node: devnet + identity.

    Imported directly (no fallback): a node silently missing the identity rules
    would reject every identity transaction its peers accept.
    """
    from identity.http.node_routes import ROUTERS
    from identity.rules import IDENTITY_HANDLERS

    handlers: dict[str, Handler] = dict(DEVNET_HANDLERS)
    handlers.update(IDENTITY_HANDLERS)
    routers: list[Any] = list(ROUTERS)
    return handlers, routers


@app.command("init")
def init(
    directory: Path = typer.Option(..., "--dir", help="Node directory to create."),
    name: str = typer.Option(..., "--name", help="Validator name (unique in the consortium)."),
    listen: str = typer.Option(..., "--listen", help="host:port of the validator transport, "
                               "as peers will dial it."),
    api: str = typer.Option("127.0.0.1:8080", "--api", help="host:port of the REST API."),
    as_json: bool = typer.Option(False, "--json", help="Print the entry as JSON only."),
) -> None:
    """Create keys and config for one validator (a new or empty DIR, all or nothing); print its
    public genesis entry."""
    try:
        member = init_node_dir(directory, name=name, listen=listen, api=api)
    except FileExistsError as exc:
        fail(str(exc), reason="exists", as_json=as_json)
    except (ValueError, OSError) as exc:
        fail(str(exc), reason="bad-arguments", as_json=as_json)
    entry = {"name": name, "jwk": member.public_key.to_jwk(), "power": member.power, "address": listen,
             "tls_spki_sha256": b64url_encode(member.tls_spki_sha256)}
    if as_json:
        print_json(entry)
    else:
        print(f"node directory {directory} ready; add this entry to the genesis 'validators' list,")
        print(f"share {directory / 'tls_cert.pem'} with every other operator (their certs/ directory):")
        print(json.dumps(entry, indent=2))


def _json_logs(level: str) -> None:
    """JSON log lines for the service and for the uvicorn server it builds with uvicorn's default
    logging config (which this process swaps in place: the service takes no log config)."""
    from uvicorn.config import LOGGING_CONFIG

    from cli._common import configure_json_logging, uvicorn_json_log_config

    configure_json_logging(level)
    LOGGING_CONFIG.update(uvicorn_json_log_config())


async def _serve(service: Any) -> None:
    """Run ``service`` (a ValidatorService). Once it is caught up and in consensus,
    everything allocated so far — modules, the API app, the genesis and caches — is
    frozen out of the cyclic garbage collector: ~73,000 objects that live as long as the
    process, which every full collection would otherwise walk again (60-190 ms with the
    loop stalled, measured under load; see docs/benchmarks.md)."""
    run = asyncio.create_task(service.run())
    running = asyncio.create_task(service.running.wait())
    done, _ = await asyncio.wait({run, running}, return_when=asyncio.FIRST_COMPLETED)
    if running in done:
        gc.collect()
        gc.freeze()
    else:
        running.cancel()
    await run


@app.command("start")
def start(
    directory: Path = typer.Option(..., "--dir", help="Node directory (node.json, keys, genesis)."),
    as_json: bool = typer.Option(False, "--json", help="Log one JSON object per line (stderr): "
                                 "ts, level, logger, message."),
) -> None:
    """Run a validator until SIGTERM/SIGINT. Config: node.json, overridden by IMI_* variables."""
    from node.service import NodeConfig, ValidatorService, configure_logging

    try:
        config = NodeConfig.load(directory)
        if as_json:
            _json_logs(config.log_level)
        else:
            configure_logging(config.log_level)
        handlers, routers = compose_handlers()
        service = ValidatorService(config, handlers, extra_routers=routers)
    except NodeError as exc:  # ConfigError among them
        fail(str(exc), reason=exc.reason)
    try:
        # uvloop: the event loop (TLS peers, HTTP, timers) in C rather than Python —
        # see docs/dependencies.md for the measured difference.
        uvloop.run(_serve(service))
    except KeyboardInterrupt:
        sys.exit(130)


@app.command("wal-repair")
def wal_repair(
    directory: Path = typer.Option(..., "--dir", help="Node directory (node.json; the node must be stopped)."),
    truncate: bool = typer.Option(False, "--truncate", help="Cut the log at the first damage, dropping every "
                                  "record after it. Without it, only say what would be dropped."),
    as_json: bool = typer.Option(False, "--json", help="Print {ok, wal, damaged, offset, kept, dropped_bytes, "
                                 "dropped_records, dropped_height_max, truncated}."),
) -> None:
    """Diagnose the consensus WAL (data/wal.log) and, with --truncate, cut it at a corrupt record.

    `imi node start` refuses a log whose damage is followed by intact records: they were
    durable and may record a vote this validator signed. Cutting them is the operator's
    decision; after it, the validator may not remember votes at the heights they name."""
    from node.service import NodeConfig
    from node.wal import repair

    try:
        path = NodeConfig.load(directory).data_dir / "wal.log"
        report = repair(path, truncate=truncate)
    except NodeError as exc:
        fail(str(exc), reason=exc.reason, as_json=as_json)
    if as_json:
        print_json({"ok": not report.damaged or report.applied, "wal": str(path), "damaged": report.damaged,
                    "offset": report.offset, "kept": report.kept, "dropped_bytes": report.dropped_bytes,
                    "dropped_records": report.dropped_records, "dropped_height_max": report.dropped_height_max,
                    "truncated": report.applied})
    elif not report.damaged:
        print(f"{path}: intact, {report.kept} records")
    else:
        heights = ("" if report.dropped_height_max is None
                   else f", naming heights up to {report.dropped_height_max}")
        what = (f"{report.dropped_bytes} bytes from offset {report.offset} "
                f"({report.dropped_records} intact records{heights}); {report.kept} records before it are kept")
        if report.applied:
            print(f"{path}: cut at offset {report.offset}: dropped {what}. The validator may have signed votes "
                  f"it no longer remembers: restart it once the chain is past those heights.")
        else:
            print(f"{path}: damaged at offset {report.offset}; --truncate would drop {what}", file=sys.stderr)
    if report.damaged and not report.applied:
        raise typer.Exit(1)


STATUS_TIMEOUT_S = 10.0


@app.command("status")
def status(
    url: str = typer.Option("http://127.0.0.1:8080", "--url", help="The validator's API base URL."),
    as_json: bool = typer.Option(False, "--json", help="Print its /ready answer: {ok, ready, syncing, "
                                 "height, sync_target_height, sync_blocks_per_s, sync_tx_per_s, "
                                 "peers_connected, power_connected, power_needed, why}."),
) -> None:
    """Show a running validator's state: ready or not (and why), height, and its catch-up
    progress (height of target, blocks and transactions per second) while it syncs.
    Exit 0 when ready, 1 when not ready or unreachable."""
    import httpx

    try:
        answer = httpx.get(f"{url.rstrip('/')}/ready", timeout=STATUS_TIMEOUT_S)
        report = answer.json()
        report = {key: report[key] for key in ("ready", "syncing", "height", "sync_target_height",
                                              "sync_blocks_per_s", "sync_tx_per_s", "peers_connected",
                                              "power_connected", "power_needed", "why")}
    except httpx.HTTPError as exc:
        fail(f"cannot reach {url}: {exc}", reason="unreachable", as_json=as_json)
    except (ValueError, KeyError, TypeError):
        fail(f"{url}/ready did not answer as a validator does", reason="bad-answer", as_json=as_json)
    if as_json:
        print_json({"ok": bool(report["ready"]), **({} if report["ready"] else {"reason": "not-ready"}), **report})
    else:
        print(_status_line(report))
    if not report["ready"]:
        raise typer.Exit(1)


def _status_line(report: dict[str, Any]) -> str:
    height, target = report["height"], report["sync_target_height"]
    if report["syncing"]:
        state = (f"syncing: height {height} of {target}, {report['sync_blocks_per_s']} blocks/s, "
                 f"{report['sync_tx_per_s']} tx/s")
    else:
        state = f"{'ready' if report['ready'] else 'not ready'}: height {height}"
    peers = (f"peers {report['peers_connected']}, voting power {report['power_connected']} "
             f"(quorum {report['power_needed']})")
    why = "" if report["ready"] or not report["why"] else " — " + "; ".join(report["why"])
    return f"{state}; {peers}{why}"
