"""Untrimmed recordings: whole videos as streams with per-frame labels, and the causal windows
cut from them for training with a "none" class (what a robot's camera sends, not a pre-cut clip).

A stream's frame labels are 0 for "none of the dataset's classes" and ``k + 1`` for class ``k``.
A window ending at frame ``t`` holds frames ``[t - length + 1, t]`` and is labelled causally, by
what its newest frames show: the label held by most of its last ``tail`` frames, ties going to
the newest frame's label. ``tail = 1`` labels by the newest frame alone.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from skeleton.layouts import get_layout
from training.data.types import UNKNOWN_SUBJECT, Sample, SkeletonDataset, SkippedSample

log = logging.getLogger("training.data")

NONE_LABEL = 0  # frame label of frames in no instance


@dataclass(frozen=True)
class Interval:
    """Frames ``[start, end)`` show class ``label`` (0-based); ``line`` of its label file."""

    label: int
    start: int
    end: int
    line: int | None = None


@dataclass(frozen=True, eq=False)
class Stream:
    """One untrimmed recording: ``data`` float32 ``(M, T, V, 3)`` and its action instances."""

    name: str
    data: NDArray[np.float32]
    instances: tuple[Interval, ...]
    view: int | None = None
    subject: int = UNKNOWN_SUBJECT

    @property
    def frames(self) -> int:
        return int(self.data.shape[1])

    def frame_labels(self) -> NDArray[np.int16]:
        """``(T,)``: 0 where no instance is, ``label + 1`` inside an instance."""
        labels = np.zeros(self.frames, dtype=np.int16)
        for instance in self.instances:
            labels[instance.start : instance.end] = instance.label + 1
        return labels


@dataclass
class StreamDataset:
    """Streams of one dataset under one benchmark."""

    name: str
    layout: str
    classes: list[str]
    train: list[Stream]
    test: list[Stream]
    fps: float = 30.0
    skipped: list[SkippedSample] = field(default_factory=list)
    benchmark: str = ""

    @property
    def streams(self) -> list[Stream]:
        return self.train + self.test

    def stats(self) -> dict[str, Any]:
        """What a user checks a download against: videos, frames, background share, instances
        per class and split sizes."""
        frames = sum(s.frames for s in self.streams)
        background = sum(int((s.frame_labels() == NONE_LABEL).sum()) for s in self.streams)
        per_class = Counter(i.label for s in self.streams for i in s.instances)
        return {
            "name": self.name,
            "layout": self.layout,
            "benchmark": self.benchmark,
            "videos": len(self.streams),
            "train_videos": len(self.train),
            "test_videos": len(self.test),
            "frames": frames,
            "hours": round(frames / self.fps / 3600, 2),
            "background_share": round(background / frames, 4) if frames else 0.0,
            "instances": sum(per_class.values()),
            "train_instances": sum(len(s.instances) for s in self.train),
            "test_instances": sum(len(s.instances) for s in self.test),
            "instances_per_class": {self.classes[k]: n for k, n in sorted(per_class.items())},
            "joints": get_layout(self.layout).num_joints,
            "persons": max((s.data.shape[0] for s in self.streams), default=0),
            "skipped": len(self.skipped),
        }


def instance_clips(
    data: StreamDataset,
    *,
    frames: int | None = None,
    label_file: Callable[[Stream], str] = lambda stream: "label",
) -> SkeletonDataset:
    """The action instances of the streams as trimmed clips, named ``<recording>_<n>`` in
    label-file order: their own frames, or cut or zero-padded to ``frames``. An instance in
    which nobody shows is logged and listed in ``skipped`` (``label_file`` names where its line
    is)."""
    skipped = list(data.skipped)

    def clips(streams: list[Stream]) -> list[Sample]:
        samples = []
        for stream in streams:
            for index, interval in enumerate(sorted(stream.instances, key=lambda i: i.line or 0)):
                name = f"{stream.name}_{index}"
                clip = stream.data[:, interval.start : interval.end]
                if frames is not None:
                    clip = clip[:, :frames]
                    clip = np.pad(clip, ((0, 0), (0, frames - clip.shape[1]), (0, 0), (0, 0)))
                if not clip.any():
                    reason = (
                        f"all-zero instance (frames {interval.start}-{interval.end} of "
                        f"{stream.frames}, {label_file(stream)} line {interval.line})"
                    )
                    log.warning("skipping %s: %s", name, reason)
                    skipped.append(SkippedSample(name, reason))
                    continue
                clip = np.ascontiguousarray(clip)
                samples.append(Sample(name, clip, interval.label, stream.subject, stream.view))
        return samples

    return SkeletonDataset(
        name=data.name,
        layout=data.layout,
        classes=list(data.classes),
        train=clips(data.train),
        test=clips(data.test),
        skipped=skipped,
        benchmark=data.benchmark,
        fps=data.fps,
    )


def class_lookup(classes: Sequence[str], keep: Sequence[str] | None) -> tuple[list[str], Any]:
    """The model's labels and a table from frame label to model class.

    ``keep`` names the dataset classes the model learns (all when None); every other frame,
    background or a class not kept, becomes the last model class, ``"none"``.
    """
    kept = list(classes) if keep is None else list(keep)
    unknown = [name for name in kept if name not in classes]
    if unknown:
        raise ValueError(f"classes {unknown} are not classes of the dataset ({list(classes)})")
    none = len(kept)
    table = np.full(len(classes) + 1, none, dtype=np.int64)
    for index, name in enumerate(kept):
        table[classes.index(name) + 1] = index
    return [*kept, "none"], table


def causal_labels(frame_labels: NDArray[np.integer], tail: int) -> NDArray[np.int64]:
    """``(T,)``: the label of the window ending at each frame, the most common among its last
    ``tail`` frames (fewer at the stream's start), ties broken in favour of the newest frame's
    label, then of the larger label."""
    if tail < 1:
        raise ValueError(f"tail must be >= 1, got {tail}")
    labels = np.asarray(frame_labels, dtype=np.int64)
    if tail == 1 or labels.size == 0:
        return labels.copy()
    values, index = np.unique(labels, return_inverse=True)
    onehot = np.zeros((labels.size + 1, values.size), dtype=np.int64)
    onehot[np.arange(1, labels.size + 1), index] = 1
    running = np.cumsum(onehot, axis=0)
    ends = np.arange(1, labels.size + 1)
    counts = running[ends] - running[np.maximum(ends - tail, 0)]  # (T, classes)
    best = counts.max(axis=1)
    newest_count = counts[np.arange(labels.size), index]
    # the largest label among the most common; the newest frame's wins a tie
    largest = values.size - 1 - np.argmax((counts == best[:, None])[:, ::-1], axis=1)
    winner = np.where(newest_count == best, index, largest)
    out: NDArray[np.int64] = values[winner]
    return out


def window_bounds(end: int, length: int) -> tuple[int, int]:
    """Frames ``[start, end + 1)`` of the window of ``length`` frames ending at ``end``; it
    never reaches before the stream's first frame."""
    return max(0, end - length + 1), end + 1


def usable_ends(stream: Stream, length: int, min_present: int) -> NDArray[np.bool_]:
    """``(T,)``: True where the window of ``length`` frames ending there shows the first person
    in at least ``min_present`` frames (windows are placed on that person, as a live stream's
    are on the body it classifies)."""
    present = (stream.data[0] != 0).any(axis=(1, 2))
    running = np.concatenate([[0], np.cumsum(present)])
    ends = np.arange(stream.frames)
    starts = np.maximum(0, ends - length + 1)
    out: NDArray[np.bool_] = (running[ends + 1] - running[starts]) >= max(1, min_present)
    return out


def background_starts(stream: Stream, length: int) -> list[int]:
    """Starts of non-overlapping pieces of ``length`` frames, taken greedily from the start,
    that lie in no instance and show the first person in every frame: in every run of such
    frames, one piece after another from the run's first frame."""
    free = (stream.frame_labels() == NONE_LABEL) & (stream.data[0] != 0).any(axis=(1, 2))
    edges = np.flatnonzero(np.diff(np.concatenate([[0], free.astype(np.int8), [0]])))
    starts: list[int] = []
    for first, end in zip(edges[::2], edges[1::2], strict=True):
        starts.extend(range(int(first), int(end) - length + 1, length))
    return starts


@dataclass(frozen=True)
class WindowEnds:
    """Every ``(stream index, end frame)`` a training window may end at, and which of them end
    in an action: worked out once, drawn from every epoch."""

    pool: NDArray[np.int64]  # (n, 2)
    is_action: NDArray[np.bool_]

    @classmethod
    def of(
        cls, streams: Sequence[Stream], *, min_frames: int, length: int | None = None, tail: int = 1
    ) -> WindowEnds:
        """The ends over every frame of ``streams`` whose window (of ``length`` frames, when
        given) holds at least ``min_frames`` frames that show the first person."""
        ends: list[NDArray[np.int64]] = []
        kinds: list[NDArray[np.bool_]] = []
        for index, stream in enumerate(streams):
            positions = np.arange(min(min_frames, stream.frames) - 1, stream.frames)
            if length is not None:
                positions = positions[usable_ends(stream, length, min_frames)[positions]]
            kinds.append(causal_labels(stream.frame_labels(), tail)[positions] != NONE_LABEL)
            ends.append(np.stack([np.full(positions.size, index), positions], axis=1))
        return cls(np.concatenate(ends), np.concatenate(kinds))

    def draw(
        self, count: int, rng: np.random.Generator, background_share: float | None = None
    ) -> list[tuple[int, int]]:
        """``count`` random ends. ``background_share`` None draws uniformly over frames (the
        recordings' own mix); a share ``b`` draws a background end (causal label 0) with
        probability ``b`` and an action end otherwise, each uniformly among ends of that kind.
        """
        if background_share is None:
            chosen = rng.integers(0, len(self.pool), size=count)
        else:
            if not 0.0 <= background_share <= 1.0:
                raise ValueError(f"background_share must be in [0, 1], got {background_share}")
            groups = [np.flatnonzero(~self.is_action), np.flatnonzero(self.is_action)]
            background = rng.random(count) < background_share
            chosen = np.empty(count, dtype=np.int64)
            for which, group in ((background, groups[0]), (~background, groups[1])):
                if which.any():
                    if not group.size:
                        raise ValueError("the streams hold no frame of a kind the share asks for")
                    chosen[which] = group[rng.integers(0, group.size, size=int(which.sum()))]
        return [(int(s), int(t)) for s, t in self.pool[chosen]]


def sample_window_ends(
    streams: Sequence[Stream],
    count: int,
    rng: np.random.Generator,
    *,
    min_frames: int,
    length: int | None = None,
    background_share: float | None = None,
    tail: int = 1,
) -> list[tuple[int, int]]:
    """``count`` random window ends of ``streams`` (:class:`WindowEnds`, for one draw)."""
    ends = WindowEnds.of(streams, min_frames=min_frames, length=length, tail=tail)
    return ends.draw(count, rng, background_share)
