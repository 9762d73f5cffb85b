"""Shown labels in, action segments out: when an action starts and when it ends.

One :class:`ActionSegmenter` follows the labels one body (or one pair of bodies) is shown by
one model, window after window. A change of label counts only once the new label has been
shown for ``min_s`` seconds of stream time; then the segment it replaces ends, and the new
one starts, both at the time the new label was first shown. A label shown for less than
``min_s`` before the previous one came back is a flicker: it ends nothing and the segment
goes on. With ``min_s = 0`` every change counts at once, so the segments are exactly the runs
of the shown labels. The none class starts no segment; it ends one.

A stream shows an action some time after it began: its window must first hold enough of it.
With ``lag_s`` (the model card's ``decision.start_lag_s``, measured on its calibration videos)
a segment's reported start is moved that much earlier, an estimate of when the action began;
never before the end of the segment before it, nor before ``opened`` (when the body came into
view). An action stops being shown some time after it ended too: the window still holds it.
With ``end_lag_s`` (the card's ``decision.end_lag_s``) a segment that a label change ends is
reported to end that much before the change, never before its label was first shown (a body
that leaves ends its segment when it was last seen, unmoved). Neither decision is moved: each
is still made when the new label has been shown for ``min_s``.

Knows neither bodies nor transports: :class:`service.stream.StreamCore` owns one per body and
model and turns what it returns into ``action_started`` / ``action_ended`` events.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Started:
    label: int
    start: float  # stream time the label was first shown, less the lag (see above)
    confidence: float  # mean shown probability until now


@dataclass(frozen=True)
class Ended:
    label: int
    start: float
    end: float  # stream time its successor (another label or none) was first shown, less lag
    confidence: float  # mean shown probability over the segment


@dataclass
class _Run:
    label: int
    since: float  # stream time the label was first shown
    probabilities: list[float] = field(default_factory=list)
    start: float = -math.inf  # the start reported: since, less the lag

    @property
    def confidence(self) -> float:
        return math.fsum(self.probabilities) / len(self.probabilities)


class ActionSegmenter:
    def __init__(
        self,
        none: int,
        min_s: float,
        lag_s: float = 0.0,
        opened: float = -math.inf,
        end_lag_s: float = 0.0,
    ) -> None:
        if min_s < 0 or lag_s < 0 or end_lag_s < 0:
            raise ValueError(
                f"min_s, lag_s and end_lag_s must be >= 0, got {min_s}, {lag_s} and {end_lag_s}"
            )
        self.none, self.min_s, self.lag_s, self.end_lag_s = none, min_s, lag_s, end_lag_s
        self._current = _Run(none, opened)
        self._candidate: _Run | None = None
        self._floor = opened  # no start before this: the last action's end, or `opened`

    @property
    def active(self) -> int | None:
        """The label of the open segment; None when none is shown."""
        return None if self._current.label == self.none else self._current.label

    def update(self, t: float, label: int, probability: float) -> list[Started | Ended]:
        """Fold in the label shown at stream time ``t``; return what ended and started."""
        if label == self._current.label:
            self._candidate = None  # a flicker, if any, is over: the segment goes on
            self._current.probabilities.append(probability)
            return []
        if self._candidate is None or self._candidate.label != label:
            self._candidate = _Run(label, t)
        self._candidate.probabilities.append(probability)
        if t - self._candidate.since < self.min_s:
            return []
        new, self._candidate = self._candidate, None
        out: list[Started | Ended] = []
        end = max(new.since - self.end_lag_s, self._current.since)
        if (ended := self._end(end)) is not None:
            out.append(ended)
        self._current = new
        if new.label != self.none:
            new.start = max(new.since - self.lag_s, self._floor)
            out.append(Started(new.label, new.start, new.confidence))
        return out

    def close(self, t: float) -> Ended | None:
        """End the open segment at ``t`` (the body left, or stopped being classified alone)."""
        ended = self._end(t)
        self._current, self._candidate = _Run(self.none, t), None
        self._floor = max(self._floor, t)
        return ended

    def _end(self, t: float) -> Ended | None:
        run = self._current
        if run.label == self.none:
            return None
        self._floor = t
        return Ended(run.label, run.start, t, run.confidence)
