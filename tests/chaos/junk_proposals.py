"""A validator floods the others with oversized, future-height proposals.

The real validator ``SENDER`` is stopped and an impostor with its identity
(:mod:`tests.chaos._byzantine`, mode ``junk-proposals``) sends every honest
validator bursts of ~3.9 MiB proposals for the next heights, signed with its real
consensus key (so only a byte budget can stop them), forged ones, and frames
past the size limit. Each honest validator's resident memory may grow by at
most ``RSS_GROWTH_MIB_MAX`` over its level before the attack, the lowest honest
height must never stand still longer than ``STALL_S_MAX`` and must advance, and
each honest validator must have disconnected the sender for going past its
byte share (``imi_peer_disconnects``), and the impostor must still be running at the end.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from cli.devnet import Devnet
from tests.chaos._peers import (
    IMPOSTOR_READY_S_MAX,
    Progress,
    counters,
    impostor_failure,
    rss_mib,
    start_impostor,
    stop_impostor,
    wait_until_counted,
)

NAME = "junk-proposals"

VALIDATORS = 4
SENDER = "v3"
HEARTBEAT_MS = 500
WARM_UP_S = 2.0  # before measuring the honest validators' memory baseline
OBSERVE_S_QUICK = 8.0
OBSERVE_S_FULL = 60.0
# Each signer may hold 2 full messages (~16 MiB encoded) in the future buffer; parsed, plus
# one frame being decoded, that is well under this. Before the byte budget, 25 junk
# proposals cost about +300 MiB.
RSS_GROWTH_MIB_MAX = 120.0
STALL_S_MAX = 7.5  # parsing junk costs honest validators CPU, so a little more than lying-height
ADVANCE_HEIGHTS_PER_S_MIN = 0.25


def run(workdir: Path, *, quick: bool) -> list[str]:
    observe_s = OBSERVE_S_QUICK if quick else OBSERVE_S_FULL
    net = Devnet(workdir / "devnet")
    impostor = None
    violations: list[str] = []
    try:
        net.up(VALIDATORS, heartbeat_ms=HEARTBEAT_MS)
        honest = [n.name for n in net.nodes() if n.name != SENDER]
        time.sleep(WARM_UP_S)
        pids = net.pids()
        baseline = {n: rss_mib(pids[n]) for n in honest}
        log_file = workdir / "byzantine.log"
        impostor = start_impostor(net, SENDER, "junk-proposals", observe_s + IMPOSTOR_READY_S_MAX + 10, log_file)
        progress = Progress()
        progress.watch(net, honest, observe_s)
        wait_until_counted(net, honest, "imi_peer_disconnects_total", progress, impostor)
        with httpx.Client(timeout=5.0) as client:
            cut = {n: counters(net, n, client).get("imi_peer_disconnects_total", 0.0) for n in honest}
        growth = {n: progress.rss_peak_mib.get(n, 0.0) - baseline[n] for n in honest}
        print(f"{NAME}: honest heights {progress.first} -> {progress.last} in {observe_s:.0f} s, "
              f"longest stall {progress.longest_stall_s:.1f} s; RSS baseline "
              f"{ {n: round(v) for n, v in baseline.items()} } MiB, growth "
              f"{ {n: round(v) for n, v in growth.items()} } MiB; sender disconnected {cut}")
        violations += [f"{n}'s memory grew by {g:.0f} MiB (at most {RSS_GROWTH_MIB_MAX:.0f} allowed)"
                       for n, g in growth.items() if g > RSS_GROWTH_MIB_MAX]
        wanted = int(ADVANCE_HEIGHTS_PER_S_MIN * observe_s)
        if progress.advanced < wanted:
            violations.append(f"the chain advanced {progress.advanced} heights in {observe_s:.0f} s "
                              f"(at least {wanted} expected)")
        if progress.longest_stall_s > STALL_S_MAX:
            violations.append(f"the chain stood still for {progress.longest_stall_s:.1f} s "
                              f"(at most {STALL_S_MAX} s allowed)")
        failure = impostor_failure(impostor, log_file)
        violations += [failure] if failure is not None else []
        violations += [f"{n} never disconnected the junk sender" for n, times in cut.items() if not times]
    finally:
        if impostor is not None:
            stop_impostor(impostor)
        net.down()
    return violations
