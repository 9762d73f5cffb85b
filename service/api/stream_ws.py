"""WebSocket ``/v1/stream``: the streaming protocol over :mod:`service.stream`.

Client -> server (JSON text): ``{"type": "config", "layout": "k4a32", ...StreamConfig}`` (its
``models`` names the served models to run, default the default model; ``mode`` "events" sends
only action events), then
``{"type": "frame", "timestamp": s, "bodies": [{"id": 1, "joints": [[x, y, z], ...]}]}``;
``{"type": "stats"}`` asks for counters (answered after the frames sent before it);
``{"type": "watch"}`` mirrors every stream's skeletons and predictions to this connection (the
live page).

Server -> client: ``configured``, ``prediction`` (with its ``model``), ``action_started`` /
``action_ended`` (``model``, ``bodies``, ``label``, ``start``, ``end``, ``confidence``,
``timestamp``), ``evicted``, ``dropped`` (running totals, sent whenever a frame or a body was
dropped), ``clock_jump``, ``stats``, ``model_changed``, ``error`` (the connection stays open;
also sent the first time frames are dropped for their timestamp, and for a window the model
gave no finite answer for). A watcher gets ``watching``, then every stream's ``skeleton``,
``prediction``, action events, ``evicted`` and ``stream_closed`` messages, each tagged with
the ``stream`` it comes from (``watching`` has every served model's joints and parents under
``layouts``; a ``skeleton`` names its layout and the stream's ``models``).

A reader task takes messages off the socket into a bounded inbox (when it is full the oldest
waiting frame makes room, counted by the core); messages beyond ``stream_max_messages_per_s``
are dropped before they are parsed (frames counted as ``over_rate``). A processor task runs the
inbox through the :class:`StreamCore` (with the server's :class:`StreamBudget`); the windows
it cuts are inferred in the stream's own turn of the micro-batcher by tasks of their own, so the
next frame is read at once (``backlog: latest``: the core cuts no window for a body whose
previous one is still being answered, and one from its freshest frames once it is; ``backlog:
every`` awaits the answers before the next frame instead). A stream that sends no config within
``stream_config_timeout_s``, or nothing for ``stream_idle_timeout_s``, is closed (1008), so
idle sockets cannot hold the stream slots; watchers, which only listen, are capped at
``max_watchers`` instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
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
from service.model_registry import UnknownModelError
from service.stream import (
    BODY_DROP_REASONS,
    DROP_REASONS,
    ActionEnded,
    ActionStarted,
    ClockJump,
    Eviction,
    Frame,
    FrameDropped,
    Prediction,
    StreamBudget,
    StreamConfig,
    StreamCore,
    StreamError,
    StreamEvent,
    StreamStats,
    WindowFailed,
    WindowRequest,
)
from skeleton.card import ModelCard
from skeleton.layouts import LayoutError, can_map, convert, get_layout

log = logging.getLogger(__name__)
router = APIRouter()

_WATCHED = (Prediction, Eviction, ActionStarted, ActionEnded)  # mirrored to the live page
_WATCH_FPS = 15.0  # skeletons mirrored to watchers per stream and second
_CONTROL_LIMIT = 16  # config and stats messages waiting at once
# Frame drops the client is told about in words, once each, besides the running totals.
_EXPLAINED = {
    "too_early": "frames stamped implausibly far ahead of the stream's clock are dropped",
    "too_late": "frames older than the window are dropped",
    "duplicate": "frames repeating a timestamp already received are dropped",
}

InboxItem = StreamConfig | Frame | StatsMessage


class MessageBucket:
    """At most ``rate`` messages per second per stream, in bursts of up to one second's."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._tokens, self._at = rate, time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self._tokens = min(self.rate, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True

    def describe(self) -> str:
        return (
            f"more than {self.rate:g} messages per second on this stream: the ones beyond are "
            "dropped unread (frames counted as 'over_rate')"
        )


