"""Per-connection, per-body streaming recognition core; knows no transport (WebSocket, ROS 2).

How to use it (the WebSocket route and the ROS 2 node both do exactly this)::

    core = StreamCore(StreamConfig(layout="k4a32", units_scale=1e-3), card)
    for frame in frames:                           # Frame(timestamp_s, {body_id: (V, 3) joints})
        events = core.process(frame, engine.run)   # engine.run: (N, P, T, V, 3) -> (N, classes)
        for event in events:                       # Prediction | Eviction | FrameDropped
            ...

``process`` is ``add_frame`` (returns a :class:`FrameUpdate` whose ``due`` lists the
:class:`WindowRequest` s to classify) followed by one batched call of the injected inference
function and ``complete`` for each request; an asynchronous transport calls the three steps
itself so inference runs off its event loop. Windows are kept raw, per body, in the camera
layout; when one is due it is resampled to the model's frame rate, mapped to the model's layout
with ``skeleton.layouts.convert`` and cut with ``skeleton.clip.inference_window`` (the same
path as offline evaluation). ``set_card`` switches to a reloaded model without losing buffers.

Frames are ordered by timestamp per body: an older frame still inside the window is inserted
in place, a frame older than the window is dropped (``too_late``), a repeated timestamp is
dropped (``duplicate``). Transports count their own queue overflows with ``count_drop``. Every
drop is in :attr:`StreamCore.stats` and returned as a :class:`FrameDropped` event.
"""

from __future__ import annotations

import bisect
import math
import threading
from collections import deque
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, field_validator

from service.preprocess import model_window
from skeleton.card import ModelCard, shown_label
from skeleton.clip import ClipError, check_clip
from skeleton.layouts import LayoutError, can_map, get_layout

BodyId = Hashable
InferFn = Callable[[NDArray[np.float32]], NDArray[np.float32]]
DropReason = Literal["queue_full", "duplicate", "too_late", "too_many_bodies", "invalid"]
DROP_REASONS: tuple[DropReason, ...] = (
    "queue_full",
    "duplicate",
    "too_late",
    "too_many_bodies",
    "invalid",
)
# Interpolation weights this close to 0 or 1 are snapped, so frames that already sit on the
# model's time grid pass through bit-exact (the stream then equals offline evaluation).
_SNAP = 1e-6


class StreamError(ValueError):
    """A stream configuration or frame that cannot be used; the message says which field."""


class StreamConfig(BaseModel):
    """What a client says about its camera and how it wants predictions."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    layout: str = Field(description="camera joint layout of the frames sent (ntu25, k4a32, ...)")
    fps: float = Field(30.0, gt=0, le=1000, description="nominal camera frame rate")
    stride: int = Field(8, ge=1, le=10_000, description="infer after this many new frames")
    top_k: int = Field(5, ge=1, le=1000)
    smoothing: float = Field(0.0, ge=0.0, lt=1.0, description="EMA weight of the past")
    hysteresis: float = Field(
        0.0, ge=0.0, le=1.0, description="lead a new label needs over the shown one"
    )
    units_scale: float = Field(1.0, gt=0, description="multiplies coordinates (1e-3: mm -> m)")
    window_s: float | None = Field(None, gt=0, le=60, description="default: the model card's")
    min_frames: int = Field(32, ge=1, le=10_000, description="frames before a first prediction")
    idle_timeout_s: float = Field(2.0, gt=0, description="evict a body unseen this long")
    max_bodies: int = Field(8, ge=1, le=64)
    decision: Literal["card", "off"] = Field(
        "card",
        description="card: apply the model card's none label and decision rule; off: always "
        "show the top action label (the none class left out), as for a model without one",
    )
    threshold: float | None = Field(
        None, ge=0.0, le=1.01, description="replaces the card's decision threshold"
    )

    @field_validator("layout")
    @classmethod
    def _known_layout(cls, value: str) -> str:
        get_layout(value)  # LayoutError (a ValueError) names the known layouts
        return value


@dataclass(frozen=True)
class Frame:
    """One camera frame: a timestamp in seconds and ``(V, 3)`` joints per tracked body."""

    timestamp: float
    bodies: Mapping[BodyId, NDArray[np.floating]]


@dataclass(frozen=True)
class WindowRequest:
    """A body's window, preprocessed for the model: ``window`` is ``(persons, frames, V, 3)``."""

    body: BodyId
    window: NDArray[np.float32]
    start: float  # timestamp of the window's first frame
    end: float  # timestamp of the window's last frame
    frames: int  # frames of the window on the model's time grid
    card: ModelCard
    partner: BodyId | None = None  # two-person models: the second person of the window


