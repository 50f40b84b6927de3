"""Helpers shared by the limits scenarios (one-sender-flood, slowloris): a devnet with
given API limits, a height monitor, and clients bound to a chosen loopback address
(any 127/8 address is loopback on Linux, so one machine has many client addresses)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from cli.devnet import Devnet

HTTP_TIMEOUT_S = 45.0
HEIGHT_POLL_S = 0.25


def client_at(address: str, *, timeout_s: float = HTTP_TIMEOUT_S, connections_max: int = 64) -> httpx.AsyncClient:
    """An HTTP client whose connections come from ``address`` (a loopback address)."""
    transport = httpx.AsyncHTTPTransport(local_address=address,
                                         limits=httpx.Limits(max_connections=connections_max))
    return httpx.AsyncClient(transport=transport, timeout=timeout_s)


def devnet_up(workdir: Path, name: str, env: dict[str, str]) -> Devnet:
    """A fresh 4-validator devnet under ``workdir/name`` with ``env`` for every validator."""
    net = Devnet(workdir / name)
    net.up(4, env=env)
    return net


@dataclass
class HeightWatch:
    """Polls one validator's /health; ``longest_stall_s`` is the longest time the height
    stood still while watched, ``heights`` the first and last height seen."""

    api: str
    heights: list[int] = field(default_factory=list)
    longest_stall_s: float = 0.0
    errors: int = 0

    async def run(self, stop: asyncio.Event) -> None:
        last_change = time.monotonic()
        async with client_at("127.0.0.1", timeout_s=5.0) as client:
            while not stop.is_set():
                try:
                    height = int((await client.get(f"{self.api}/health")).json()["height"])
                except (httpx.HTTPError, ValueError, KeyError):
                    self.errors += 1
                    height = self.heights[-1] if self.heights else 0
                now = time.monotonic()
                if not self.heights or height > self.heights[-1]:
                    last_change = now
                    self.heights.append(height)
                self.longest_stall_s = max(self.longest_stall_s, now - last_change)
                await asyncio.sleep(HEIGHT_POLL_S)

    @property
    def advanced(self) -> int:
        return self.heights[-1] - self.heights[0] if self.heights else 0


__all__ = ["HeightWatch", "client_at", "devnet_up"]