class StreamInbox:
    """What the reader hands the processor. Frames: at most ``capacity``, the oldest make room
    (the freshest frames are the ones worth classifying). Control messages (config, stats):
    never dropped, at most ``_CONTROL_LIMIT`` waiting."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: deque[InboxItem] = deque()
        self._frames = 0
        self._controls = 0
        self._ready = asyncio.Event()

    def put_frame(self, frame: Frame) -> Frame | None:
        """Queue ``frame``; return the frame that had to go for it, if any."""
        dropped = None
        if self._frames >= self.capacity:
            for i, item in enumerate(self._items):
                if isinstance(item, Frame):
                    dropped = item
                    del self._items[i]
                    self._frames -= 1
                    break
        self._items.append(frame)
        self._frames += 1
        self._ready.set()
        return dropped

    def put_control(self, item: StreamConfig | StatsMessage) -> bool:
        if self._controls >= _CONTROL_LIMIT:
            return False
        self._items.append(item)
        self._controls += 1
        self._ready.set()
        return True

    async def get(self) -> InboxItem:
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        item = self._items.popleft()
        if isinstance(item, Frame):
            self._frames -= 1
        else:
            self._controls -= 1
        return item


def model_brief(card: ModelCard) -> dict[str, Any]:
    return {
        "name": card.name,
        "version": card.version,
        "variant": card.variant,
        "layout": card.layout,
        "labels": list(card.labels),
        "none_label": card.none_label,
    }


def event_message(event: StreamEvent, stats: StreamStats) -> dict[str, Any]:
    if isinstance(event, ClockJump):
        return {
            "type": "clock_jump",
            "previous": event.previous,
            "timestamp": event.timestamp,
            "message": "the frames' clock jumped: every body was evicted, the stream goes on "
            "from the new time",
        }
    if isinstance(event, WindowFailed):
        return {
            "type": "error",
            "code": "non_finite_output",
            "message": f"body {event.body!r}: {event.detail}",
            "body": event.body,
            "window": {"start": event.start, "end": event.end},
        }
    if isinstance(event, FrameDropped):  # told once per reason, in words
        return {
            "type": "error",
            "code": event.reason,
            "message": f"{_EXPLAINED.get(event.reason, 'frames are dropped')}; this one: "
            f"{event.detail or event.reason} (counted in 'dropped' from now on)",
            "timestamp": event.timestamp,
        }
    if isinstance(event, ActionStarted | ActionEnded):
        return action_message(event)
    if isinstance(event, Prediction):
        return {
            "type": "prediction",
            "model": event.model,
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


def action_message(event: ActionStarted | ActionEnded) -> dict[str, Any]:
    """``action_started`` / ``action_ended``: the same fields as the core's event."""
    message: dict[str, Any] = {
        "type": "action_started" if isinstance(event, ActionStarted) else "action_ended",
        "model": event.model,
        "bodies": list(event.bodies),
        "label": event.label,
        "start": event.start,
    }
    if isinstance(event, ActionEnded):
        message["end"] = event.end
    message["confidence"] = event.confidence
    message["timestamp"] = event.timestamp
    return message


def pairing_warnings(config: StreamConfig, cards: dict[str, ModelCard]) -> list[str]:
    """What a config should know about its two-person models: with one body allowed there is
    no pair (each body is classified alone, the second person absent, as in training)."""
    return [
        f"model {name!r} classifies pairs of people; with max_bodies 1 every body is "
        "classified alone (second person absent)"
        for name, card in cards.items()
        if card.window.persons > 1 and config.max_bodies < 2
    ]


