"""The ONNX model at run time: a checked onnxruntime session, warm-up, and micro-batching.

:class:`InferenceEngine` is synchronous and thread-safe (the ROS 2 node calls ``run`` directly);
:class:`MicroBatcher` gathers the windows of concurrent requests into one ``run`` on a worker
thread, so inference never blocks the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from collections.abc import Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

from skeleton.card import (
    INPUT_NAME,
    METADATA_KEY,
    OUTPUT_NAME,
    CardError,
    ModelCard,
    load_card,
)
from skeleton.layouts import get_layout

_ORT_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}


class WindowShapeError(ValueError):
    """Windows whose shape does not fit the model's input."""


class ModelLoadError(ValueError):
    """A model file onnxruntime cannot read (truncated, not ONNX, unsupported operators)."""


@dataclass(frozen=True)
class EngineOptions:
    providers: tuple[str, ...] = ("CPUExecutionProvider",)
    intra_op_threads: int = 0  # 0: onnxruntime's default (one per physical core)
    warmup_runs: int = 2
    warmup_batch: int = 8


def card_from_metadata(session: ort.InferenceSession, source: str) -> dict[str, Any]:
    meta = session.get_modelmeta().custom_metadata_map
    if METADATA_KEY not in meta:
        raise CardError(f"{source}: the ONNX metadata has no {METADATA_KEY!r} entry")
    try:
        raw = json.loads(meta[METADATA_KEY])
    except json.JSONDecodeError as err:
        raise CardError(f"{source}: the ONNX metadata card is not valid JSON: {err}") from err
    if not isinstance(raw, dict):
        raise CardError(f"{source}: the ONNX metadata card must be a JSON object")
    return raw