@dataclass(frozen=True)
class Prediction:
    body: BodyId
    start: float
    end: float
    frames: int
    label: str  # the shown label, after smoothing and hysteresis
    probability: float  # its smoothed probability
    top_k: tuple[tuple[str, float], ...]  # smoothed, best first
    raw_label: str  # argmax of this window alone
    changed: bool  # the shown label differs from the previous one of this body
    partner: BodyId | None = None  # two-person models: the other body of the window


@dataclass(frozen=True)
class Eviction:
    body: BodyId
    last_seen: float
    timestamp: float


@dataclass(frozen=True)
class FrameDropped:
    timestamp: float | None
    reason: DropReason
    body: BodyId | None = None
    detail: str = ""


StreamEvent = Prediction | Eviction | FrameDropped


@dataclass
class StreamStats:
    frames_received: int = 0
    frames_accepted: int = 0
    frames_reordered: int = 0
    predictions: int = 0
    evictions: int = 0
    dropped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DROP_REASONS, 0))

    @property
    def frames_dropped(self) -> int:
        return sum(self.dropped.values())

    def as_dict(self) -> dict[str, object]:
        return {
            "frames_received": self.frames_received,
            "frames_accepted": self.frames_accepted,
            "frames_reordered": self.frames_reordered,
            "frames_dropped": self.frames_dropped,
            "dropped_by_reason": dict(self.dropped),
            "predictions": self.predictions,
            "evictions": self.evictions,
        }


@dataclass(frozen=True)
class FrameUpdate:
    """What one frame did: windows now due for inference, evicted bodies, drops."""

    accepted: bool
    due: list[WindowRequest]
    events: list[StreamEvent]


class LabelSmoother:
    """Exponential average of class probabilities plus hysteresis on the shown label."""

    def __init__(self, smoothing: float, hysteresis: float) -> None:
        self.smoothing, self.hysteresis = smoothing, hysteresis
        self.probs: NDArray[np.float64] | None = None
        self.shown = 0

    def update(self, probs: NDArray[np.floating]) -> tuple[NDArray[np.float64], int, bool]:
        """Fold in one window's probabilities; return (smoothed, shown class, changed)."""
        new = np.asarray(probs, dtype=np.float64)
        previous: int | None = self.shown
        if self.probs is None or self.probs.shape != new.shape:
            self.probs, previous = new, None
        else:
            self.probs = self.smoothing * self.probs + (1.0 - self.smoothing) * new
        best = int(np.argmax(self.probs))
        leads = previous is not None and self.probs[best] >= self.probs[previous] + self.hysteresis
        if previous is None or leads:
            self.shown = best
        changed = previous is not None and self.shown != previous
        return self.probs, self.shown, changed


def softmax(logits: NDArray[np.floating]) -> NDArray[np.float64]:
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    out: NDArray[np.float64] = e / e.sum(axis=-1, keepdims=True)
    return out


def top_k_labels(
    probs: NDArray[np.floating], labels: Sequence[str], k: int
) -> tuple[tuple[str, float], ...]:
    order = np.argsort(-np.asarray(probs), kind="stable")[: min(k, len(labels))]
    return tuple((labels[i], float(probs[i])) for i in order)


