"""A validator lies about its height; the chain must keep committing.

The real validator ``LIAR`` is stopped and an impostor with its identity
(:mod:`tests.chaos._byzantine`, mode ``lying-height``) announces heights nobody
reached — bare, with a real certificate of another height, re-numbered, and
self-certified — and never answers a catch-up request. The three honest
validators hold the quorum alone, so every pause of one of them stalls the
chain: the lowest honest height must never stand still longer than
``STALL_S_MAX`` and must advance by ``ADVANCE_HEIGHTS_PER_S_MIN`` a second over the run, and
each honest validator must have counted the lies (``imi_peer_unproven_height_claims``).
The impostor must still be running at the end: one that died (its log's last line is
reported) attacked nobody, and the scenario says so rather than judging a calm chain.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from cli.devnet import Devnet
from tests.chaos._peers import (
    IMPOSTOR_READY_S_MAX,
    Progress,
    counters,
    impostor_failure,
    start_impostor,
    stop_impostor,
    wait_until_counted,
)

NAME = "lying-height"

VALIDATORS = 4
LIAR = "v3"
HEARTBEAT_MS = 500
OBSERVE_S_QUICK = 8.0
OBSERVE_S_FULL = 60.0
# With a heartbeat of 0.5 s and the liar's proposer turns lost to a 2 s propose timeout,
# honest validators commit about a block a second; a pause waiting on a catch-up request
# to the liar lasts SYNC_REQUEST_TIMEOUT_MS (5 s).
STALL_S_MAX = 6.0
ADVANCE_HEIGHTS_PER_S_MIN = 0.4


def run(workdir: Path, *, quick: bool) -> list[str]:
    observe_s = OBSERVE_S_QUICK if quick else OBSERVE_S_FULL
    net = Devnet(workdir / "devnet")
    impostor = None
    violations: list[str] = []
    try:
        net.up(VALIDATORS, heartbeat_ms=HEARTBEAT_MS)
        honest = [n.name for n in net.nodes() if n.name != LIAR]
        log_file = workdir / "byzantine.log"
        impostor = start_impostor(net, LIAR, "lying-height", observe_s + IMPOSTOR_READY_S_MAX + 10, log_file)
        wait_until_counted(net, honest, "imi_peer_unproven_height_claims_total", impostor=impostor)
        progress = Progress()
        progress.watch(net, honest, observe_s)
        with httpx.Client(timeout=5.0) as client:
            claims = {n: counters(net, n, client).get("imi_peer_unproven_height_claims_total", 0.0)
                      for n in honest}
        print(f"{NAME}: honest heights {progress.first} -> {progress.last} in {observe_s:.0f} s, "
              f"longest stall {progress.longest_stall_s:.1f} s, unproven claims seen {claims}")
        wanted = int(ADVANCE_HEIGHTS_PER_S_MIN * observe_s)
        if progress.advanced < wanted:
            violations.append(f"the chain advanced {progress.advanced} heights in {observe_s:.0f} s "
                              f"(at least {wanted} expected)")
        if progress.longest_stall_s > STALL_S_MAX:
            violations.append(f"the chain stood still for {progress.longest_stall_s:.1f} s "
                              f"(at most {STALL_S_MAX} s allowed)")
        failure = impostor_failure(impostor, log_file)
        violations += [failure] if failure is not None else []
        violations += [f"{n} never saw the liar's claims (the attack did not happen)"
                       for n, seen in claims.items() if not seen]
    finally:
        if impostor is not None:
            stop_impostor(impostor)
        net.down()
    return violations
