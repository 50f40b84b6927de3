"""What every router of one app shares: the node, a chain reader, metrics, a logger.

Built once by :func:`node.api.app.create_app` and handed to each router factory, so
no router reaches for module-level state. Identity routers (DIDs, issuers,
credential types, status lists, verify) are factories of the same shape:
``Callable[[ApiContext], APIRouter]``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import APIRouter

from node.api.metrics import ApiMetrics
from node.api.reader import ChainReader
from node.interfaces import NodeView


@dataclass(frozen=True, slots=True)
class ApiContext:
    node: NodeView
    reader: ChainReader
    metrics: ApiMetrics
    logger: logging.Logger


RouterFactory = Callable[[ApiContext], APIRouter]

__all__ = ["ApiContext", "RouterFactory"]
