"""The REST API's connection, rate and worker limits as one configurable value.

:class:`ApiLimits` holds every knob with its default from :mod:`node.api.constants`;
:meth:`ApiLimits.from_config` reads ``node.json`` keys overridden by ``IMI_*``
environment variables (the same names, upper case), and refuses values out of range.

=============================  ==================================  ==========================
node.json                      variable                            meaning
=============================  ==================================  ==========================
``api_header_timeout_s``       ``IMI_API_HEADER_TIMEOUT_S``         request line + headers
``api_body_timeout_s``         ``IMI_API_BODY_TIMEOUT_S``           the body, once the head is in
``api_keep_alive_s``           ``IMI_API_KEEP_ALIVE_S``             idle keep-alive connection
``api_connections_max``        ``IMI_API_CONNECTIONS_MAX``          open connections
``api_client_connections_max`` ``IMI_API_CLIENT_CONNECTIONS_MAX``   open connections per client
``api_client_rate_per_s``      ``IMI_API_CLIENT_RATE_PER_S``        requests/s per client (0: off)
``api_client_burst``           ``IMI_API_CLIENT_BURST``             burst per client
``api_cpu_workers``            ``IMI_API_CPU_WORKERS``              threads for verify / proofs
``api_cpu_queue_max``          ``IMI_API_CPU_QUEUE_MAX``            waiting beyond the workers
=============================  ==================================  ==========================
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from node.api.constants import (
    API_BODY_TIMEOUT_S_DEFAULT,
    API_CLIENT_BURST_DEFAULT,
    API_CLIENT_CONNECTIONS_MAX_DEFAULT,
    API_CLIENT_RATE_PER_S_DEFAULT,
    API_CONNECTIONS_MAX_DEFAULT,
    API_CPU_QUEUE_MAX_DEFAULT,
    API_CPU_WORKERS_DEFAULT,
    API_CPU_WORKERS_MAX,
    API_HEADER_TIMEOUT_S_DEFAULT,
    API_KEEP_ALIVE_S_DEFAULT,
    API_TIMEOUT_S_MAX,
)

_CONNECTIONS_CEILING = 1_000_000  # sanity bound on configured connection counts


@dataclass(frozen=True, slots=True)
class ApiLimits:
    """Every limit of one API server. Timeouts in seconds."""

    header_timeout_s: float = API_HEADER_TIMEOUT_S_DEFAULT
    body_timeout_s: float = API_BODY_TIMEOUT_S_DEFAULT
    keep_alive_s: float = API_KEEP_ALIVE_S_DEFAULT
    connections_max: int = API_CONNECTIONS_MAX_DEFAULT
    client_connections_max: int = API_CLIENT_CONNECTIONS_MAX_DEFAULT
    client_rate_per_s: float = API_CLIENT_RATE_PER_S_DEFAULT
    client_burst: int = API_CLIENT_BURST_DEFAULT
    cpu_workers: int = API_CPU_WORKERS_DEFAULT
    cpu_queue_max: int = API_CPU_QUEUE_MAX_DEFAULT

    def __post_init__(self) -> None:
        for name in ("header_timeout_s", "body_timeout_s", "keep_alive_s"):
            value = getattr(self, name)
            if not 0 < value <= API_TIMEOUT_S_MAX:
                raise ValueError(f"api_{name} must be within (0, {API_TIMEOUT_S_MAX:g}]")
        if not 1 <= self.client_connections_max <= self.connections_max <= _CONNECTIONS_CEILING:
            raise ValueError("need 1 <= api_client_connections_max <= api_connections_max")
        if self.client_rate_per_s < 0 or (self.client_rate_per_s > 0 and self.client_burst < 1):
            raise ValueError("api_client_rate_per_s must be >= 0 (0: off) and api_client_burst >= 1")
        if not 1 <= self.cpu_workers <= API_CPU_WORKERS_MAX or self.cpu_queue_max < 0:
            raise ValueError(f"api_cpu_workers must be within 1..{API_CPU_WORKERS_MAX}, api_cpu_queue_max >= 0")

    @classmethod
    def from_config(cls, raw: Mapping[str, Any], env: Mapping[str, str]) -> ApiLimits:
        """From ``node.json`` (``raw``) keys ``api_<field>``, each overridden by the
        variable ``IMI_API_<FIELD>``. Raises ValueError (or TypeError) on a bad value."""
        values: dict[str, Any] = {}
        for field in fields(cls):
            key = f"api_{field.name}"
            text = env.get(f"IMI_{key.upper()}", raw.get(key))
            if text is None:
                continue
            kind = float if isinstance(field.default, float) else int
            if isinstance(text, bool) or (kind is int and isinstance(text, float)):
                raise ValueError(f"{key} must be a number{' (whole)' if kind is int else ''}")
            values[field.name] = kind(text)
        return cls(**values)


__all__ = ["ApiLimits"]
