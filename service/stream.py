"""Per-connection, per-body streaming recognition core; knows no transport (WebSocket, ROS 2).

How to use it (the WebSocket route and the ROS 2 node both do exactly this)::

    core = StreamCore(StreamConfig(layout="k4a32", units_scale=1e-3), card)
    for frame in frames:                           # Frame(timestamp_s, {body_id: (V, 3) joints})
        events = core.process(frame, engine.run)   # engine.run: (N, P, T, V, 3) -> (N, classes)
        for event in events:                       # Prediction | ActionStarted | Eviction ...
            ...

One core serves one model, or several by name (``StreamCore(config, {"gesture": card_a,
"interaction": card_b})``, ``process(frame, {"gesture": run_a, "interaction": run_b})``):
frames are buffered once per body and windowed per model; every request, prediction and
action event names its model.

With a model whose card names a none label (and ``decision`` "card"), the shown labels of each
body (each pair, for a two-person model) become actions (:mod:`service.segments`):
:class:`ActionStarted` once a label has been shown for ``event_min_s``, :class:`ActionEnded`
when another label or none has, or when the body is evicted (ended at its last frame). Mode
``events`` returns only these; mode ``windows`` also every window's :class:`Prediction`.

``process`` is ``add_frame`` (returns a :class:`FrameUpdate` whose ``due`` lists the
:class:`WindowRequest` s to classify) followed by one batched call of the injected inference
function and ``finish`` for each request (``complete`` once the logits are finite); an
asynchronous transport calls the three steps itself so inference runs off its event loop.
Windows are kept raw, per body, in the camera layout; when one is due it is resampled to the
model's frame rate, mapped to the model's layout with ``skeleton.layouts.convert`` and cut with
``skeleton.clip.inference_window`` (the same path as offline evaluation). ``set_card``
switches to a reloaded model without losing buffers.

Frames are ordered by timestamp per body: an older frame still inside the window is inserted
in place, a frame older than the window is dropped (``too_late``), one implausibly far ahead of
the stream's clock is dropped (``too_early``), a repeated timestamp is dropped (``duplicate``).
A few consistent frames on the far side of such a gap are a clock jump (a camera restarted):
the stream's clock moves to them, every body is evicted and a :class:`ClockJump` is returned.

The core owns every drop and eviction, whatever the transport: transports report the frames
their queue could not hold with ``count_drop`` and evict with ``evict_idle`` / ``evict_all``.
Frames and bodies are counted apart: a frame is dropped whole (``stats.dropped``), a body left
out of a frame that was taken is a body drop (``stats.bodies_dropped``). Every drop is also
returned as a :class:`FrameDropped` event (``body`` set for a body drop).

A :class:`StreamBudget` bounds the work of one stream whatever its config says: bodies,
buffered frames (so memory) and windows classified per second of wall time; a config that
cannot fit is refused with a :class:`StreamError` that states the limit.
"""

from __future__ import annotations

import bisect
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, field_validator

from service.preprocess import model_window
from service.segments import ActionSegmenter, Ended
from skeleton.card import ModelCard, shown_label
from skeleton.clip import ClipError, check_clip
from skeleton.layouts import LayoutError, can_map, get_layout

