"""A light-client fetcher that reads the identity endpoints instead of raw ``/v1/state``.

:class:`IdentityHttpFetcher` is a drop-in :class:`identity.light_client.Fetcher`:
state keys of DIDs, issuers, credential types and status lists are fetched from
``/v1/dids/…``, ``/v1/issuers/…``, ``/v1/credential-types/…`` and
``/v1/status-lists/…``; any other key from ``/v1/state``. Before an answer goes to
the :class:`~identity.light_client.LightClient` (which proves ``value`` against
a certified header), the fetcher checks that the answer's readable members (DID
document, issuer record, status list) are exactly what ``value`` says
(:func:`identity.views.check_view`). Together: what the node showed is what
the consortium certified, or :class:`LightClientError` — never a result.

A ``404`` whose problem document carries a state answer (``value: null`` and its
absence proof) is handed on as that answer, so absence is proven too.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from typing import Any

from identity.errors import LightClientError
from identity.light_client import HttpFetcher
from identity.views import check_view, kind_of

_VERSION_MARK = "#v"


def identity_path(key: bytes) -> tuple[str, dict[str, str]] | None:
    """(URL path, extra query) of the identity endpoint serving state ``key``, or None."""
    kind = kind_of(key)
    if kind is None:
        return None
    name = key.decode("utf-8").split("/", 1)[1]
    params: dict[str, str] = {}
    if kind == "did":
        did, mark, version = name.partition(_VERSION_MARK)
        if mark:
            if not version.isdigit():
                return None
            params["version"] = version
        return "/v1/dids/" + urllib.parse.quote(did, safe=":"), params
    prefix = {"issuer": "/v1/issuers/", "service": "/v1/services/", "vct": "/v1/credential-types/",
              "status": "/v1/status-lists/"}[kind]
    return prefix + urllib.parse.quote(name, safe=":" if kind in ("issuer", "service") else ""), params


class IdentityHttpFetcher(HttpFetcher):
    """:class:`HttpFetcher` reading identity records through the identity endpoints."""

    def __init__(self, base_url: str, *, timeout_s: float = 10.0, client: Any = None) -> None:
        import httpx

        self._http = client or httpx.Client(timeout=timeout_s)
        super().__init__(base_url, timeout_s=timeout_s, client=self._http)

    def state(self, key: bytes, height: int | None) -> Mapping[str, Any]:
        route = identity_path(key)
        if route is None:
            return super().state(key, height)
        path, params = route
        if height is not None:
            params["height"] = str(height)
        response = self._http.get(self.base_url + path, params=params)
        try:
            body = response.json()
        except ValueError as exc:
            raise LightClientError(f"node answered HTTP {response.status_code} without JSON",
                                   reason="malformed-response") from exc
        if not isinstance(body, dict):
            raise LightClientError("node answer is not an object", reason="malformed-response")
        absent = response.status_code == 404 and "proof" in body and body.get("value") is None
        if response.status_code != 200 and not absent:
            # The node's own reason goes in the message only: an unproven "not found" must not
            # read like a proven one (NotFoundError, raised by the light client after a proof).
            raise LightClientError(f"node answered HTTP {response.status_code} for {path} "
                                   f"({str(body.get('reason', ''))[:64]})", reason="node-error")
        kind = kind_of(key)
        assert kind is not None  # identity_path returned a route
        check_view(kind, body)
        return body


__all__ = ["IdentityHttpFetcher", "identity_path"]
