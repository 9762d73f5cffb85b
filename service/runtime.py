"""A model being served and its atomic replacement (hot reload) while requests run.

A request takes the current :class:`ModelRuntime` with ``async with slot.use()`` and keeps it
to the end, so its preprocessing (from the card) and its inference always match. A reload
loads and warms the new model on a worker thread, swaps it in (one assignment on the event
loop), and retires the old one once its last request has finished.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Hashable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from service.engine import EngineOptions, InferenceEngine, MicroBatcher
from service.metrics import ServiceMetrics
from skeleton.card import ModelCard

log = logging.getLogger(__name__)


@dataclass
class ModelRuntime:
    engine: InferenceEngine
    batcher: MicroBatcher
    users: int = 0
    retired: bool = False
    idle: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def card(self) -> ModelCard:
        return self.engine.card

    async def infer(
        self, windows: NDArray[np.floating], *, source: Hashable = None
    ) -> NDArray[np.float32]:
        """Logits for ``windows``; ``source`` (a stream, a client) gets its fair share."""
        return await self.batcher.infer(windows, source=source)


@dataclass(frozen=True)
class BatchingOptions:
    max_batch: int = 8
    max_wait_s: float = 0.002
    chunk: int | None = None  # windows of one source per batch (None: max_batch)


def load_engine(path: Path, options: EngineOptions) -> InferenceEngine:
    """Open, check and warm up a model (blocking: call it on a worker thread)."""
    engine = InferenceEngine(path, options)
    engine.warm_up()
    return engine


class ModelSlot:
    """Holds one served model; ``reload`` swaps it with no request failing.

    ``name`` is what clients call the model (its file stem at start-up); it stays the same
    when a reload swaps in another file, so metrics and routes keep their name.
    """

    def __init__(
        self,
        path: Path,
        engine_options: EngineOptions,
        batching: BatchingOptions,
        metrics: ServiceMetrics,
        *,
        name: str | None = None,
        drain_timeout_s: float = 30.0,
    ) -> None:
        self.path = Path(path)
        self.name = name if name is not None else self.path.stem
        self.engine_options, self.batching, self.metrics = engine_options, batching, metrics
        self.drain_timeout_s = drain_timeout_s
        self._current: ModelRuntime | None = None
        self._reload_lock = asyncio.Lock()
        self.generation = 0

    @property
    def ready(self) -> bool:
        return self._current is not None and self._current.engine.ready

    @property
    def current(self) -> ModelRuntime:
        if self._current is None:
            raise RuntimeError(f"the model {self.name!r} is not loaded yet")
        return self._current

    async def start(self) -> None:
        """Load the configured model (at start-up)."""
        await self.reload()

    @asynccontextmanager
    async def use(self) -> AsyncIterator[ModelRuntime]:
        runtime = self.current
        runtime.users += 1
        try:
            yield runtime
        finally:
            runtime.users -= 1
            if runtime.retired and runtime.users == 0:
                runtime.idle.set()

    async def reload(self, path: Path | None = None) -> ModelRuntime:
        """Load ``path`` (default: the current model file again), then swap it in atomically.

        Raises whatever loading raised (CardError, FileNotFoundError, ...) and then keeps
        serving the old model.
        """
        async with self._reload_lock:
            target = Path(path) if path is not None else self.path
            try:
                engine = await asyncio.to_thread(load_engine, target, self.engine_options)
            except Exception:
                self.metrics.reloads.labels("failed", self.name).inc()
                raise
            batcher = MicroBatcher(
                engine,
                max_batch=self.batching.max_batch,
                max_wait_s=self.batching.max_wait_s,
                chunk=self.batching.chunk,
                observer=self.metrics.batch_observer(self.name),
            )
            batcher.start()
            new = ModelRuntime(engine, batcher)
            old, self._current, self.path = self._current, new, target
            self.generation += 1
            self.metrics.set_model(self.name, engine)
            self.metrics.reloads.labels("ok", self.name).inc()
            log.info(
                "serving %s as %r: %s %s (%s) on %s",
                target.name,
                self.name,
                engine.card.name,
                engine.card.version,
                engine.card.variant,
                engine.provider,
            )
            if old is not None:
                await self._retire(old)
            return new

    async def _retire(self, old: ModelRuntime) -> None:
        old.retired = True
        if old.users == 0:
            old.idle.set()
        try:
            await asyncio.wait_for(old.idle.wait(), self.drain_timeout_s)
        except TimeoutError:
            log.warning("the replaced model still had %d requests after the drain", old.users)
        await old.batcher.close()

    async def close(self) -> None:
        if self._current is not None:
            await self._current.batcher.close()
            self._current = None