BodyId = Hashable
InferFn = Callable[[NDArray[np.float32]], NDArray[np.float32]]
DropReason = Literal[
    "queue_full", "over_rate", "duplicate", "too_late", "too_early", "invalid", "too_many_bodies"
]
#: Why a whole frame was dropped.
DROP_REASONS: tuple[DropReason, ...] = (
    "queue_full",
    "over_rate",
    "duplicate",
    "too_late",
    "too_early",
    "invalid",
)
#: Why one body of a frame that was taken was left out.
BODY_DROP_REASONS: tuple[DropReason, ...] = ("too_many_bodies",)
# Consistent frames beyond a time gap that make it a clock jump rather than a stray stamp.
_JUMP_CONFIRM = 3
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
    start_lag_s: float | None = Field(
        None,
        ge=0.0,
        le=60.0,
        description="replaces the card's decision.start_lag_s: an action_started reports its "
        "start this long before its label was first shown (0: when first shown)",
    )
    end_lag_s: float | None = Field(
        None,
        ge=0.0,
        le=60.0,
        description="replaces the card's decision.end_lag_s: an action_ended reports its end "
        "this long before its label stopped being shown (0: when it stopped)",
    )
    mode: Literal["windows", "events"] = Field(
        "windows",
        description="windows: every window's prediction, and action events; events: only "
        "action_started / action_ended (models whose card names a none label)",
    )
    event_min_s: float = Field(
        0.3,
        ge=0.0,
        le=60.0,
        description="a new label (an action, or none) must be shown this long before an "
        "action starts or ends on it; shorter ones are flicker",
    )
    backlog: Literal["latest", "every"] = Field(
        "latest",
        description="latest: a body whose window is still being answered gets its next one "
        "from the freshest frames once the answer is in (strides in between are skipped, "
        "counted as windows_skipped), so answers stay prompt under load; every: each frame "
        "waits for the answers of the windows before it (replaying a recording faster than "
        "real time; frames wait in the stream's queue)",
    )
    models: tuple[str, ...] | None = Field(
        None,
        min_length=1,
        max_length=16,
        description="names of the served models to run on every frame (default: the default model)",
    )

    @field_validator("layout")
    @classmethod
    def _known_layout(cls, value: str) -> str:
        get_layout(value)  # LayoutError (a ValueError) names the known layouts
        return value


@dataclass(frozen=True)
class StreamBudget:
    """The most one stream may cost, whatever its config: the service sets it from its
    settings; a config beyond it is refused, windows beyond the rate wait for the next frame."""

    max_bodies: int = 64
    max_buffered_frames: int = 65_536  # over all bodies of the stream
    max_windows_per_s: float = math.inf  # wall-clock rate of windows sent to inference

    def __post_init__(self) -> None:
        if self.max_bodies < 1 or self.max_buffered_frames < 1 or not self.max_windows_per_s > 0:
            raise ValueError(f"a stream budget needs positive limits, got {self}")


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
    model: str = ""  # the name the stream knows the model by


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
    model: str = ""


@dataclass(frozen=True)
class ActionStarted:
    """``bodies`` (the window's person, and its partner for a two-person model) started doing
    ``label`` at ``start``; decided at stream time ``timestamp`` (``event_min_s`` later)."""

    model: str
    bodies: tuple[BodyId, ...]
    label: str
    start: float
    confidence: float  # mean shown probability from the start to the decision
    timestamp: float


@dataclass(frozen=True)
class ActionEnded:
    """The action of ``bodies`` that began at ``start`` ended at ``end`` (when the next label,
    or none, was first shown; when the body was last seen if it left)."""

    model: str
    bodies: tuple[BodyId, ...]
    label: str
    start: float
    end: float
    confidence: float  # mean shown probability over the action
    timestamp: float


@dataclass(frozen=True)
class Eviction:
    body: BodyId
    last_seen: float
    timestamp: float


@dataclass(frozen=True)
class FrameDropped:
    timestamp: float | None
    reason: DropReason
    body: BodyId | None = None  # set when one body of the frame was dropped, not the frame
    detail: str = ""


@dataclass(frozen=True)
class ClockJump:
    """The stream's clock jumped from ``previous`` to ``timestamp``; every body was evicted."""

    previous: float
    timestamp: float


@dataclass(frozen=True)
class WindowFailed:
    """A window the model gave no finite answer for (coordinates too large for it)."""

    body: BodyId
    start: float
    end: float
    detail: str
    model: str = ""


ActionEvent = ActionStarted | ActionEnded
StreamEvent = (
    Prediction | ActionStarted | ActionEnded | Eviction | FrameDropped | ClockJump | WindowFailed
)