class StreamConnection:
    """One accepted WebSocket and its stream state."""

    def __init__(self, ws: WebSocket, state: ServiceState) -> None:
        self.ws, self.state = ws, state
        self.stats = StreamStats()
        self.core: StreamCore | None = None
        self.layout: str | None = None  # of the last config read (for parsing frames)
        self.inbox = StreamInbox(state.settings.stream_queue_frames)
        self.stream_id = state.hub.new_stream_id()
        self._send_lock = asyncio.Lock()
        self._reported_drops = (0, 0)
        self._counted: dict[str, int] = dict.fromkeys(DROP_REASONS, 0)
        self._counted_bodies: dict[str, int] = dict.fromkeys(BODY_DROP_REASONS, 0)
        self._explained: set[str] = set()
        rate = state.settings.stream_max_messages_per_s
        self._messages = MessageBucket(rate)
        self._bodies = 0
        self._last_published = -float("inf")
        self._watcher: asyncio.Task[None] | None = None
        self._answering: set[asyncio.Task[None]] = set()  # windows being inferred

    async def send(self, message: dict[str, Any]) -> None:
        if self.ws.application_state != WebSocketState.CONNECTED:
            return
        async with self._send_lock:
            await self.ws.send_json(message)

    async def error(self, message: str, code: str, **extra: Any) -> None:
        self.state.metrics.stream_errors.labels(code).inc()
        await self.send({"type": "error", "code": code, "message": message, **extra})

    async def run(self) -> None:
        processor = asyncio.create_task(self._process())
        try:
            await self._read()
        finally:
            for task in (processor, self._watcher, *self._answering):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
            self.state.metrics.active_bodies.dec(self._bodies)
            if self.state.hub.watched:
                self.state.hub.publish({"type": "stream_closed", "stream": self.stream_id})

    # -- reader -------------------------------------------------------------------------------
    def _timeout(self) -> tuple[float, str] | None:
        settings = self.state.settings
        if self._watcher is not None:
            return None  # a watcher only listens
        if self.layout is None:
            return settings.stream_config_timeout_s, "config_timeout"
        return settings.stream_idle_timeout_s, "idle_timeout"

    async def _read(self) -> None:
        while True:
            limit = self._timeout()
            try:
                raw = await asyncio.wait_for(self.ws.receive(), limit[0] if limit else None)
            except TimeoutError:
                assert limit is not None
                seconds, reason = limit
                what = "no config" if reason == "config_timeout" else "no message"
                self.state.metrics.streams_refused.labels(reason).inc()
                await self.ws.close(code=1008, reason=f"{what} for {seconds:g} s")
                return
            if raw["type"] == "websocket.disconnect":
                return
            await asyncio.sleep(0)  # a flooding client takes its turn like every other one
            if not self._messages.take():
                await self._over_rate(raw.get("text") or "")
                continue
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
                await self._put_control(message)  # answered after the frames sent before it
            elif isinstance(message, WatchMessage):
                await self._start_watching()

    async def _over_rate(self, text: str) -> None:
        """A message beyond the stream's rate: dropped before it costs any parsing."""
        if '"frame"' in text:
            if self.core is not None:
                self.core.count_drop("over_rate")
            else:
                self.stats.count_drop("over_rate", seen=False)
            if "over_rate" not in self._explained:
                self._explained.add("over_rate")
                await self.error(self._messages.describe(), "over_rate")
        else:
            await self.error(self._messages.describe(), "over_rate")

    def _model_names(self, config: StreamConfig) -> list[str]:
        """The served models a config asks for (default: the default model); raises
        UnknownModelError naming the served ones."""
        names = list(config.models) if config.models else [self.state.models.default_name]
        for name in names:
            self.state.models.get(name)
        return names

    async def _read_config(self, message: ConfigMessage) -> None:
        config = StreamConfig(**message.model_dump(exclude={"type"}))
        try:
            names = self._model_names(config)
        except UnknownModelError as err:
            await self.error(f"field 'models': {err}", "invalid_config")
            return
        for name in names:
            card = self.state.models.get(name).current.card
            if not can_map(config.layout, card.layout):
                await self.error(
                    f"field 'layout': camera layout {config.layout!r} cannot be mapped to the "
                    f"layout {card.layout!r} of model {name!r}",
                    "invalid_config",
                )
                return
        self.layout = config.layout
        await self._put_control(config)

    async def _put_control(self, item: StreamConfig | StatsMessage) -> None:
        if not self.inbox.put_control(item):
            await self.error(
                f"more than {_CONTROL_LIMIT} config and stats messages waiting; wait for the "
                "answers before sending more",
                "too_many_requests",
            )

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
        dropped = self.inbox.put_frame(Frame(message.timestamp, bodies))
        if dropped is not None:
            if self.core is not None:
                self.core.count_drop("queue_full", timestamp=dropped.timestamp)
            else:
                self.stats.count_drop("queue_full", seen=False)
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
            item = await self.inbox.get()
            try:
                if isinstance(item, StreamConfig):
                    await self._settle()
                    await self._configure(item)
                elif isinstance(item, StatsMessage):
                    await self._settle()
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
        try:
            names = self._model_names(config)  # a model may have gone since the config came
        except UnknownModelError as err:
            self.core = None
            await self.error(f"field 'models': {err}", "invalid_config")
            return
        cards = {name: self.state.models.get(name).current.card for name in names}
        settings = self.state.settings
        budget = StreamBudget(
            max_bodies=settings.stream_max_bodies,
            max_buffered_frames=settings.stream_max_buffered_frames,
            max_windows_per_s=settings.stream_max_windows_per_s,
        )
        try:
            self.core = StreamCore(config, cards, stats=self.stats, budget=budget)
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
                "window_s": self.core.window_s_of(names[0]),
                "model": model_brief(cards[names[0]]),
                "models": [
                    {
                        **model_brief(card),
                        "served_as": name,
                        "window_s": self.core.window_s_of(name),
                    }
                    for name, card in cards.items()
                ],
                "warnings": pairing_warnings(config, cards),
            }
        )

    async def _process_frame(self, frame: Frame) -> None:
        core = self.core
        if core is None:
            self.stats.frames_received += 1
            self.stats.dropped["invalid"] += 1
            await self.error("the stream's config was refused; send a valid one", "not_configured")
            return
        events: list[StreamEvent] = []
        for name in core.models:
            card = self.state.models.get(name).current.card
            if card is not core.card_of(name):
                try:
                    events.extend(core.set_card(card, name))
                except StreamError as err:
                    self.core = None
                    await self.error(str(err), "model_changed")
                    return
                brief = {**model_brief(card), "served_as": name}
                await self.send({"type": "model_changed", "model": brief})
        try:
            update = core.add_frame(frame)
        except StreamError as err:
            await self.error(str(err), "invalid_frame", timestamp=frame.timestamp)
            self._sync_metrics()
            return
        # drops are reported as running totals by _report_drops after every message;
        # the first of each timestamp reason is also explained in words
        events.extend(e for e in update.events if self._tell(e))
        self._set_bodies(len(core.bodies))
        await self._send_events(events)
        self._publish_skeleton(frame, core)
        await self._infer(core, update.due)

    async def _infer(self, core: StreamCore, due: list[WindowRequest]) -> None:
        """Send ``due`` to inference, one batch per model; with ``backlog: every`` wait for
        the answers, else go on at once (the core holds these bodies' next windows)."""
        asked = [
            self._answer(core, name, requests)
            for name in core.models
            if (requests := [r for r in due if r.model == name])
        ]
        if core.config.backlog == "every":
            await asyncio.gather(*asked)
            return
        for answer in asked:
            task = asyncio.create_task(answer)
            self._answering.add(task)
            task.add_done_callback(self._answered)

    async def _answer(self, core: StreamCore, name: str, requests: list[WindowRequest]) -> None:
        """Infer one model's due windows in the stream's turn of the micro-batcher, then send
        what their answers decide (nothing if the stream was reconfigured meanwhile)."""
        try:
            async with self.state.models.get(name).use() as runtime:
                if runtime.card is not requests[0].card:  # reloaded since they were cut
                    logits = None
                else:
                    windows = np.stack([r.window for r in requests])
                    logits = await runtime.infer(windows, source=("stream", self.stream_id))
        except Exception as err:  # noqa: BLE001 - one failed window must not end the stream
            for request in requests:
                core.abandon(request)
            connected = self.ws.application_state == WebSocketState.CONNECTED
            if connected and not isinstance(err, WebSocketDisconnect):
                log.exception("stream %d: %s", self.stream_id, err)
                await self.error(f"internal error: {err}", "internal")
            return
        except BaseException:  # cancelled: the stream closed
            for request in requests:
                core.abandon(request)
            raise
        if logits is None:  # the next frame brings the new card and cuts new windows
            for request in requests:
                core.abandon(request)
            return
        events: list[StreamEvent] = []
        for request, row in zip(requests, logits, strict=True):
            events.extend(core.finish(request, row))
        if core is self.core:
            await self._send_events(events)
            await self._report_drops()
            if core.config.backlog == "latest":
                await self._infer(core, core.due_now())

    def _answered(self, task: asyncio.Task[None]) -> None:
        self._answering.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: a send to a client that just left is no error

    async def _settle(self) -> None:
        """Wait for every window still being answered (before stats and a new config)."""
        while self._answering:
            await asyncio.gather(*self._answering, return_exceptions=True)

    async def _send_events(self, events: list[StreamEvent]) -> None:
        self._sync_metrics()
        metrics = self.state.metrics
        for event in events:
            message = event_message(event, self.stats)
            if message["type"] == "error":
                metrics.stream_errors.labels(message["code"]).inc()
            await self.send(message)
            if self.state.hub.watched and isinstance(event, _WATCHED):
                self.state.hub.publish({**message, "stream": self.stream_id})
            if isinstance(event, Prediction):
                metrics.predictions.labels("websocket", event.model).inc()
            elif isinstance(event, ActionStarted | ActionEnded):
                kind = "started" if isinstance(event, ActionStarted) else "ended"
                metrics.actions.labels(event.model, kind).inc()

    def _tell(self, event: StreamEvent) -> bool:
        """Whether the client gets a message of its own for ``event`` (drops: the first time a
        timestamp makes frames go; after that the running totals say it)."""
        if not isinstance(event, FrameDropped):
            return True
        if event.reason not in _EXPLAINED or event.reason in self._explained:
            return False
        self._explained.add(event.reason)
        return True

    # -- accounting ---------------------------------------------------------------------------
    def _stats(self) -> dict[str, Any]:
        return {**self.stats.as_dict(), "bodies": self.core.bodies if self.core else []}

    def _set_bodies(self, count: int) -> None:
        self.state.metrics.active_bodies.inc(count - self._bodies)
        self._bodies = count

    def _sync_metrics(self) -> None:
        metrics = self.state.metrics
        for totals, counted, counter in (
            (self.stats.dropped, self._counted, metrics.frames_dropped),
            (self.stats.bodies_dropped, self._counted_bodies, metrics.bodies_dropped),
        ):
            for reason, total in totals.items():
                if total > counted[reason]:
                    counter.labels(reason).inc(total - counted[reason])
                    counted[reason] = total

    async def _report_drops(self) -> None:
        self._sync_metrics()
        frames, bodies = self.stats.frames_dropped, sum(self.stats.bodies_dropped.values())
        if (frames, bodies) != self._reported_drops:
            new = frames - self._reported_drops[0]
            self._reported_drops = (frames, bodies)
            await self.send(
                {
                    "type": "dropped",
                    "new": new,
                    "frames_dropped": frames,
                    "dropped_by_reason": dict(self.stats.dropped),
                    "bodies_dropped": dict(self.stats.bodies_dropped),
                }
            )

    # -- watching -----------------------------------------------------------------------------
    async def _start_watching(self) -> None:
        if self._watcher is not None:
            return
        limit = self.state.settings.max_watchers
        if self.state.hub.watchers >= limit:
            # a watcher sends nothing, so no idle timeout applies: their number is capped
            await self.error(f"{limit} watchers already; retry later", "too_many_watchers")
            return
        card = self.state.models.default.current.card
        layout = get_layout(card.layout)
        cards = [self.state.models.get(name).current.card for name in self.state.models.names]
        await self.send(
            {
                "type": "watching",
                "model": model_brief(card),
                "models": [
                    {**model_brief(served), "served_as": name}
                    for name, served in zip(self.state.models.names, cards, strict=True)
                ],
                "joints": list(layout.joints),
                "parents": list(layout.parents),
                # a stream's skeletons come in its first model's layout, any served one
                "layouts": {
                    c.layout: {
                        "joints": list(get_layout(c.layout).joints),
                        "parents": list(get_layout(c.layout).parents),
                    }
                    for c in cards
                },
            }
        )
        inbox = self.state.hub.subscribe()

        async def forward() -> None:
            try:
                while True:
                    await self.send(await inbox.get())
            finally:
                self.state.hub.unsubscribe(inbox)

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
                "models": core.models,  # the rows the page shows for each body
                "bodies": bodies,
            }
        )


@router.websocket("/v1/stream")
async def stream(ws: WebSocket) -> None:
    state: ServiceState = get_state(ws)
    await ws.accept()
    if not key_is_valid(ws, state):
        state.metrics.streams_refused.labels("unauthorized").inc()
        await ws.close(code=1008, reason="missing or wrong API key")
        return
    if state.open_streams >= state.settings.max_streams:
        state.metrics.streams_refused.labels("too_many_streams").inc()
        await ws.close(code=1013, reason=f"{state.settings.max_streams} streams open; retry later")
        return
    state.open_streams += 1
    state.metrics.open_streams.inc()
    try:
        await StreamConnection(ws, state).run()
    finally:
        state.open_streams -= 1
        state.metrics.open_streams.dec()
