"""Container health check: exit 0 if the validator's REST API answers ``/health`` with status ok.

Reads the API address the way ``imi node start`` does (``api`` in ``node.json`` of the
node directory, overridden by ``IMI_API``; see ``node.service.NodeConfig``), so one
image serves validators on any port. A wildcard bind address (0.0.0.0, ::) is probed
on loopback. Standard library only: it runs every few seconds in the container.

Usage: python healthcheck.py [NODE_DIR]   (default: $IMI_NODE_DIR or /node)
"""

from __future__ import annotations

import json
import os
import sys
import urllib.request
from pathlib import Path

HEALTH_TIMEOUT_S = 3.0
_WILDCARDS = {"0.0.0.0", "::", "[::]", ""}


def api_url(node_dir: Path) -> str:
    """Base URL of the node's API from its config and environment; ValueError if there is none."""
    config = json.loads((node_dir / "node.json").read_text())
    address = os.environ.get("IMI_API", config.get("api") if isinstance(config, dict) else None)
    host, _, port = str(address).rpartition(":")
    if not port.isdigit():
        raise ValueError(f"api address {address!r} is not host:port")
    host = "127.0.0.1" if host in _WILDCARDS else host
    return f"http://{host}:{port}"


def main(argv: list[str]) -> int:
    node_dir = Path(argv[1] if len(argv) > 1 else os.environ.get("IMI_NODE_DIR", "/node"))
    try:
        url = api_url(node_dir) + "/health"
        with urllib.request.urlopen(url, timeout=HEALTH_TIMEOUT_S) as response:
            body = json.loads(response.read())
    except (OSError, ValueError) as exc:  # unhealthy, with its reason on stderr
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    if body.get("status") != "ok":
        print(f"unhealthy: {body}", file=sys.stderr)
        return 1
    print(f"ok: {body.get('name')} at height {body.get('height')}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