def resample_to_grid(
    times: NDArray[np.float64], joints: NDArray[np.float32], fps: float, span_s: float
) -> tuple[NDArray[np.float32], float]:
    """Linear resample of ``joints`` (n, V, 3) at ``times`` onto a grid of step ``1/fps`` that
    ends at the last frame and covers at most ``span_s``; returns (frames, first grid time)."""
    end = float(times[-1])
    first = max(float(times[0]), end - span_s)
    count = int(math.floor((end - first) * fps + 1e-6)) + 1
    grid = end - np.arange(count - 1, -1, -1, dtype=np.float64) / fps
    hi = np.clip(np.searchsorted(times, grid, side="left"), 0, len(times) - 1)
    lo = np.maximum(hi - 1, 0)
    gap = times[hi] - times[lo]
    with np.errstate(divide="ignore", invalid="ignore"):
        w = np.where(gap > 0, (grid - times[lo]) / np.where(gap > 0, gap, 1.0), 1.0)
    w = np.clip(w, 0.0, 1.0)
    w = np.where(w < _SNAP, 0.0, np.where(w > 1.0 - _SNAP, 1.0, w))
    w32 = w.astype(np.float32)[:, None, None]
    out = joints[lo] * (1.0 - w32) + joints[hi] * w32
    exact_hi, exact_lo = w == 1.0, w == 0.0
    out[exact_hi] = joints[hi[exact_hi]]
    out[exact_lo] = joints[lo[exact_lo]]
    return np.ascontiguousarray(out, dtype=np.float32), float(grid[0])


def sample_at(
    times: NDArray[np.float64], joints: NDArray[np.float32], grid: NDArray[np.float64]
) -> NDArray[np.float32]:
    """``joints`` (n, V, 3) recorded at ``times``, linearly interpolated at ``grid``; grid
    times outside the recorded span, or further than a frame gap of 0.5 s from a recorded
    frame, are all zeros (that person is absent there)."""
    out = np.zeros((len(grid), *joints.shape[1:]), dtype=np.float32)
    if not len(times):
        return out
    hi = np.clip(np.searchsorted(times, grid, side="left"), 0, len(times) - 1)
    lo = np.maximum(hi - 1, 0)
    lo = np.where(times[hi] <= grid, hi, lo)
    gap = times[hi] - times[lo]
    inside = (grid >= times[0]) & (grid <= times[-1]) & (gap <= 0.5)
    with np.errstate(divide="ignore", invalid="ignore"):
        w = np.where(gap > 0, (grid - times[lo]) / np.where(gap > 0, gap, 1.0), 0.0)
    w32 = np.clip(w, 0.0, 1.0).astype(np.float32)[:, None, None]
    mixed = joints[lo] * (1.0 - w32) + joints[hi] * w32
    out[inside] = mixed[inside]
    return out


class _Body:
    """One body's recent frames, sorted by time, at most ``capacity`` of them."""

    def __init__(self, capacity: int, smoother: LabelSmoother) -> None:
        self.capacity = capacity
        self.times: list[float] = []
        self.joints: list[NDArray[np.float32]] = []
        self.new_frames = 0
        self.last_seen = -math.inf
        self.order = 0  # creation order in the stream: the first-tracked body comes first
        self.smoother = smoother
        self.shown: int | None = None  # label index shown after the decision rule
        self.partner: BodyId | None = None

    def insert(self, t: float, joints: NDArray[np.float32]) -> Literal["head", "inside", "dup"]:
        if not self.times or t > self.times[-1]:
            self.times.append(t)
            self.joints.append(joints)
            return "head"
        pos = bisect.bisect_left(self.times, t)
        if pos < len(self.times) and self.times[pos] == t:
            return "dup"
        self.times.insert(pos, t)
        self.joints.insert(pos, joints)
        return "inside"

    def trim(self, before: float) -> None:
        """Forget frames older than ``before`` (keeping one) and beyond the capacity."""
        keep_from = min(bisect.bisect_left(self.times, before), len(self.times) - 1)
        keep_from = max(keep_from, len(self.times) - self.capacity)
        if keep_from > 0:
            del self.times[:keep_from]
            del self.joints[:keep_from]


