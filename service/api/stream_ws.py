"""WebSocket ``/v1/stream``: the streaming protocol over :mod:`service.stream`.

Client -> server (JSON text): ``{"type": "config", "layout": "k4a32", ...StreamConfig}``, then
``{"type": "frame", "timestamp": s, "bodies": [{"id": 1, "joints": [[x, y, z], ...]}]}``;
``{"type": "stats"}`` asks for counters (answered after the frames sent before it);
``{"type": "watch"}`` mirrors every stream's skeletons and predictions to this connection (the
live page). Server -> client: ``configured``,
``prediction``, ``evicted``, ``dropped`` (running totals, sent whenever a frame was dropped),
``stats``, ``model_changed``, ``error`` (the connection stays open). A watcher gets
``watching``, then every stream's ``skeleton``, ``prediction``, ``evicted`` and
``stream_closed`` messages, each tagged with the ``stream`` it comes from.

A reader task takes messages off the socket into a bounded queue (a full queue drops the frame,
counted); a processor task runs them through the :class:`StreamCore`, awaiting inference.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import numpy as np
from fastapi import APIRouter, WebSocket
from pydantic import ValidationError
from starlette.websockets import WebSocketDisconnect, WebSocketState

from service.api.errors import describe_validation
from service.api.schemas import (
    ClientMessage,
    ConfigMessage,
    FrameMessage,
    ShapeError,
    StatsMessage,
    WatchMessage,
    joints_array,
)
from service.api.security import key_is_valid
from service.api.state import ServiceState, get_state
from service.stream import (
    DROP_REASONS,
    Eviction,
    Frame,
    FrameDropped,
    Prediction,
    StreamConfig,
    StreamCore,
    StreamError,
    StreamStats,
)
from skeleton.card import ModelCard
from skeleton.layouts import LayoutError, can_map, convert, get_layout

log = logging.getLogger(__name__)
router = APIRouter()

_WATCH_FPS = 15.0  # skeletons mirrored to watchers per stream and second


def model_brief(card: ModelCard) -> dict[str, Any]:
    return {
        "name": card.name,
        "version": card.version,
        "variant": card.variant,
        "layout": card.layout,
        "labels": list(card.labels),
    }


def event_message(event: Prediction | Eviction, stats: StreamStats) -> dict[str, Any]:
    if isinstance(event, Prediction):
        return {
            "type": "prediction",
            "body": event.body,
            "label": event.label,
            "probability": event.probability,
            "top_k": [{"label": lab, "probability": p} for lab, p in event.top_k],
            "raw_label": event.raw_label,
            "changed": event.changed,
            "partner": event.partner,
            "window": {"start": event.start, "end": event.end, "frames": event.frames},
            "frames_dropped": stats.frames_dropped,
        }
    return {
        "type": "evicted",
        "body": event.body,
        "last_seen": event.last_seen,
        "timestamp": event.timestamp,
    }


class StreamConnection:
    """One accepted WebSocket and its stream state."""

    def __init__(self, ws: WebSocket, state: ServiceState) -> None:
        self.ws, self.state = ws, state
        self.stats = StreamStats()
        self.core: StreamCore | None = None
        self.layout: str | None = None  # of the last config read (for parsing frames)
        self.queue: asyncio.Queue[StreamConfig | Frame | StatsMessage] = asyncio.Queue(
            state.settings.stream_queue_frames
        )
        self.stream_id = state.hub.new_stream_id()
        self._send_lock = asyncio.Lock()
        self._reported_drops = 0
        self._counted: dict[str, int] = dict.fromkeys(DROP_REASONS, 0)
        self._bodies = 0
        self._last_published = -float("inf")
        self._watcher: asyncio.Task[None] | None = None

    async def send(self, message: dict[str, Any]) -> None:
        if self.ws.application_state != WebSocketState.CONNECTED:
            return
        async with self._send_lock:
            await self.ws.send_json(message)

    async def error(self, message: str, code: str, **extra: Any) -> None:
        await self.send({"type": "error", "code": code, "message": message, **extra})

    async def run(self) -> None:
        processor = asyncio.create_task(self._process())
        try:
            await self._read()
        finally:
            for task in (processor, self._watcher):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
            self.state.metrics.active_bodies.dec(self._bodies)
            if self.state.hub.watched:
                self.state.hub.publish({"type": "stream_closed", "stream": self.stream_id})

    # -- reader -------------------------------------------------------------------------------
    async def _read(self) -> None:
        while True:
            raw = await self.ws.receive()
            if raw["type"] == "websocket.disconnect":
                return
            text = raw.get("text")
            if text is None:
                await self.error("send JSON text messages, not binary", "bad_message")
                continue
            try:
                message = ClientMessage.validate_json(text)
            except ValidationError as err:
                errors = err.errors()
                if any(e["type"] == "json_invalid" for e in errors):
                    detail = errors[0].get("ctx", {}).get("error", "not JSON")
                    await self.error(f"malformed JSON: {detail}", "malformed_json")
                else:
                    await self.error(describe_validation(errors), "invalid_message")
                if '"frame"' in text:  # a frame we could not even parse: still counted
                    await self._count_invalid(parsed=False)
                continue
            if isinstance(message, ConfigMessage):
                await self._read_config(message)
            elif isinstance(message, FrameMessage):
                await self._read_frame(message)
            elif isinstance(message, StatsMessage):
                await self.queue.put(message)  # answered after the frames sent before it
            elif isinstance(message, WatchMessage):
                await self._start_watching()

    async def _read_config(self, message: ConfigMessage) -> None:
        config = StreamConfig(**message.model_dump(exclude={"type"}))
        card = self.state.slot.current.card
        if not can_map(config.layout, card.layout):
            await self.error(
                f"field 'layout': camera layout {config.layout!r} cannot be mapped to the "
                f"model's layout {card.layout!r}",
                "invalid_config",
            )
            return
        self.layout = config.layout
        await self.queue.put(config)  # control messages wait for room; frames never do

    async def _read_frame(self, message: FrameMessage) -> None:
        self.state.metrics.frames.inc()
        if self.layout is None:
            await self._count_invalid()
            await self.error(
                'no stream configured: send {"type": "config", "layout": ...} first',
                "not_configured",
                timestamp=message.timestamp,
            )
            return
        joints = get_layout(self.layout).num_joints
        bodies: dict[Any, np.ndarray] = {}
        try:
            for i, body in enumerate(message.bodies):
                where = f"frame at {message.timestamp:g} s, bodies[{i}] (id {body.id!r})"
                if body.id in bodies:
                    raise ShapeError(f"{where}: body id {body.id!r} appears twice")
                bodies[body.id] = joints_array(body.joints, joints=joints, where=where)
        except ShapeError as err:
            await self._count_invalid()
            await self.error(str(err), "invalid_frame", timestamp=message.timestamp)
            return
        frame = Frame(message.timestamp, bodies)
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:
            self.stats.frames_received += 1
            self.stats.dropped["queue_full"] += 1
            self._sync_metrics()

    async def _count_invalid(self, *, parsed: bool = True) -> None:
        if not parsed:
            self.state.metrics.frames.inc()
        self.stats.frames_received += 1
        self.stats.dropped["invalid"] += 1
        await self._report_drops()

    # -- processor ----------------------------------------------------------------------------
    async def _process(self) -> None:
        while True:
            item = await self.queue.get()
            try:
                if isinstance(item, StreamConfig):
                    await self._configure(item)
                elif isinstance(item, StatsMessage):
                    await self.send({"type": "stats", "stream": self.stream_id, **self._stats()})
                else:
                    await self._process_frame(item)
            except WebSocketDisconnect:
                return
            except Exception as err:  # noqa: BLE001 - one failed frame must not end the stream
                if self.ws.application_state != WebSocketState.CONNECTED:
                    return
                log.exception("stream %d: %s", self.stream_id, err)
                await self.error(f"internal error: {err}", "internal")
            await self._report_drops()

    async def _configure(self, config: StreamConfig) -> None:
        card = self.state.slot.current.card
        try:
            self.core = StreamCore(config, card, stats=self.stats)
        except StreamError as err:
            self.core = None
            await self.error(str(err), "invalid_config")
            return
        self._set_bodies(0)
        await self.send(
            {
                "type": "configured",
                "stream": self.stream_id,
                "config": config.model_dump(),
                "window_s": self.core.window_s,
                "model": model_brief(card),
            }
        )

    async def _process_frame(self, frame: Frame) -> None:
        core = self.core
        if core is None:
            self.stats.frames_received += 1
            self.stats.dropped["invalid"] += 1
            await self.error("the stream's config was refused; send a valid one", "not_configured")
            return
        events: list[Prediction | Eviction] = []
        async with self.state.slot.use() as runtime:
            if runtime.card is not core.card:
                try:
                    core.set_card(runtime.card)
                except StreamError as err:
                    self.core = None
                    await self.error(str(err), "model_changed")
                    return
                await self.send({"type": "model_changed", "model": model_brief(runtime.card)})
            try:
                update = core.add_frame(frame)
            except StreamError as err:
                await self.error(str(err), "invalid_frame", timestamp=frame.timestamp)
                self._sync_metrics()
                return
            # drops are reported as running totals by _report_drops after every message
            events.extend(e for e in update.events if not isinstance(e, FrameDropped))
            if update.due:
                logits = await runtime.infer(np.stack([r.window for r in update.due]))
                for request, row in zip(update.due, logits, strict=True):
                    for prediction in core.complete(request, row):
                        events.append(prediction)
        self._set_bodies(len(core.bodies))
        self._sync_metrics()
        for event in events:
            message = event_message(event, self.stats)
            await self.send(message)
            if self.state.hub.watched:
                self.state.hub.publish({**message, "stream": self.stream_id})
        predictions = sum(isinstance(e, Prediction) for e in events)
        if predictions:
            self.state.metrics.predictions.labels("websocket").inc(predictions)
        self._publish_skeleton(frame, core)

    # -- accounting ---------------------------------------------------------------------------
    def _stats(self) -> dict[str, Any]:
        return {**self.stats.as_dict(), "bodies": self.core.bodies if self.core else []}

    def _set_bodies(self, count: int) -> None:
        self.state.metrics.active_bodies.inc(count - self._bodies)
        self._bodies = count

    def _sync_metrics(self) -> None:
        for reason, total in self.stats.dropped.items():
            if total > self._counted[reason]:
                self.state.metrics.frames_dropped.labels(reason).inc(total - self._counted[reason])
                self._counted[reason] = total

    async def _report_drops(self) -> None:
        self._sync_metrics()
        total = self.stats.frames_dropped
        if total > self._reported_drops:
            new = total - self._reported_drops
            self._reported_drops = total
            await self.send(
                {
                    "type": "dropped",
                    "new": new,
                    "frames_dropped": total,
                    "dropped_by_reason": dict(self.stats.dropped),
                }
            )

    # -- watching -----------------------------------------------------------------------------
    async def _start_watching(self) -> None:
        if self._watcher is not None:
            return
        card = self.state.slot.current.card
        layout = get_layout(card.layout)
        await self.send(
            {
                "type": "watching",
                "model": model_brief(card),
                "joints": list(layout.joints),
                "parents": list(layout.parents),
            }
        )
        queue = self.state.hub.subscribe()

        async def forward() -> None:
            try:
                while True:
                    await self.send(await queue.get())
            finally:
                self.state.hub.unsubscribe(queue)

        self._watcher = asyncio.create_task(forward())

    def _publish_skeleton(self, frame: Frame, core: StreamCore) -> None:
        hub = self.state.hub
        if not hub.watched or not frame.bodies:
            return
        if frame.timestamp - self._last_published < 1.0 / _WATCH_FPS:
            return
        self._last_published = frame.timestamp
        layout, scale = core.config.layout, core.config.units_scale
        try:
            bodies = [
                {
                    "id": body_id,
                    "joints": np.round(
                        convert(np.asarray(joints), layout, core.card.layout, scale=scale), 4
                    ).tolist(),
                }
                for body_id, joints in frame.bodies.items()
            ]
        except LayoutError:
            return
        hub.publish(
            {
                "type": "skeleton",
                "stream": self.stream_id,
                "timestamp": frame.timestamp,
                "layout": core.card.layout,
                "bodies": bodies,
            }
        )


@router.websocket("/v1/stream")
async def stream(ws: WebSocket) -> None:
    state: ServiceState = get_state(ws)
    await ws.accept()
    if not key_is_valid(ws, state):
        await ws.close(code=1008, reason="missing or wrong API key")
        return
    if state.open_streams >= state.settings.max_streams:
        await ws.close(code=1013, reason=f"{state.settings.max_streams} streams open; retry later")
        return
    state.open_streams += 1
    state.metrics.open_streams.inc()
    try:
        await StreamConnection(ws, state).run()
    finally:
        state.open_streams -= 1
        state.metrics.open_streams.dec()