class InferenceEngine:
    """An onnxruntime session whose card (beside the file and in its metadata) checks out."""

    def __init__(self, onnx_path: Path, options: EngineOptions | None = None) -> None:
        self.options = options or EngineOptions()
        self.path = Path(onnx_path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: no such model file")
        self.card: ModelCard = load_card(self.path)
        session_options = ort.SessionOptions()
        session_options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if self.options.intra_op_threads > 0:
            session_options.intra_op_num_threads = self.options.intra_op_threads
        available = set(ort.get_available_providers())
        wanted = [p for p in self.options.providers if p in available]
        if not wanted:
            raise RuntimeError(
                f"none of the execution providers {list(self.options.providers)} is available "
                f"(this onnxruntime has {sorted(available)})"
            )
        try:
            self.session = ort.InferenceSession(str(self.path), session_options, providers=wanted)
        except Exception as err:  # onnxruntime's own exception types derive from Exception only
            raise ModelLoadError(f"{self.path}: onnxruntime cannot load it: {err}") from err
        self._check_against_card()
        self.providers: tuple[str, ...] = tuple(self.session.get_providers())
        inp = self.session.get_inputs()[0]
        self.input_dtype = _ORT_TYPES[inp.type]
        self.warmup_seconds: float | None = None

    @property
    def provider(self) -> str:
        """The execution provider actually running the graph (the first one in use)."""
        return self.providers[0]

    @property
    def ready(self) -> bool:
        return self.warmup_seconds is not None

    def _check_against_card(self) -> None:
        source = str(self.path)
        # both read through ModelCard, so fields added since the file was written (with their
        # defaults) compare equal; the metadata copy carries no hash of the file it sits in
        raw = {**card_from_metadata(self.session, source), "onnx_sha256": self.card.onnx_sha256}
        meta = ModelCard.from_dict(raw, source=f"{source} (metadata)").to_dict()
        side = self.card.to_dict()
        differ = sorted(k for k in side.keys() | meta.keys() if side.get(k) != meta.get(k))
        if differ:
            raise CardError(
                f"{source}: the card beside the model and the one in its metadata differ in "
                f"{', '.join(differ)}"
            )
        inputs = {i.name: i for i in self.session.get_inputs()}
        outputs = {o.name for o in self.session.get_outputs()}
        if INPUT_NAME not in inputs or OUTPUT_NAME not in outputs:
            raise CardError(
                f"{source}: the graph needs input {INPUT_NAME!r} and output {OUTPUT_NAME!r}, "
                f"has {sorted(inputs)} -> {sorted(outputs)}"
            )
        shape = inputs[INPUT_NAME].shape
        expected = self.card.input_shape
        for axis in (2, 3, 4):
            if isinstance(shape[axis], int) and shape[axis] != expected[axis]:
                raise CardError(
                    f"{source}: input axis {axis} is {shape[axis]} in the graph but "
                    f"{expected[axis]} by the card"
                )
        if inputs[INPUT_NAME].type not in _ORT_TYPES:
            raise CardError(f"{source}: unsupported input type {inputs[INPUT_NAME].type}")

    def check_windows(self, windows: NDArray[np.floating]) -> NDArray[np.float32]:
        x = np.asarray(windows)
        _, persons, frames, joints, _ = self.card.input_shape
        if (
            x.ndim != 5
            or x.shape[2:] != (frames, joints, 3)
            or not 1 <= x.shape[1] <= persons
            or x.shape[0] < 1
        ):
            raise WindowShapeError(
                f"windows must have shape (N, 1..{persons}, {frames}, {joints}, 3) for this "
                f"model ({get_layout(self.card.layout).name}), got {x.shape}"
            )
        return np.ascontiguousarray(x, dtype=np.float32)

    def run(self, windows: NDArray[np.floating]) -> NDArray[np.float32]:
        """Logits ``(N, classes)`` for preprocessed windows ``(N, persons, frames, V, 3)``.

        With a single-person graph path, windows whose other persons are all zeros take it.
        """
        x = self.check_windows(windows)
        persons = self.card.window.persons
        if x.shape[1] < persons and not self.card.single_person_input:
            pad = np.zeros((x.shape[0], persons - x.shape[1], *x.shape[2:]), dtype=np.float32)
            x = np.concatenate([x, pad], axis=1)
        if not self.card.single_person_input or x.shape[1] == 1:
            return self._run(x)
        solo = ~x[:, 1:].any(axis=(1, 2, 3, 4))
        if not solo.any():
            return self._run(x)
        if solo.all():
            return self._run(x[:, :1])
        out = np.empty((x.shape[0], len(self.card.labels)), dtype=np.float32)
        out[solo] = self._run(x[solo, :1])
        out[~solo] = self._run(x[~solo])
        return out

    def _run(self, x: NDArray[np.float32]) -> NDArray[np.float32]:
        feed = {INPUT_NAME: x.astype(self.input_dtype, copy=False)}
        (logits,) = self.session.run([OUTPUT_NAME], feed)
        return np.asarray(logits, dtype=np.float32)

    def warm_up(self) -> float:
        """Run random windows through every path (single person, full, a full batch)."""
        _, persons, frames, joints, _ = self.card.input_shape
        rng = np.random.default_rng(0)
        start = time.perf_counter()
        for _ in range(max(1, self.options.warmup_runs)):
            for n, p in {(1, 1), (1, persons), (self.options.warmup_batch, persons)}:
                self.run(rng.normal(size=(n, p, frames, joints, 3)).astype(np.float32))
        self.warmup_seconds = time.perf_counter() - start
        return self.warmup_seconds


class BatchObserver(Protocol):
    def observe_batch(self, size: int, seconds: float, queue_waits: Sequence[float]) -> None: ...


class BatcherClosed(RuntimeError):
    """The batcher was closed (its model was replaced); retry on the current one."""


@dataclass
class _Pending:
    windows: NDArray[np.float32]
    future: asyncio.Future[NDArray[np.float32]]
    queued_at: float


class MicroBatcher:
    """Gathers concurrent windows into batches of at most ``max_batch`` rows, waiting at most
    ``max_wait_s`` after the first, and runs each batch on one worker thread.

    Requests are split into chunks of at most ``chunk`` windows and queued per ``source`` (a
    stream, a client address); a batch takes at most one chunk from each waiting source, in
    turn. So a client with a large backlog gets its share and no more, and whoever arrives
    next waits for at most one batch holding ``chunk`` windows of that client.
    """

    def __init__(
        self,
        engine: InferenceEngine,
        *,
        max_batch: int = 8,
        max_wait_s: float = 0.002,
        chunk: int | None = None,
        observer: BatchObserver | None = None,
    ) -> None:
        if max_batch < 1 or max_wait_s < 0 or (chunk is not None and chunk < 1):
            raise ValueError("max_batch and chunk must be >= 1 and max_wait_s >= 0")
        self.engine = engine
        self.max_batch, self.max_wait_s = max_batch, max_wait_s
        self.chunk = min(chunk or max_batch, max_batch)
        self.observer = observer
        self._sources: dict[Hashable, deque[_Pending]] = {}
        self._arrived = asyncio.Event()
        self._outstanding = 0
        self._drained = asyncio.Event()
        self._drained.set()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="masksem-infer")
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._serve())

    async def infer(
        self, windows: NDArray[np.floating], *, source: Hashable = None
    ) -> NDArray[np.float32]:
        """Logits for ``windows`` (N, persons, frames, V, 3), run in some batches; a request
        with no ``source`` is a source of its own."""
        if self._closed:
            raise BatcherClosed("this model was replaced")
        x = self.engine.check_windows(windows)
        loop = asyncio.get_running_loop()
        queue = self._sources.setdefault(object() if source is None else source, deque())
        futures = []
        for first in range(0, len(x), self.chunk):
            pending = _Pending(x[first : first + self.chunk], loop.create_future(), loop.time())
            queue.append(pending)
            futures.append(pending.future)
        self._outstanding += len(futures)
        self._drained.clear()
        self._arrived.set()
        parts = await asyncio.gather(*futures)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    async def close(self) -> None:
        """Finish what is queued, then stop the worker."""
        self._closed = True
        if self._task is not None:
            await self._drained.wait()
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._executor.shutdown(wait=True)

    def _take(self, batch: list[_Pending], rows: int, served: set[Hashable]) -> int:
        """Add one chunk of each waiting source not ``served`` yet, in turn, while they fit;
        return the rows."""
        for source in list(self._sources):
            queue = self._sources[source]
            if source in served or (batch and rows + len(queue[0].windows) > self.max_batch):
                continue
            item = queue.popleft()
            served.add(source)
            batch.append(item)
            rows += len(item.windows)
            # served: to the back of the line (and forgotten while it has nothing waiting)
            del self._sources[source]
            if queue:
                self._sources[source] = queue
            if rows >= self.max_batch:
                break
        return rows

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self._sources:
                self._arrived.clear()
                await self._arrived.wait()
            batch: list[_Pending] = []
            served: set[Hashable] = set()
            rows = self._take(batch, 0, served)
            deadline = loop.time() + self.max_wait_s
            while rows < self.max_batch:
                if not self._sources.keys() - served:
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        break
                    self._arrived.clear()
                    try:
                        await asyncio.wait_for(self._arrived.wait(), remaining)
                    except TimeoutError:
                        break
                    continue
                before = rows
                rows = self._take(batch, rows, served)
                if rows == before:
                    break  # what waits does not fit in this batch
            await self._run_batch(loop, batch)

    async def _run_batch(self, loop: asyncio.AbstractEventLoop, batch: list[_Pending]) -> None:
        started = loop.time()
        waits = [started - p.queued_at for p in batch]
        x = np.concatenate([p.windows for p in batch]) if len(batch) > 1 else batch[0].windows
        t0 = time.perf_counter()
        try:
            logits = await loop.run_in_executor(self._executor, self.engine.run, x)
        except Exception as err:  # noqa: BLE001 - handed to every waiter of the batch
            for p in batch:
                if not p.future.done():
                    p.future.set_exception(err)
        else:
            seconds = time.perf_counter() - t0
            if self.observer is not None:
                self.observer.observe_batch(len(x), seconds, waits)
            offset = 0
            for p in batch:
                n = len(p.windows)
                if not p.future.done():
                    p.future.set_result(logits[offset : offset + n])
                offset += n
        finally:
            self._outstanding -= len(batch)
            if self._outstanding == 0:
                self._drained.set()
