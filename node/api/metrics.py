"""Prometheus metrics of the REST API, in a registry owned by one app.

Each :func:`node.api.app.create_app` builds its own :class:`ApiMetrics` (and
``CollectorRegistry``), so two apps in one process (tests, a devnet in one
interpreter) never share counters and nothing lives at module level.

Route labels use the route *template* (``/v1/blocks/{height}``), never the raw
path, so label cardinality stays bounded whatever clients send.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_UNMATCHED = "unmatched"


class ApiMetrics:
    """The API's counters, gauges and histograms, registered in a private registry."""

    def __init__(self, height: Callable[[], float]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "imi_api_requests", "HTTP requests served, by route template, method and status",
            ["route", "method", "status"], registry=self.registry,
        )
        self.request_seconds = Histogram(
            "imi_api_request_seconds", "Time to serve an HTTP request, by route template",
            ["route"], registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
        self.tx_submitted = Counter(
            "imi_api_tx_submitted", "Transactions accepted into the mempool through the API",
            registry=self.registry,
        )
        self.tx_rejected = Counter(
            "imi_api_tx_rejected", "Transactions refused through the API, by reason",
            ["reason"], registry=self.registry,
        )
        self.tx_commit_timeouts = Counter(
            "imi_api_tx_commit_timeouts", "?wait=commit requests that timed out",
            registry=self.registry,
        )
        self.height = Gauge("imi_height", "Height of the last committed block", registry=self.registry)
        self.height.set_function(height)


# Fields of NodeView.status() exported at each scrape: (metric, help, is a counter).
# A node that does not report a field (the in-process dev node) simply lacks the metric.
STATUS_METRICS: dict[str, tuple[str, str, bool]] = {
    "mempool_size": ("imi_mempool_txs", "Transactions waiting in this validator's mempool", False),
    "peers_connected": ("imi_peers_connected", "Validators this one has a live TLS connection to", False),
    "round": ("imi_consensus_round",
              "Consensus round at the current height (above 0: a proposer was slow or down)", False),
    "syncing": ("imi_syncing", "1 while catching up from peers, else 0", False),
    "sync_target_height": ("imi_sync_target_height",
                           "The highest trusted peer height the current (or last) catch-up aimed at", False),
    "sync_blocks_applied": ("imi_sync_blocks_applied", "Blocks fetched, verified and stored by catch-up since start",
                            True),
    "sync_txs_applied": ("imi_sync_txs_applied", "Transactions of the blocks catch-up stored since start", True),
    "sync_blocks_per_s": ("imi_sync_blocks_per_s",
                          "Blocks stored per second by the current (or last) catch-up, over its whole time", False),
    "sync_tx_per_s": ("imi_sync_tx_per_s",
                      "Transactions stored per second by the current (or last) catch-up, over its whole time", False),
    "evidence": ("imi_consensus_evidence",
                 ("Equivocations (two signed votes or proposals for one step by one validator) seen "
                  "since start; each is also logged"), True),
    "frames_received": ("imi_peer_frames_received", "Frames read from other validators since start", True),
    "frames_sent": ("imi_peer_frames_sent", "Frames written to other validators since start", True),
    "frames_dropped": ("imi_peer_frames_dropped",
                       ("Frames dropped from a full send queue to a slow or absent validator, or "
                        "queued for one unreachable for SEND_QUEUE_STALE_MS"), True),
    "bad_frames": ("imi_peer_bad_frames",
                   "Frames from validators that were too large, not canonical or not a valid message", True),
    "peer_refusals": ("imi_peer_refusals",
                      ("Validator connections refused for their TLS key (outside the validator set, "
                      "or not the one it names)"), True),
    "api_connections_open": ("imi_api_connections_open", "Open connections to this validator's REST API", False),
    "api_connections_refused": ("imi_api_connections_refused",
                                ("API connections answered 503 at once: over the total or the per-client "
                                 "cap (node.api.server)"), True),
    "api_request_timeouts": ("imi_api_request_timeouts",
                             "API connections closed because a request head or body was too slow (slowloris)",
                             True),
    "api_cpu_refused": ("imi_api_cpu_refused",
                        "CPU-heavy API requests answered 503 overloaded: the worker pool and its queue were full",
                        True),
    "peer_disconnects": ("imi_peer_disconnects",
                         ("Validators disconnected (and refused a while) for sending more future-height "
                          "consensus messages than their byte share"), True),
    "unproven_height_claims": ("imi_peer_unproven_height_claims",
                               ("Height announcements above ours without a commit certificate that "
                                "verifies (believed only up to what more than f of the power claims)"), True),
    "sync_peer_failures": ("imi_sync_peer_failures",
                           ("Catch-up requests a peer failed (no answer in time, nothing to give, blocks "
                            "that do not verify); the peer is then not asked again for a growing backoff"),
                           True),
}


# Histograms of status()["consensus_timings"] (node.timings.HISTOGRAM_BUCKETS): help text.
# Each is exported as consensus_timing_metric(name) (tests check both cover the same names).
TIMING_HELP: dict[str, str] = {
    "height": "From entering a height to its block stored here (all its rounds)",
    "proposal_to_commit": "From the height's first proposal sent or received to its block stored here",
    "block_interval": "Between two blocks stored by consensus here",
    "wal_sync": "One fsync of the consensus WAL (votes wait for it)",
    "block_store": "Verifying a decided block's certificate and storing it (one synced LevelDB batch)",
}


def consensus_timing_metric(name: str) -> str:
    """The Prometheus name of the consensus histogram ``name`` (a key of ``TIMING_HELP``)."""
    return f"imi_consensus_{name}_seconds"


def _timing_families(timings: object) -> Iterator[Metric]:
    if not isinstance(timings, dict):
        return
    for field, help_text in TIMING_HELP.items():
        histogram = timings.get(field)
        if not isinstance(histogram, dict):
            continue
        buckets = [(repr(float(bound)), float(count)) for bound, count in histogram["buckets"]]
        buckets.append(("+Inf", float(histogram["count"])))
        family = HistogramMetricFamily(consensus_timing_metric(field), help_text)
        family.add_metric([], buckets, float(histogram["sum"]))
        yield family


class NodeStatusCollector:
    """Exports the node's own status (mempool, peers, round, catch-up, equivocation evidence,
    traffic with the other validators, where commit latency goes), read once per scrape
    from ``status()``."""

    def __init__(self, status: Callable[[], dict[str, Any]]) -> None:
        self.status = status

    def describe(self) -> list[Metric]:
        return []  # fields depend on the node; collected at scrape time only

    def collect(self) -> Iterator[Metric]:
        status = self.status()
        for field, (name, help_text, counter) in STATUS_METRICS.items():
            value = status.get(field)
            if isinstance(value, bool):
                value = int(value)
            if not isinstance(value, int | float):
                continue
            family = CounterMetricFamily(name, help_text) if counter else GaugeMetricFamily(name, help_text)
            family.add_metric([], float(value))
            yield family
        yield from _timing_families(status.get("consensus_timings"))


class MetricsMiddleware:
    """Count every response (including 413s and 500s from inner layers) by route and status."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            route = scope.get("route")
            template = str(getattr(route, "path", _UNMATCHED)) if route is not None else _UNMATCHED
            self.metrics.requests.labels(template, scope.get("method", ""), str(status)).inc()
            self.metrics.request_seconds.labels(template).observe(time.perf_counter() - started)


__all__ = ["STATUS_METRICS", "TIMING_HELP", "ApiMetrics", "MetricsMiddleware", "NodeStatusCollector",
           "consensus_timing_metric"]
