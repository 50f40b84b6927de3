"""The ``imi`` command: one entry point over ledger, node and identity.

Exit codes: 0 success, 1 rejected or invalid (with the reason), 2 usage error.
Each command group lives in its own module and is mounted here. An exception no
command anticipated still ends in one line and exit 1, never a traceback
(``IMI_TRACEBACK=1`` shows it, for debugging).
"""

from __future__ import annotations

import json
import os
import sys

import typer

from cli import (
    bench_cmd,
    devnet,
    did,
    genesis,
    gov,
    issue,
    issuer,
    key,
    ledger_cmd,
    node_cmd,
    sdjwt,
    verifier,
    verify,
    wallet,
)

app = typer.Typer(
    name="imi",
    help="imi ('i am i'): a permissioned identity ledger. Citizens prove facts about "
    "themselves with credentials from accredited agencies; anyone verifies against a "
    "ledger certified by a BFT consortium.",
    epilog=(
        "Who uses what: a consortium runs validators (genesis, node, devnet); trustees "
        "govern (gov); agencies register a DID, publish credential types and status "
        "lists (did, issuer) and issue credentials (issue); citizens keep keys and "
        "credentials in a wallet (wallet) and answer questions with presentations; "
        "services check them against the ledger through one node, trusting only its "
        "certificates (verify); anyone audits the chain from the genesis (ledger audit). "
        "Offline SD-JWT tools: key, sdjwt. Every command has --help and --json (for scripts). "
        "Exit codes: 0 ok, 1 rejected or invalid (with the reason on stderr, or as JSON "
        "{ok: false, reason} with --json), 2 usage error. "
        "Start with: make run (the whole story on a local consortium), docs/architecture.md."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(key.app, name="key")
app.add_typer(sdjwt.app, name="sdjwt")
app.add_typer(genesis.app, name="genesis")
app.add_typer(node_cmd.app, name="node")
app.add_typer(devnet.app, name="devnet")
app.add_typer(did.app, name="did")
app.add_typer(gov.app, name="gov")
app.add_typer(issuer.app, name="issuer")
app.add_typer(wallet.app, name="wallet")
app.add_typer(ledger_cmd.app, name="ledger")
app.add_typer(bench_cmd.app, name="bench")
app.add_typer(issue.app, name="issue")
app.add_typer(verifier.app, name="verifier")
app.command("verify")(verify.verify)


def main() -> None:
    """Console entry point (``imi``)."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # the contract: one line and exit 1, never a traceback
        if os.environ.get("IMI_TRACEBACK"):
            raise
        detail = f"{type(exc).__name__}: {exc}"
        if "--json" in sys.argv[1:]:
            print(json.dumps({"ok": False, "reason": "internal-error", "detail": detail}))
        else:
            print(f"error [internal-error]: {detail} (IMI_TRACEBACK=1 shows the traceback)", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
