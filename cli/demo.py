"""`make run`: the node demonstration.

Brings up a local 4-validator devnet (each validator its own OS process),
submits transactions to different validators, then reads one back from a
SINGLE node and checks, without trusting that node:

1. the header's commit certificate: > 2/3 of the genesis validator set signed it;
2. the transaction's RFC 9162 inclusion proof against the header's ``log_root``;
3. a state proof (the note the transaction wrote) against the header's ``state_root``.

Exit 0 when every check holds. ``--keep`` leaves the devnet running and prints
its URLs (stop it with ``imi devnet down --dir DIR``).
"""

from __future__ import annotations

import argparse
import base64
import sys
import tempfile
import time
from pathlib import Path

import httpx

from cli.devnet import Devnet
from ledger import statekeys
from ledger.block import BlockHeader, CommitCertificate
from ledger.errors import LedgerError
from ledger.genesis import Genesis
from ledger.keys import SigningKey
from ledger.merkle import leaf_hash, verify_inclusion
from ledger.state import StateProof, verify_state_proof
from ledger.tx import Transaction

DEMO_TXS = 12


def _b64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _check_anchor(body: dict, genesis: Genesis) -> BlockHeader:  # type: ignore[type-arg]
    """Header + certificate from a node's answer, verified against the genesis validator set."""
    header = BlockHeader.from_json(body["header"])
    certificate = CommitCertificate.from_json(body["certificate"])
    certificate.verify(header, genesis.validators)
    return header


def demo(directory: Path, keep: bool) -> int:
    net = Devnet(directory)
    print(f"devnet: starting 4 validators in {directory} ...", flush=True)
    net.up(4)
    ok = False
    try:
        genesis = Genesis.loads((directory / "genesis.json").read_text())
        nodes = net.nodes()
        for entry in net.status()["nodes"]:
            print(f"  {entry['name']}  pid {entry['pid']}  {entry['api']}  height {entry['height']}")
        key = SigningKey.generate()
        txs: list[Transaction] = []
        with httpx.Client(timeout=30.0) as client:
            for i in range(DEMO_TXS):
                tx = Transaction.create(
                    chain_id=genesis.chain_id, type="test.note", sender=key.key_id,
                    payload={"data": f"hello imi #{i}".encode()},
                    expires_at_ms=int(time.time() * 1000) + 60_000).sign(key)
                node = nodes[i % len(nodes)]
                response = client.post(f"{node.api}/v1/transactions", params={"wait": "commit"},
                                       json={"tx": tx.to_b64()})
                response.raise_for_status()
                txs.append(tx)
            print(f"submitted {len(txs)} transactions to {len(nodes)} validators; all committed")
            last = txs[-1]
            reader = nodes[1]
            answer = client.get(f"{reader.api}/v1/transactions/{last.tx_id.hex()}").json()
            header = _check_anchor(answer, genesis)
            print(f"read tx {last.tx_id.hex()[:16]}… from {reader.name} only: block {header.height}, "
                  f"certificate verified against the genesis validator set")
            proof = answer["inclusion_proof"]
            verify_inclusion(proof["leaf_index"], proof["tree_size"], leaf_hash(last.tx_id),
                             [bytes.fromhex(h) for h in proof["hashes"]], header.log_root)
            print(f"  inclusion proof: leaf {proof['leaf_index']} of {proof['tree_size']} "
                  f"under log_root {header.log_root.hex()[:16]}… ok")
            key_path = statekeys.note_key(last.sender).decode()
            state = client.get(f"{reader.api}/v1/state/{key_path}", params={"height": header.height}).json()
            state_header = _check_anchor(state, genesis)
            value = _b64(state["value"]) if state["value"] is not None else None
            verify_state_proof(state_header.state_root, statekeys.note_key(last.sender), value,
                               StateProof.from_json(state["proof"]))
            assert value == last.payload["data"], "state holds another note"
            print(f"  state proof: {key_path[:24]}… = {value!r} under state_root "
                  f"{state_header.state_root.hex()[:16]}… ok")
        ok = True
    except (LedgerError, httpx.HTTPError, AssertionError, KeyError) as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
    finally:
        if keep and ok:
            print(f"devnet left running; stop with: imi devnet down --dir {directory}")
        else:
            net.down()
            print("devnet stopped")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cli.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="leave the devnet running")
    parser.add_argument("--dir", type=Path, default=None, help="devnet directory (default: a temporary one)")
    args = parser.parse_args(argv)
    if args.dir is not None:
        return demo(args.dir, args.keep)
    if args.keep:
        return demo(Path(tempfile.mkdtemp(prefix="imi-devnet-")), True)
    with tempfile.TemporaryDirectory(prefix="imi-devnet-") as tmp:
        return demo(Path(tmp) / "devnet", False)


if __name__ == "__main__":
    raise SystemExit(main())
