"""What every router of one app shares: the node, a chain reader, metrics, a logger,
and the pool for CPU-heavy work.

Built once by :func:`node.api.app.create_app` and handed to each router factory, so
no router reaches for module-level state. Identity routers (DIDs, issuers,
credential types, status lists, verify) are factories of the same shape:
``Callable[[ApiContext], APIRouter]``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from fastapi import APIRouter

from node.api.metrics import ApiMetrics
from node.api.offload import CpuPool
from node.api.reader import ChainReader
from node.interfaces import NodeView


@dataclass(frozen=True, slots=True)
class ApiContext:
    node: NodeView
    reader: ChainReader
    metrics: ApiMetrics
    logger: logging.Logger
    # CPU-heavy work (verify, proofs) goes here, off the event loop: ``await ctx.cpu.run(fn)``.
    cpu: CpuPool = field(default_factory=CpuPool)


RouterFactory = Callable[[ApiContext], APIRouter]

__all__ = ["ApiContext", "RouterFactory"]
