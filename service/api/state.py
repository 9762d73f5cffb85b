"""What the routes share, kept on ``app.state`` and handed to them as a dependency."""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import HTTPConnection

from service.api.limits import RateLimiter
from service.metrics import ServiceMetrics
from service.model_registry import ModelRegistry
from service.settings import ServiceSettings

#: Messages a watcher never skips: what happened, rather than what is drawn right now.
KEPT = frozenset({"action_started", "action_ended", "evicted", "stream_closed"})


class WatcherInbox:
    """What one watcher has not read yet. Skeletons and predictions: at most ``size``, a new
    one skipped while it is full (a debugging view may skip frames). Action events, evictions
    and closed streams: kept, up to ``kept_size`` (beyond that the oldest goes, counted)."""

    def __init__(self, size: int, kept_size: int = 4096) -> None:
        self.size, self.kept_size = size, kept_size
        self._frames: deque[dict[str, Any]] = deque()
        self._kept: deque[dict[str, Any]] = deque()
        self._order: deque[bool] = deque()  # True: the next message to send is a kept one
        self._ready = asyncio.Event()
        self.skipped = 0

    def put(self, message: dict[str, Any]) -> None:
        kept = message.get("type") in KEPT
        if kept:
            if len(self._kept) >= self.kept_size:
                self._order.remove(True)  # the oldest kept message goes
                self._kept.popleft()
                self.skipped += 1
            self._kept.append(message)
        elif len(self._frames) >= self.size:
            self.skipped += 1
            return
        else:
            self._frames.append(message)
        self._order.append(kept)
        self._ready.set()

    async def get(self) -> dict[str, Any]:
        while not self._order:
            self._ready.clear()
            await self._ready.wait()
        kept = self._order.popleft()
        return self._kept.popleft() if kept else self._frames.popleft()

    def __len__(self) -> int:
        return len(self._order)


class StreamHub:
    """Fans stream activity out to watchers (the live page); a slow watcher skips skeletons
    and predictions, never action events (see :class:`WatcherInbox`)."""

    def __init__(self, queue_size: int = 256) -> None:
        self.queue_size = queue_size
        self._watchers: set[WatcherInbox] = set()
        self._ids = itertools.count(1)

    def new_stream_id(self) -> int:
        return next(self._ids)

    @property
    def watched(self) -> bool:
        return bool(self._watchers)

    @property
    def watchers(self) -> int:
        return len(self._watchers)

    def subscribe(self) -> WatcherInbox:
        inbox = WatcherInbox(self.queue_size)
        self._watchers.add(inbox)
        return inbox

    def unsubscribe(self, inbox: WatcherInbox) -> None:
        self._watchers.discard(inbox)

    def publish(self, message: dict[str, Any]) -> None:
        for inbox in self._watchers:
            inbox.put(message)  # client streams never wait for a watcher


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


async def state_dependency(conn: HTTPConnection) -> ServiceState:
    """``get_state`` as a route dependency. Async on purpose: FastAPI runs a plain ``def``
    dependency on a worker thread, a thread hop per request that a flood of requests turns
    into the event loop's main cost (seen in a profile of the random_key_flood pattern)."""
    return get_state(conn)