class StreamCore:
    """One client's stream: per-body windows, stride, smoothing, eviction, drop accounting.

    Not thread-safe: one transport task (or one ROS callback group) drives it.
    """

    def __init__(
        self, config: StreamConfig, card: ModelCard, *, stats: StreamStats | None = None
    ) -> None:
        self.config = config
        self.stats = stats if stats is not None else StreamStats()
        self._bodies: dict[BodyId, _Body] = {}
        self._latest = -math.inf
        self._created = 0
        self.card = card
        self.set_card(card)

    # -- model --------------------------------------------------------------------------------
    def set_card(self, card: ModelCard) -> None:
        """Serve a (re)loaded model; buffers stay, smoothing restarts if the labels changed."""
        if not can_map(self.config.layout, card.layout):
            raise StreamError(
                f"field 'layout': camera layout {self.config.layout!r} cannot be mapped to the "
                f"model's layout {card.layout!r}"
            )
        if card.labels != self.card.labels:
            for body in self._bodies.values():
                body.smoother = self._smoother()
        self.card = card

    @property
    def window_s(self) -> float:
        """Seconds of recent frames each window covers."""
        if self.config.window_s is not None:
            return self.config.window_s
        if self.card.stream_window_s is not None:
            return self.card.stream_window_s
        return self.card.window.frames / self.card.fps

    @property
    def bodies(self) -> list[BodyId]:
        return list(self._bodies)

    # -- frames -------------------------------------------------------------------------------
    def count_drop(
        self, reason: DropReason, *, timestamp: float | None = None, detail: str = ""
    ) -> FrameDropped:
        """Count a frame the transport could not take (for example its queue was full)."""
        if reason == "queue_full":  # the core never saw this frame
            self.stats.frames_received += 1
        self.stats.dropped[reason] += 1
        return FrameDropped(timestamp, reason, detail=detail)

    def add_frame(self, frame: Frame) -> FrameUpdate:
        """Buffer one frame; return the windows now due and what was evicted or dropped."""
        self.stats.frames_received += 1
        t = float(frame.timestamp)
        if not math.isfinite(t):
            self.stats.dropped["invalid"] += 1
            return FrameUpdate(False, [], [FrameDropped(None, "invalid", detail="timestamp")])
        events: list[StreamEvent] = []
        if t < self._latest - self.window_s:
            self.stats.dropped["too_late"] += 1
            detail = f"{self._latest - t:.3f} s older than the newest frame"
            return FrameUpdate(False, [], [FrameDropped(t, "too_late", detail=detail)])
        try:
            cleaned = self._check_bodies(frame, t)
        except StreamError:
            self.stats.dropped["invalid"] += 1
            raise
        accepted_any = not cleaned  # a frame with nobody in view still moves time on
        heads: list[BodyId] = []
        reordered = False
        duplicates = 0
        for body_id, joints in cleaned.items():
            body = self._bodies.get(body_id)
            if body is None:
                if len(self._bodies) >= self.config.max_bodies:
                    events.append(self._drop_body(t, body_id, "too_many_bodies"))
                    continue
                body = self._bodies[body_id] = _Body(self._capacity(), self._smoother())
                self._created += 1
                body.order = self._created
            where = body.insert(t, joints)
            if where == "dup":
                duplicates += 1
                continue
            accepted_any = True
            body.last_seen = max(body.last_seen, t)

            if where == "head":
                body.new_frames += 1
                body.trim(t - self.window_s - 2.0 / self.config.fps)
                heads.append(body_id)
            else:
                reordered = True
        if duplicates and not accepted_any:
            self.stats.dropped["duplicate"] += 1
            events.append(FrameDropped(t, "duplicate", detail="timestamp already received"))
        if accepted_any:
            self.stats.frames_accepted += 1
            self.stats.frames_reordered += reordered
            self._latest = max(self._latest, t)
        events.extend(self._evict_idle(self._latest))
        due = [req for b in heads if (req := self._due(b)) is not None]
        return FrameUpdate(accepted_any, due, events)

    def complete(self, request: WindowRequest, logits: NDArray[np.floating]) -> list[Prediction]:
        """Turn the model's logits for ``request`` into the body's (smoothed) prediction and,
        for a two-person window, the same prediction for its partner: one decision per pair."""
        body = self._bodies.get(request.body)
        if body is None or request.card.labels != self.card.labels:
            return []  # evicted meanwhile, or the model changed its labels under it
        labels = self.card.labels
        probs = softmax(np.asarray(logits).reshape(-1))
        raw = int(np.argmax(probs))
        none = self.card.none_label
        if none is not None and self.config.decision == "off":
            probs[labels.index(none)] = 0.0  # today's behaviour: every window shows an action
            probs /= probs.sum()
            raw = int(np.argmax(probs))
        smoothed, candidate, _ = body.smoother.update(probs)
        shown = candidate
        threshold = self.decision_threshold
        if none is not None and threshold is not None:
            gated = shown_label(smoothed, labels, none, threshold)
            shown = candidate if gated == candidate else labels.index(none)
        changed = body.shown is not None and shown != body.shown
        body.shown = shown
        self.stats.predictions += 1
        prediction = Prediction(
            body=request.body,
            start=request.start,
            end=request.end,
            frames=request.frames,
            label=labels[shown],
            probability=float(smoothed[shown]),
            top_k=top_k_labels(smoothed, labels, self.config.top_k),
            raw_label=labels[raw],
            changed=changed,
            partner=request.partner,
        )
        out = [prediction]
        partner = self._bodies.get(request.partner) if request.partner is not None else None
        if partner is not None:
            partner_changed = partner.shown is not None and shown != partner.shown
            partner.shown = shown
            self.stats.predictions += 1
            out.append(
                replace(
                    prediction,
                    body=request.partner,
                    partner=request.body,
                    changed=partner_changed,
                )
            )
        return out

    @property
    def decision_threshold(self) -> float | None:
        """The threshold of the rule in force: the stream's, else the card's; None: no rule."""
        if self.card.none_label is None or self.config.decision == "off":
            return None
        return self.config.threshold if self.config.threshold is not None else self.card.threshold

    def process(self, frame: Frame, infer: InferFn) -> list[StreamEvent]:
        """``add_frame``, one batched ``infer`` call for the due windows, ``complete``."""
        update = self.add_frame(frame)
        events = list(update.events)
        if update.due:
            logits = infer(np.stack([req.window for req in update.due]))
            for req, row in zip(update.due, logits, strict=True):
                events.extend(self.complete(req, row))
        return events

    # -- internals ----------------------------------------------------------------------------
    def _smoother(self) -> LabelSmoother:
        return LabelSmoother(self.config.smoothing, self.config.hysteresis)

    def _capacity(self) -> int:
        # Room for the window at up to 4x the announced frame rate; older frames fall off.
        return max(8, int(math.ceil(self.window_s * self.config.fps * 4)) + 2)

    def _drop_body(self, t: float, body_id: BodyId, reason: DropReason) -> FrameDropped:
        self.stats.dropped[reason] += 1
        return FrameDropped(t, reason, body=body_id)

    def _check_bodies(self, frame: Frame, t: float) -> dict[BodyId, NDArray[np.float32]]:
        joints_needed = get_layout(self.config.layout).num_joints
        out: dict[BodyId, NDArray[np.float32]] = {}
        for body_id, raw in frame.bodies.items():
            where = f"frame at {t:.6g} s, body {body_id!r}"
            arr = np.asarray(raw)
            if arr.shape != (joints_needed, 3):
                raise StreamError(
                    f"{where}: {self.config.layout} joints need shape ({joints_needed}, 3), "
                    f"got {arr.shape}"
                )
            try:
                clip = check_clip(arr[None, None], where=where)
            except ClipError as err:
                raise StreamError(str(err)) from err
            out[body_id] = clip[0, 0].copy()
        return out

    def _evict_idle(self, now: float) -> list[StreamEvent]:
        gone = [
            b for b, s in self._bodies.items() if now - s.last_seen > self.config.idle_timeout_s
        ]
        self.stats.evictions += len(gone)
        return [Eviction(b, self._bodies.pop(b).last_seen, now) for b in gone]

    def _due(self, body_id: BodyId) -> WindowRequest | None:
        body = self._bodies[body_id]
        span = self.window_s
        if body.new_frames < self.config.stride:
            return None
        partner = self._partner(body_id) if self.card.window.persons > 1 else None
        if partner is not None and self._bodies[partner].order < body.order:
            # the pair's window is built for its first-tracked body and reported for both
            body.new_frames = 0
            return None
        times = np.fromiter(body.times, dtype=np.float64, count=len(body.times))
        frames, start = resample_to_grid(times, np.stack(body.joints), self.card.fps, span)
        if len(frames) < self.config.min_frames:
            return None
        body.new_frames = 0
        persons = frames[None]
        if partner is not None:
            other = self._bodies[partner]
            grid = start + np.arange(len(frames), dtype=np.float64) / self.card.fps
            second = sample_at(np.asarray(other.times), np.stack(other.joints), grid)
            # the first-tracked body of a pair is the window's first person, as in training
            # (a dataset's first skeleton is the first one tracked)
            pair = (frames, second) if body.order < other.order else (second, frames)
            persons = np.stack(pair)
        try:
            window = model_window(
                persons,
                self.config.layout,
                self.card,
                units_scale=self.config.units_scale,
                where=f"body {body_id!r}",
            )
        except (ClipError, LayoutError):
            return None  # nothing but all-zero joints in the window: nothing to classify
        return WindowRequest(
            body_id, window, start, float(times[-1]), len(frames), self.card, partner
        )

    def _partner(self, body_id: BodyId) -> BodyId | None:
        """The body paired with ``body_id`` for a two-person model.

        Pairs are kept while both bodies are tracked; an unpaired body pairs with the nearest
        unpaired other body (distance between their root joints at their newest frames), so
        with two people in view each is the other's partner for as long as both stay.
        """
        body = self._bodies[body_id]
        if body.partner in self._bodies and self._bodies[body.partner].partner == body_id:
            return body.partner
        root = get_layout(self.config.layout).root
        here = body.joints[-1][root]
        free = [
            (float(np.linalg.norm(other.joints[-1][root] - here)), other_id)
            for other_id, other in self._bodies.items()
            if other_id != body_id and other.joints and other.partner not in self._bodies
        ]
        if not free:
            body.partner = None
            return None
        _, nearest = min(free, key=lambda item: item[0])
        body.partner = nearest
        self._bodies[nearest].partner = body_id
        return nearest


class BoundedFrameQueue:
    """A thread-safe FIFO of frames that refuses (and counts) frames beyond ``capacity``.

    For transports whose producer runs on another thread (a ROS 2 subscription callback).
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.dropped = 0
        self._items: deque[Frame] = deque()
        self._lock = threading.Lock()

    def offer(self, frame: Frame) -> bool:
        with self._lock:
            if len(self._items) >= self.capacity:
                self.dropped += 1
                return False
            self._items.append(frame)
            return True

    def drain(self) -> list[Frame]:
        with self._lock:
            items = list(self._items)
            self._items.clear()
            return items

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
