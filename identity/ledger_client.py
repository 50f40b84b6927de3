"""Submitting identity transactions to a node (``POST /v1/transactions?wait=commit``).

Reading is the light client's job (:mod:`identity.light_client`); this module only
builds and sends. The chain id and a clock reference come from the node's latest
header, unverified: a node that lies about them can only make our transaction
fail (wrong chain id, expiry), never make it mean something else.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from identity.errors import SubmitError
from ledger.encoding import Value
from ledger.keys import SigningKey
from ledger.tx import Transaction

TX_TTL_MS_DEFAULT = 10 * 60 * 1000
COMMIT_WAIT_MS_DEFAULT = 30_000


class NodeClient:
    """A thin httpx client for one node's REST API."""

    def __init__(self, base_url: str, *, timeout_s: float = 40.0, client: Any = None) -> None:
        import httpx

        self.base_url = base_url.rstrip("/")
        self._client = client or httpx.Client(timeout=timeout_s)

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            return self._client.request(method, self.base_url + path, **kwargs)
        except Exception as exc:  # transport failures become one typed error
            raise SubmitError(f"node {self.base_url} unreachable: {exc}", reason="node-unavailable") from exc

    def chain_id(self) -> str:
        response = self._request("GET", "/v1/blocks/latest")
        if response.status_code != 200:
            raise SubmitError(f"node answered HTTP {response.status_code}", reason=_reason(response))
        try:
            return str(response.json()["header"]["chain_id"])
        except (ValueError, KeyError, TypeError) as exc:
            raise SubmitError("node's latest block has no chain id", reason="malformed-response") from exc

    def build(self, type_: str, sender: str, payload: Mapping[str, Value], *keys: SigningKey,
              chain_id: str | None = None, ttl_ms: int = TX_TTL_MS_DEFAULT) -> Transaction:
        """A transaction signed by ``keys``, expiring ``ttl_ms`` from now (local clock)."""
        return Transaction.create(
            chain_id=chain_id or self.chain_id(), type=type_, sender=sender, payload=payload,
            expires_at_ms=int(time.time() * 1000) + ttl_ms,
        ).sign(*keys)

    def submit(self, tx: Transaction, *, wait_ms: int = COMMIT_WAIT_MS_DEFAULT) -> dict[str, Any]:
        """Submit and wait for commit; returns the node's answer (``id``, ``height``...)."""
        response = self._request("POST", "/v1/transactions",
                                 params={"wait": "commit", "timeout_ms": str(wait_ms)},
                                 json={"tx": tx.to_b64()})
        if response.status_code != 200:
            raise SubmitError(f"{tx.type} not committed (HTTP {response.status_code}): "
                              f"{_detail(response)}", reason=_reason(response))
        try:
            answer: dict[str, Any] = response.json()
        except ValueError as exc:
            raise SubmitError("node's answer is not JSON", reason="malformed-response") from exc
        return answer

    def close(self) -> None:
        self._client.close()


def _reason(response: Any) -> str:
    try:
        return str(response.json().get("reason", "node-error"))
    except Exception:  # noqa: BLE001 - any non-JSON body
        return "node-error"


def _detail(response: Any) -> str:
    try:
        body = response.json()
        return str(body.get("detail") or body.get("title") or body)
    except Exception:  # noqa: BLE001
        return str(response.text)[:200]


__all__ = ["NodeClient"]