@dataclass
class StreamStats:
    frames_received: int = 0
    frames_accepted: int = 0
    frames_reordered: int = 0
    predictions: int = 0
    actions_started: int = 0
    actions_ended: int = 0
    evictions: int = 0
    clock_jumps: int = 0
    windows_deferred: int = 0  # due windows held back by the budget's rate
    # strides that got no window of their own (the previous window of the body was still
    # being answered, or the budget held it back): their frames went into the next window
    windows_skipped: int = 0
    windows_failed: int = 0  # windows the model gave no finite answer for
    dropped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DROP_REASONS, 0))
    bodies_dropped: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(BODY_DROP_REASONS, 0)
    )

    @property
    def frames_dropped(self) -> int:
        return sum(self.dropped.values())

    def count_drop(self, reason: DropReason, *, seen: bool = True) -> None:
        """One frame dropped whole; ``seen=False`` when it never got past the transport."""
        if not seen:
            self.frames_received += 1
        self.dropped[reason] += 1

    def as_dict(self) -> dict[str, object]:
        return {
            "frames_received": self.frames_received,
            "frames_accepted": self.frames_accepted,
            "frames_reordered": self.frames_reordered,
            "frames_dropped": self.frames_dropped,
            "dropped_by_reason": dict(self.dropped),
            "bodies_dropped": dict(self.bodies_dropped),
            "predictions": self.predictions,
            "actions_started": self.actions_started,
            "actions_ended": self.actions_ended,
            "evictions": self.evictions,
            "clock_jumps": self.clock_jumps,
            "windows_deferred": self.windows_deferred,
            "windows_skipped": self.windows_skipped,
            "windows_failed": self.windows_failed,
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


@dataclass
class _Track:
    """One model's view of one body: its stride count, smoothing, shown label, segments."""

    smoother: LabelSmoother
    segmenter: ActionSegmenter | None  # None: the model has no none label (no events)
    new_frames: int = 0
    in_flight: bool = False  # a window of this track is being inferred (not finished yet)
    windows: int = 0  # windows cut for this track
    shown: int | None = None  # label index shown after the decision rule
    bodies: tuple[BodyId, ...] = ()  # of the open segment, as its start reported them


@dataclass
class _Model:
    name: str
    card: ModelCard
    window_s: float

    @property
    def none(self) -> int | None:
        none = self.card.none_label
        return None if none is None else self.card.labels.index(none)


class _Body:
    """One body's recent frames, sorted by time, at most ``capacity`` of them."""

    def __init__(self, capacity: int, tracks: dict[str, _Track]) -> None:
        self.capacity = capacity
        self.times: list[float] = []
        self.joints: list[NDArray[np.float32]] = []
        self.last_seen = -math.inf
        self.order = 0  # creation order in the stream: the first-tracked body comes first
        self.tracks = tracks
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
    """One client's stream: per-body windows, stride, smoothing, decisions, action events,
    eviction, drop accounting, for one or several models at once.

    ``cards`` is one model card, or the cards of several models by the names the stream knows
    them by; every frame is buffered once per body and windowed for each model. Not
    thread-safe: one transport task (or one ROS callback group) drives it. ``clock`` (wall
    seconds, monotonic) paces windows under ``budget.max_windows_per_s``.
    """

    def __init__(
        self,
        config: StreamConfig,
        cards: ModelCard | Mapping[str, ModelCard],
        *,
        stats: StreamStats | None = None,
        budget: StreamBudget | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.budget = budget if budget is not None else StreamBudget()
        self.stats = stats if stats is not None else StreamStats()
        self._bodies: dict[BodyId, _Body] = {}
        self._latest = -math.inf
        self._created = 0
        self._latest_at = -math.inf  # wall clock when the stream's clock last moved
        self._jump: list[float] = []  # consecutive frames beyond a gap in the stream's clock
        self._clock = clock
        self._tokens = min(self.budget.max_windows_per_s, float(self.budget.max_bodies))
        self._tokens_at = clock()
        named = {cards.name: cards} if isinstance(cards, ModelCard) else dict(cards)
        if not named:
            raise StreamError("field 'models': a stream needs at least one model")
        self._models: dict[str, _Model] = {}
        for name, card in named.items():
            self._models[name] = self._checked_model(name, card)

    # -- models -------------------------------------------------------------------------------
    @property
    def models(self) -> list[str]:
        """The names of the stream's models, the first one being its main model."""
        return list(self._models)

    @property
    def card(self) -> ModelCard:
        """The main (first) model's card."""
        return next(iter(self._models.values())).card

    def card_of(self, model: str) -> ModelCard:
        return self._models[model].card

    def set_card(self, card: ModelCard, model: str | None = None) -> list[ActionEnded]:
        """Serve a (re)loaded model (default: the main one); buffers stay. If its labels
        changed, its smoothing and actions restart: the open actions end now (returned)."""
        name = model if model is not None else self.models[0]
        old = self._models[name]
        new = self._checked_model(name, card)
        self._models[name] = new
        ended: list[ActionEnded] = []
        if card.labels != old.card.labels or card.none_label != old.card.none_label:
            for body in self._bodies.values():
                ended += self._close(old, body.tracks[name], self._latest, self._latest)
                body.tracks[name] = self._track(new, self._latest)
        return ended

    def _checked_model(self, name: str, card: ModelCard) -> _Model:
        if not can_map(self.config.layout, card.layout):
            raise StreamError(
                f"field 'layout': camera layout {self.config.layout!r} cannot be mapped to the "
                f"model's layout {card.layout!r} (model {name!r})"
            )
        if self.config.mode == "events" and (
            card.none_label is None or self.config.decision == "off"
        ):
            why = (
                "its card names no none label" if card.none_label is None else "'decision' is 'off'"
            )
            raise StreamError(
                f"field 'mode': model {name!r}: events need a model that can say none, and {why}; "
                "use mode 'windows'"
            )
        model = _Model(name, card, self._window_s(card))
        self._check_budget(model)
        return model

    @property
    def window_s(self) -> float:
        """Seconds of recent frames kept per body: the longest window of the stream's models."""
        return max(m.window_s for m in self._models.values())

    def window_s_of(self, model: str) -> float:
        """Seconds of recent frames each window of ``model`` covers."""
        return self._models[model].window_s

    def _window_s(self, card: ModelCard) -> float:
        if self.config.window_s is not None:
            return self.config.window_s
        if card.stream_window_s is not None:
            return card.stream_window_s
        return card.window.frames / card.fps

    def _check_budget(self, model: _Model) -> None:
        """Refuse, with the limit, a config whose work or memory no budget would cover."""
        config, budget, card = self.config, self.budget, model.card
        if config.max_bodies > budget.max_bodies:
            raise StreamError(
                f"field 'max_bodies': {config.max_bodies} bodies; this server allows at most "
                f"{budget.max_bodies} per stream"
            )
        window_s = model.window_s
        per_body = math.ceil(window_s * config.fps) + 2
        if per_body * config.max_bodies > budget.max_buffered_frames:
            raise StreamError(
                f"fields 'window_s', 'fps', 'max_bodies': {config.max_bodies} bodies x "
                f"{window_s:g} s x {config.fps:g} fps need {per_body * config.max_bodies} "
                f"buffered frames; this server allows {budget.max_buffered_frames} per stream"
            )
        reachable = math.floor(window_s * card.fps + 1e-6) + 1
        if config.min_frames > reachable:
            raise StreamError(
                f"field 'min_frames': {config.min_frames} can never be reached: a window of "
                f"{window_s:g} s holds at most {reachable} frames at the model's {card.fps:g} fps"
            )

    def decision_threshold(self, model: str | None = None) -> float | None:
        """The threshold of the rule in force for ``model`` (default: the main one): the
        stream's, else the card's; None: no rule."""
        card = self._models[model if model is not None else self.models[0]].card
        if card.none_label is None or self.config.decision == "off":
            return None
        return self.config.threshold if self.config.threshold is not None else card.threshold

    def start_lag_s(self, model: str | None = None) -> float:
        """How much earlier than its label was first shown an action_started reports its start
        (default model: the main one): the stream's; else the card's (measured on windows as
        they came, unsmoothed) plus what this stream's smoothing adds: an exponential average
        of weight a, fed a window every ``stride`` frames, trails a rising probability by
        stride * a / (1 - a) frames; else (a card without one) 0."""
        card = self._models[model if model is not None else self.models[0]].card
        return self._lag(self.config.start_lag_s, card.start_lag_s)

    def end_lag_s(self, model: str | None = None) -> float:
        """How much earlier than its label stopped being shown an action_ended reports its end:
        as ``start_lag_s``, from the stream's ``end_lag_s`` or the card's (a falling average
        trails as a rising one does)."""
        card = self._models[model if model is not None else self.models[0]].card
        return self._lag(self.config.end_lag_s, card.end_lag_s)

    def _lag(self, stream: float | None, card: float) -> float:
        """The stream's lag if it set one; else the card's plus the smoothing's trail."""
        cfg = self.config
        if stream is not None:
            return stream
        if not card:
            return 0.0
        return card + cfg.stride * cfg.smoothing / (1.0 - cfg.smoothing) / cfg.fps

    @property
    def bodies(self) -> list[BodyId]:
        return list(self._bodies)

    @property
    def buffered_frames(self) -> int:
        """Frames held over all bodies (bounded by ``budget.max_buffered_frames``)."""
        return sum(len(body.times) for body in self._bodies.values())

    @property
    def latest(self) -> float:
        """The stream's clock: the newest timestamp taken (-inf before the first frame)."""
        return self._latest

    def current_actions(self) -> dict[str, dict[BodyId, str | None]]:
        """Per model, per body, the label of its open action, a pair's for both its bodies
        (None: none, or a model without a none label)."""
        out: dict[str, dict[BodyId, str | None]] = {}
        for name, model in self._models.items():
            out[name] = dict.fromkeys(self._bodies)
            for body in self._bodies.values():
                track = body.tracks[name]
                active = None if track.segmenter is None else track.segmenter.active
                if active is not None:
                    for member in track.bodies:
                        if member in out[name]:
                            out[name][member] = model.card.labels[active]
        return out

    # -- frames -------------------------------------------------------------------------------
    def count_drop(
        self, reason: DropReason, *, timestamp: float | None = None, detail: str = ""
    ) -> FrameDropped:
        """Count a frame the transport could not take (for example its queue was full)."""
        self.stats.count_drop(reason, seen=False)
        return FrameDropped(timestamp, reason, detail=detail)

    def add_frame(self, frame: Frame) -> FrameUpdate:
        """Buffer one frame; return the windows now due and what was evicted or dropped.

        Each window returned must come back through ``finish`` (or ``abandon``) before its body
        gets another one for that model: until then its strides pass into the next window,
        which ``due_now`` gives as soon as the answer is in."""
        self.stats.frames_received += 1
        t = float(frame.timestamp)
        if not math.isfinite(t):
            self.stats.dropped["invalid"] += 1
            return FrameUpdate(False, [], [FrameDropped(None, "invalid", detail="timestamp")])
        events: list[StreamEvent] = []
        gap = self._gap(t)
        if gap is not None:
            if not self._jump_confirmed(t):
                self.stats.dropped[gap] += 1
                return FrameUpdate(False, [], [FrameDropped(t, gap, detail=self._gap_detail(t))])
            events.extend(self._jump_clock(t))
        else:
            self._jump.clear()
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
                tracks = {name: self._track(model, t) for name, model in self._models.items()}
                body = self._bodies[body_id] = _Body(self._capacity(), tracks)
                self._created += 1
                body.order = self._created
            where = body.insert(t, joints)
            if where == "dup":
                duplicates += 1
                continue
            accepted_any = True
            body.last_seen = max(body.last_seen, t)

            if where == "head":
                for track in body.tracks.values():
                    track.new_frames += 1
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
            if t > self._latest:
                self._latest, self._latest_at = t, self._clock()
        events.extend(self.evict_idle(self._latest))
        due = [
            req
            for b in heads
            for name in self._models
            if (req := self._due(b, self._models[name])) is not None
        ]
        return FrameUpdate(accepted_any, due, events)

    def evict_idle(self, now: float) -> list[ActionEnded | Eviction]:
        """Evict the bodies unseen for ``idle_timeout_s`` at stream time ``now`` (a transport
        whose frames stopped coming calls this with its clock's estimate of stream time);
        their open actions end first, when each body was last seen."""
        gone = [
            b for b, s in self._bodies.items() if now - s.last_seen > self.config.idle_timeout_s
        ]
        return self._evict(gone, now)

    def evict_all(self) -> list[ActionEnded | Eviction]:
        """Every body has left (the tracker said so): evict them all, keep the stream."""
        return self._evict(list(self._bodies), self._latest)

    def _evict(self, gone: list[BodyId], now: float) -> list[ActionEnded | Eviction]:
        out: list[ActionEnded | Eviction] = []
        for body_id in gone:
            body = self._bodies[body_id]
            # its own actions end, and a pair's action ends when either of its bodies leaves
            closing = [
                (name, track)
                for other in self._bodies.values()
                for name, track in other.tracks.items()
                if other is body or body_id in track.bodies
            ]
            for name, track in closing:
                out.extend(self._close(self._models[name], track, body.last_seen, now))
        for body_id in gone:
            out.append(Eviction(body_id, self._bodies.pop(body_id).last_seen, now))
        self.stats.evictions += len(gone)
        return out

    def complete(
        self, request: WindowRequest, logits: NDArray[np.floating]
    ) -> list[Prediction | ActionEvent]:
        """Turn the model's logits for ``request`` into the body's (smoothed) prediction and,
        for a two-person window, the same prediction for its partner (one decision per pair),
        then into the actions that started or ended. In ``events`` mode only the latter."""
        body = self._bodies.get(request.body)
        model = self._models.get(request.model or self.models[0])
        if body is None or model is None or request.card.labels != model.card.labels:
            return []  # evicted meanwhile, or the model changed its labels under it
        labels = model.card.labels
        track = body.tracks[model.name]
        probs = softmax(np.asarray(logits).reshape(-1))
        raw = int(np.argmax(probs))
        none = model.none
        if none is not None and self.config.decision == "off":
            probs[none] = 0.0  # today's behaviour: every window shows an action
            probs /= probs.sum()
            raw = int(np.argmax(probs))
        smoothed, candidate, _ = track.smoother.update(probs)
        shown = candidate
        threshold = self.decision_threshold(model.name)
        if none is not None and threshold is not None:
            gated = shown_label(smoothed, labels, model.card.none_label, threshold)
            shown = candidate if gated == candidate else none
        changed = track.shown is not None and shown != track.shown
        track.shown = shown
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
            model=model.name,
        )
        predictions = [prediction]
        actions: list[ActionEvent] = []
        partner = self._bodies.get(request.partner) if request.partner is not None else None
        if partner is not None:
            other = partner.tracks[model.name]
            # the pair's decisions are the first-tracked body's: an action the partner had
            # alone ends where the pair's window takes over
            actions.extend(self._close(model, other, request.end, request.end))
            partner_changed = other.shown is not None and shown != other.shown
            other.shown = shown
            self.stats.predictions += 1
            predictions.append(
                replace(
                    prediction,
                    body=request.partner,
                    partner=request.body,
                    changed=partner_changed,
                )
            )
        if track.segmenter is not None:
            bodies = (request.body,) if request.partner is None else (request.body, request.partner)
            actions.extend(
                self._segment(model, track, bodies, request.end, shown, float(smoothed[shown]))
            )
        if self.config.mode == "events":
            return list(actions)
        return [*predictions, *actions]

    def finish(
        self, request: WindowRequest, logits: NDArray[np.floating]
    ) -> list[Prediction | ActionEvent] | list[WindowFailed]:
        """``complete`` for finite logits; a :class:`WindowFailed` (counted) for the others,
        which would otherwise turn into NaN probabilities shown as a label. Either way the
        body may have its next window."""
        self.abandon(request)
        row = np.asarray(logits)
        if not np.isfinite(row).all():
            self.stats.windows_failed += 1
            failed = WindowFailed(
                request.body,
                request.start,
                request.end,
                "the model's output is not finite for this window: its coordinates are too "
                "large (check units_scale)",
                request.model,
            )
            return [failed]
        return self.complete(request, row)

    def due_now(self) -> list[WindowRequest]:
        """The windows due now: of bodies whose strides passed while their previous window
        was being answered (a transport asks after every answer, so the last frames of a
        burst are answered too)."""
        return [
            req
            for body_id in list(self._bodies)
            for model in self._models.values()
            if (req := self._due(body_id, model)) is not None
        ]

    def abandon(self, request: WindowRequest) -> None:
        """``request`` will get no answer (the transport failed to run it): its body may have
        its next window."""
        body = self._bodies.get(request.body)
        track = body.tracks.get(request.model or self.models[0]) if body is not None else None
        if track is not None:
            track.in_flight = False

    def process(self, frame: Frame, infer: InferFn | Mapping[str, InferFn]) -> list[StreamEvent]:
        """``add_frame``, one batched ``infer`` call per model for the due windows, ``finish``.
        ``infer``: one function for a one-model stream, else one per model name."""
        update = self.add_frame(frame)
        events = list(update.events)
        for name in self._models:
            due = [req for req in update.due if req.model == name]
            if not due:
                continue
            run = infer[name] if isinstance(infer, Mapping) else infer
            logits = run(np.stack([req.window for req in due]))
            for req, row in zip(due, logits, strict=True):
                events.extend(self.finish(req, row))
        return events

    # -- internals ----------------------------------------------------------------------------
    def _track(self, model: _Model, opened: float) -> _Track:
        """A new track of ``model`` for a body that came into view at ``opened``."""
        none = model.none
        segmenter = (
            ActionSegmenter(
                none,
                self.config.event_min_s,
                self.start_lag_s(model.name),
                opened,
                self.end_lag_s(model.name),
            )
            if none is not None and self.config.decision == "card"
            else None
        )
        return _Track(LabelSmoother(self.config.smoothing, self.config.hysteresis), segmenter)

    def _segment(
        self,
        model: _Model,
        track: _Track,
        bodies: tuple[BodyId, ...],
        t: float,
        shown: int,
        probability: float,
    ) -> list[ActionEvent]:
        assert track.segmenter is not None
        out: list[ActionEvent] = []
        labels = model.card.labels
        for change in track.segmenter.update(t, shown, probability):
            if isinstance(change, Ended):
                out.append(self._ended(model, track, change, t))
            else:
                track.bodies = bodies
                self.stats.actions_started += 1
                out.append(
                    ActionStarted(
                        model.name, bodies, labels[change.label], change.start, change.confidence, t
                    )
                )
        return out

    def _close(self, model: _Model, track: _Track, end: float, now: float) -> list[ActionEnded]:
        if track.segmenter is None:
            return []
        ended = track.segmenter.close(end)
        return [] if ended is None else [self._ended(model, track, ended, now)]

    def _ended(self, model: _Model, track: _Track, change: Ended, now: float) -> ActionEnded:
        self.stats.actions_ended += 1
        return ActionEnded(
            model.name,
            track.bodies,
            model.card.labels[change.label],
            change.start,
            change.end,
            change.confidence,
            now,
        )

    def _capacity(self) -> int:
        # Room for the window at up to 4x the announced frame rate, within the stream's share
        # of the budget; older frames fall off.
        wanted = max(8, int(math.ceil(self.window_s * self.config.fps * 4)) + 2)
        return min(wanted, self.budget.max_buffered_frames // self.config.max_bodies)

    def _drop_body(self, t: float, body_id: BodyId, reason: DropReason) -> FrameDropped:
        self.stats.bodies_dropped[reason] += 1
        return FrameDropped(t, reason, body=body_id)

    def _gap_limit(self) -> float:
        # Beyond this gap every buffered frame is out of the window and every body idle.
        return max(self.window_s, self.config.idle_timeout_s)

    def _ahead_limit(self) -> float:
        """How far ahead of the stream's clock a frame may be: the wall time that passed since
        the clock last moved (a camera paused that long), plus the gap limit."""
        return self._gap_limit() + max(0.0, self._clock() - self._latest_at)

    def _gap(self, t: float) -> Literal["too_late", "too_early"] | None:
        if not math.isfinite(self._latest):
            return None
        if t < self._latest - self.window_s:
            return "too_late"
        if t > self._latest + self._ahead_limit():
            return "too_early"
        return None

    def _gap_detail(self, t: float) -> str:
        if t < self._latest:
            return f"{self._latest - t:.3f} s older than the newest frame"
        return (
            f"{t - self._latest:.3g} s ahead of the newest frame, more than the "
            f"{self._ahead_limit():.3g} s that could have passed; {_JUMP_CONFIRM} consistent "
            "frames move the clock"
        )

    def _jump_confirmed(self, t: float) -> bool:
        """Note a frame beyond the gap; True once enough consistent ones make it a jump."""
        if self._jump and not (0 < t - self._jump[-1] <= self._gap_limit()):
            self._jump.clear()  # not the same new timeline: start counting again
        self._jump.append(t)
        return len(self._jump) >= _JUMP_CONFIRM

    def _jump_clock(self, t: float) -> list[StreamEvent]:
        previous = self._latest
        events: list[StreamEvent] = list(self.evict_all())
        events.append(ClockJump(previous, t))
        self.stats.clock_jumps += 1
        self._latest = self._latest_at = -math.inf
        self._jump.clear()
        return events

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

    def _take_window_token(self) -> bool:
        rate = self.budget.max_windows_per_s
        if math.isinf(rate):
            return True
        now = self._clock()
        burst = max(1.0, min(rate, float(self.config.max_bodies)))
        self._tokens = min(burst, self._tokens + (now - self._tokens_at) * rate)
        self._tokens_at = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True

    def _due(self, body_id: BodyId, model: _Model) -> WindowRequest | None:
        body = self._bodies[body_id]
        track = body.tracks[model.name]
        card, span = model.card, model.window_s
        if track.new_frames < self.config.stride or track.in_flight:
            # a body with a window still being answered waits for that answer: under load
            # its next window is taken from the freshest frames, not from a backlog
            return None
        partner = self._partner(body_id) if card.window.persons > 1 else None
        if partner is not None and self._bodies[partner].order < body.order:
            # the pair's window is built for its first-tracked body and reported for both
            track.new_frames = 0
            return None
        # How many grid frames the window would have, from its two ends alone: a body whose
        # window is still too short costs nothing per frame.
        end = body.times[-1]
        first = max(body.times[0], end - span)
        if math.floor((end - first) * card.fps + 1e-6) + 1 < self.config.min_frames:
            return None
        if not self._take_window_token():
            self.stats.windows_deferred += 1
            return None  # still due: the next frame of this body tries again
        times = np.fromiter(body.times, dtype=np.float64, count=len(body.times))
        frames, start = resample_to_grid(times, np.stack(body.joints), card.fps, span)
        if len(frames) < self.config.min_frames:
            return None
        if track.windows:  # the frames before the first window are no skipped strides
            self.stats.windows_skipped += track.new_frames // self.config.stride - 1
        track.windows += 1
        track.new_frames = 0
        persons = frames[None]
        if partner is not None:
            other = self._bodies[partner]
            grid = start + np.arange(len(frames), dtype=np.float64) / card.fps
            second = sample_at(np.asarray(other.times), np.stack(other.joints), grid)
            # the first-tracked body of a pair is the window's first person, as in training
            # (a dataset's first skeleton is the first one tracked)
            pair = (frames, second) if body.order < other.order else (second, frames)
            persons = np.stack(pair)
        try:
            window = model_window(
                persons,
                self.config.layout,
                card,
                units_scale=self.config.units_scale,
                where=f"body {body_id!r}",
            )
        except (ClipError, LayoutError):
            return None  # nothing but all-zero joints in the window: nothing to classify
        track.in_flight = True
        return WindowRequest(
            body_id, window, start, float(times[-1]), len(frames), card, partner, model.name
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
    """A thread-safe FIFO of frames holding at most ``capacity``: under overload the oldest
    frame makes room (the freshest frames are the ones worth classifying).

    For transports whose producer runs on another thread (a ROS 2 subscription callback); the
    consumer gets the dropped frames from ``drain`` and counts them in its :class:`StreamCore`.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.dropped = 0  # in total
        self._undrained_drops: list[float] = []
        self._items: deque[Frame] = deque()
        self._lock = threading.Lock()

    def offer(self, frame: Frame) -> bool:
        """Queue ``frame``; False when the oldest queued frame had to go for it."""
        with self._lock:
            full = len(self._items) >= self.capacity
            if full:
                self._undrained_drops.append(self._items.popleft().timestamp)
                self.dropped += 1
            self._items.append(frame)
            return not full

    def drain(self) -> tuple[list[Frame], list[float]]:
        """The queued frames, and the timestamps of those dropped since the last drain."""
        with self._lock:
            items, drops = list(self._items), self._undrained_drops
            self._items.clear()
            self._undrained_drops = []
            return items, drops

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
