"""What the routes share, kept on ``app.state`` and handed to them as a dependency."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import HTTPConnection

from service.api.limits import RateLimiter
from service.metrics import ServiceMetrics
from service.model_registry import ModelRegistry
from service.settings import ServiceSettings


class StreamHub:
    """Fans stream activity out to watchers (the live page); a slow watcher loses messages."""

    def __init__(self, queue_size: int = 256) -> None:
        self.queue_size = queue_size
        self._watchers: set[asyncio.Queue[dict[str, Any]]] = set()
        self._ids = itertools.count(1)

    def new_stream_id(self) -> int:
        return next(self._ids)

    @property
    def watched(self) -> bool:
        return bool(self._watchers)

    @property
    def watchers(self) -> int:
        return len(self._watchers)

    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(self.queue_size)
        self._watchers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        self._watchers.discard(queue)

    def publish(self, message: dict[str, Any]) -> None:
        for queue in self._watchers:
            if queue.full():
                continue  # a debugging view may skip frames; client streams never do
            queue.put_nowait(message)


@dataclass
class ServiceState:
    settings: ServiceSettings
    models: ModelRegistry
    metrics: ServiceMetrics
    limiter: RateLimiter
    hub: StreamHub = field(default_factory=StreamHub)
    open_streams: int = 0


def get_state(conn: HTTPConnection) -> ServiceState:
    state: ServiceState = conn.app.state.masksem
    return state
