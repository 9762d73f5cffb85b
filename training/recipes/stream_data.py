"""Classification on untrimmed recordings: windows cut from streams, labelled causally, with a
"none" class for every frame that shows none of the model's classes.

Training windows are drawn afresh each epoch at random ends over every frame of the training
videos (``background_share`` sets how many end in background); evaluation windows end every
``eval_stride`` frames of the test videos. A share of the training videos is held out from the
gradient (``calibration_share``): the decision rule of the model card is calibrated on them,
so it never sees the test split and is not fitted on windows the model was trained on.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field
from torch.utils.data import Dataset

from skeleton.clip import WindowSpec, training_window
from training.data.streams import (
    Stream,
    StreamDataset,
    WindowEnds,
    causal_labels,
    class_lookup,
    instance_clips,
    usable_ends,
    window_bounds,
)
from training.data.types import Sample, SkeletonDataset

NONE = "none"
# A window is used when the first person shows in at least this many of its frames (a live
# stream starts classifying a body after StreamConfig.min_frames frames; this is far fewer).
MIN_PRESENT_FRAMES = 8


class StreamTraining(BaseModel):
    """How a classification recipe trains on untrimmed recordings (``stream:`` in a recipe)."""

    model_config = ConfigDict(extra="forbid")

    window_s: float = Field(2.0, gt=0)  # seconds of recording per window; the card's stream window
    classes: list[str] | None = None  # dataset classes the model learns; others become none
    tail_frames: int = Field(8, ge=1)  # causal label: the majority of the newest frames
    background_share: float | None = Field(0.5, ge=0.0, le=1.0)  # None: the recordings' own mix
    windows_per_epoch: int = Field(4096, ge=1)
    drop_second_person: float = Field(0.0, ge=0.0, le=1.0)  # training: second person zeroed
    eval_stride: int = Field(15, ge=1)  # frames between evaluation windows
    calibration_share: float = Field(0.1, ge=0.0, lt=1.0)  # training videos held out
    # frames between calibration windows: the streaming benchmark's stride (the service's
    # default, 8, shows fewer flickers at the same threshold)
    calibration_stride: int = Field(4, ge=1)
    false_alarm_rate: float = Field(0.05, gt=0.0, lt=1.0)  # calibration target, per window
    # calibration target per background minute instead (calibrate_per_minute): what a robot
    # feels, a label shown while nothing of the vocabulary happens; wins over false_alarm_rate
    false_alarms_per_min: float | None = Field(None, gt=0.0)
    # also train on the training videos' action instances as whole clips (cropped and resized
    # like trimmed clips), each once per epoch: the model then also knows a clip given whole
    # (REST, the trimmed evaluation), not only the windows a stream cuts
    instance_clips: bool = False


class StreamPretraining(BaseModel):
    """Untrimmed recordings in pre-training (``streams:`` of a pre-training recipe or of one of
    its ``extra_data``): windows cut at random frames of the training videos, labels unused."""

    model_config = ConfigDict(extra="forbid")

    # seconds of recording per window; the window then gets the random crop of data.train_crop
    window_s: float = Field(3.0, gt=0)
    windows_per_epoch: int = Field(2048, ge=1)
    # a window is used when the first person shows in at least this share of its frames: a
    # window of empty room teaches nothing, one that barely shows a person is mostly resampling
    min_present_share: float = Field(0.5, gt=0.0, le=1.0)

    def window_frames(self, fps: float) -> int:
        return max(1, round(self.window_s * fps))

    def min_present(self, fps: float) -> int:
        return max(1, math.ceil(self.min_present_share * self.window_frames(fps)))


@dataclass
class StreamWindows:
    """Everything a classification run needs from a stream dataset."""

    dataset: SkeletonDataset  # classes = model labels; test = evaluation windows
    train_streams: list[Stream]
    calibration_streams: list[Stream]
    lookup: NDArray[np.int64]  # frame label -> model class
    window_frames: int


def split_calibration(
    streams: Sequence[Stream], share: float, seed: int
) -> tuple[list[Stream], list[Stream]]:
    """(training, calibration) videos: a random ``share`` of the videos, at least one when the
    share is positive, is held out."""
    if share <= 0.0 or len(streams) < 2:
        return list(streams), []
    count = min(len(streams) - 1, max(1, round(len(streams) * share)))
    held = set(np.random.default_rng(seed).choice(len(streams), size=count, replace=False))
    return (
        [s for i, s in enumerate(streams) if i not in held],
        [s for i, s in enumerate(streams) if i in held],
    )


def fixed_windows(
    streams: Sequence[Stream],
    lookup: NDArray[np.int64],
    window_frames: int,
    tail: int,
    stride: int,
    *,
    min_frames: int = 1,
) -> list[Sample]:
    """Windows ending every ``stride`` frames of each stream (views, no copy), labelled with
    the model class of their causal label; windows with fewer than ``min_frames`` frames that
    show the first person are left out."""
    samples: list[Sample] = []
    for stream in streams:
        labels = lookup[causal_labels(stream.frame_labels(), tail)]
        usable = usable_ends(stream, window_frames, min_frames)
        for end in range(min(min_frames, stream.frames) - 1, stream.frames, stride):
            start, stop = window_bounds(end, window_frames)
            window = stream.data[:, start:stop]
            if usable[end]:
                samples.append(
                    Sample(f"{stream.name}@{end}", window, int(labels[end]), stream.subject)
                )
    return samples


def window_ends(samples: Sequence[Sample]) -> list[tuple[str, int]]:
    """(video, last frame) of each window of ``fixed_windows`` (named ``video@end``)."""
    return [(video, int(end)) for video, end in (s.name.rsplit("@", 1) for s in samples)]


def window_videos(samples: Sequence[Sample]) -> NDArray[np.int64]:
    """Which video each window of ``fixed_windows`` was cut from, as an index: windows of one
    video share it."""
    _, video = np.unique([video for video, _ in window_ends(samples)], return_inverse=True)
    return np.asarray(video, dtype=np.int64)


def stream_windows(data: StreamDataset, cfg: StreamTraining, *, seed: int) -> StreamWindows:
    labels, lookup = class_lookup(data.classes, cfg.classes)
    window_frames = max(1, round(cfg.window_s * data.fps))
    train, calibration = split_calibration(data.train, cfg.calibration_share, seed)
    least = min(MIN_PRESENT_FRAMES, window_frames)
    test = fixed_windows(
        data.test, lookup, window_frames, cfg.tail_frames, cfg.eval_stride, min_frames=least
    )
    summary = fixed_windows(
        train, lookup, window_frames, cfg.tail_frames, window_frames, min_frames=least
    )
    dataset = SkeletonDataset(
        name=data.name,
        layout=data.layout,
        classes=labels,
        train=summary,  # one window per window length: counts only, training redraws
        test=test,
        skipped=list(data.skipped),
        benchmark=data.benchmark,
        fps=data.fps,  # the card's frame rate: a folder of recordings may not be at 30 fps
    )
    return StreamWindows(dataset, train, calibration, lookup, window_frames)


class RandomStreamWindows(Dataset[tuple[torch.Tensor, int]]):
    """Windows of ``window_frames`` recorded frames cut at random ends of the streams, ``count``
    of them, redrawn every epoch, each through the training augmentation of ``spec``.

    A window ends at a frame of one stream and reaches back at most to that stream's first
    frame (streams.window_bounds): it never crosses a video's end nor joins two videos. Ends are
    drawn among the frames whose window shows the first person in at least ``min_present``
    frames. Item ``i`` of epoch ``e`` depends only on ``(seed, e, i)`` (and ``key``, which keeps
    two pools of one run from drawing alike), as in ``SkeletonFeeder``, so a resumed run sees
    the same windows. Items are labelled -1 unless a subclass says otherwise.
    """

    def __init__(
        self,
        streams: Sequence[Stream],
        window_frames: int,
        spec: WindowSpec,
        *,
        count: int,
        min_present: int,
        seed: int = 0,
        background_share: float | None = None,
        tail: int = 1,
        drop_second_person: float = 0.0,
        key: tuple[int, ...] = (),
    ) -> None:
        if not streams:
            raise ValueError("no streams to cut windows from")
        self.streams = list(streams)
        self.window_frames, self.spec, self.seed, self.key = window_frames, spec, seed, key
        self.count, self.background_share = count, background_share
        self.drop_second_person = drop_second_person
        self.ends = WindowEnds.of(
            self.streams, min_frames=min_present, length=window_frames, tail=tail
        )
        if not len(self.ends.pool):
            raise ValueError(
                f"no window of {window_frames} frames in {len(self.streams)} streams shows the "
                f"first person in {min_present} frames"
            )
        self.epoch = 0
        self._ends = self._draw(0)

    def _draw(self, epoch: int) -> list[tuple[int, int]]:
        rng = np.random.default_rng((self.seed, epoch, 2**31, *self.key))
        return self.ends.draw(self.count, rng, self.background_share)

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.epoch, self._ends = epoch, self._draw(epoch)

    def __len__(self) -> int:
        return self.count

    def bounds(self, index: int) -> tuple[int, int, int]:
        """(stream index, first frame, end frame + 1) of item ``index`` this epoch."""
        stream_index, end = self._ends[index]
        return (stream_index, *window_bounds(end, self.window_frames))

    def label(self, stream_index: int, end: int) -> int:
        return -1

    def window(self, index: int) -> tuple[NDArray[np.float32], int]:
        stream_index, start, stop = self.bounds(index)
        stream = self.streams[stream_index]
        raw = stream.data[:, start:stop]
        rng = np.random.default_rng((self.seed, self.epoch, index, *self.key))
        if raw.shape[0] > 1 and rng.random() < self.drop_second_person:
            raw = raw.copy()
            raw[1:] = 0.0
        where = f"{stream.name} frames {start}-{stop}"
        window = training_window(raw, self.spec, rng, where=where)
        return window, self.label(stream_index, stop - 1)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        window, label = self.window(index)
        return torch.from_numpy(np.ascontiguousarray(window)), label


class StreamWindowFeeder(RandomStreamWindows):
    """Training windows of a classification run, labelled with the model class of their causal
    label, ``background_share`` of them ending in background."""

    def __init__(
        self,
        windows: StreamWindows,
        cfg: StreamTraining,
        spec: WindowSpec,
        *,
        seed: int = 0,
    ) -> None:
        self.lookup = windows.lookup
        self.cfg = cfg
        self.labels = [
            lookup_labels(s, self.lookup, cfg.tail_frames) for s in windows.train_streams
        ]
        super().__init__(
            windows.train_streams,
            windows.window_frames,
            spec,
            count=cfg.windows_per_epoch,
            min_present=min(MIN_PRESENT_FRAMES, windows.window_frames),
            seed=seed,
            background_share=cfg.background_share,
            tail=cfg.tail_frames,
            drop_second_person=cfg.drop_second_person,
        )

    def label(self, stream_index: int, end: int) -> int:
        return int(self.labels[stream_index][end])


def instance_samples(windows: StreamWindows) -> list[Sample]:
    """The action instances of the training videos (the calibration videos' left out) as whole
    clips (streams.instance_clips) labelled with their model class."""
    videos = StreamDataset(
        windows.dataset.name, windows.dataset.layout, [], windows.train_streams, []
    )
    return [
        dataclasses.replace(clip, label=int(windows.lookup[clip.label + 1]))
        for clip in instance_clips(videos).train
    ]


def lookup_labels(stream: Stream, lookup: NDArray[np.int64], tail: int) -> NDArray[np.int64]:
    """The model class of the window ending at each frame of ``stream``."""
    out: NDArray[np.int64] = lookup[causal_labels(stream.frame_labels(), tail)]
    return out


def false_alarm_runs(
    shown: NDArray[np.integer], labels: NDArray[np.integer], video: NDArray[np.integer], none: int
) -> int:
    """Runs of consecutive windows of one video showing one action in which no window is
    labelled that action: the windows' false alarms, as the streaming benchmark counts shown
    segments that overlap no instance of their class."""
    starts = np.flatnonzero(np.r_[True, (shown[1:] != shown[:-1]) | (video[1:] != video[:-1])])
    hits = np.add.reduceat((labels == shown).astype(np.int64), starts) > 0
    return int(((shown[starts] != none) & ~hits).sum())


def shown_labels(probs: NDArray[np.floating], none: int, threshold: float) -> NDArray[np.int64]:
    """The label each row of ``probs`` shows under the card's rule (skeleton.card.shown_label):
    its top class when that is not ``none`` and reaches ``threshold``, else ``none``."""
    probs = np.asarray(probs, np.float64)
    top, confidence = probs.argmax(axis=1), probs.max(axis=1)
    return np.where((top != none) & (confidence >= threshold), top, none)


def lowest_threshold(
    probs: NDArray[np.floating],
    labels: NDArray[np.integer],
    none: int,
    rate_of: Callable[[NDArray[np.int64]], float],
    target: float,
) -> dict[str, Any]:
    """The card's decision rule: show the top class when it is not ``none`` and its probability
    reaches ``threshold``, else ``none``; the threshold is the lowest on a 0.01 grid at which
    ``rate_of(shown labels) <= target`` (the grid ends above 1, where nothing is shown). The
    rule's recall on action windows at it is recorded beside."""
    labels = np.asarray(labels)
    for threshold in np.round(np.arange(0.0, 1.0101, 0.01), 2):
        shown = shown_labels(probs, none, threshold)
        rate = rate_of(shown)
        if rate <= target:
            break
    action = labels != none
    recall = float((shown == labels)[action].mean()) if action.any() else 0.0
    return {
        "rule": "top_probability",
        "threshold": float(threshold),
        "rate": rate,
        "action_window_recall": recall,
        "calibration_windows": int(len(labels)),
    }


def calibrate_per_minute(
    probs: NDArray[np.floating],
    labels: NDArray[np.integer],
    video: NDArray[np.integer],
    none: int,
    false_alarms_per_min: float,
    window_s: float,
) -> dict[str, Any]:
    """``lowest_threshold`` at which the windows (in order, one every ``window_s`` seconds of
    ``video``) show at most ``false_alarms_per_min`` false alarms (``false_alarm_runs``) per
    minute of background windows. Unsmoothed: the service's smoothing and hysteresis only merge
    flickers."""
    labels, video = np.asarray(labels), np.asarray(video)
    minutes = float((labels == none).sum()) * window_s / 60.0

    def per_minute(shown: NDArray[np.int64]) -> float:
        return false_alarm_runs(shown, labels, video, none) / minutes if minutes > 0 else 0.0

    rule = lowest_threshold(probs, labels, none, per_minute, false_alarms_per_min)
    rate = rule.pop("rate")
    return {
        **rule,
        "background_false_alarms_per_min": rate,
        "target_false_alarms_per_min": false_alarms_per_min,
        "calibration_background_minutes": round(minutes, 2),
    }


def stream_lags(
    probs: NDArray[np.floating],
    threshold: float,
    none: int,
    ends: Sequence[tuple[str, int]],
    streams: Sequence[Stream],
    lookup: NDArray[np.int64],
    fps: float,
) -> dict[str, Any]:
    """How late a stream shows an action under the rule, and how late it stops. For each
    instance of a model class in ``streams``: seconds from its first frame to the end frame of
    the first window (``ends``: the (video, last frame) of each row of ``probs``) inside it
    that shows its class; the median over the instances shown (``start_lag_s``, what a
    stream's action_started subtracts from the time it first showed the label), and the share
    never shown. For each instance shown, seconds from the frame after its last to the end
    frame of the first window of the last run of windows not showing it that covers that
    frame (negative when the run began inside the instance); the median, at least 0
    (``end_lag_s``, what an action_ended subtracts from the time the label stopped being
    shown), over the instances a later window stops showing. Unsmoothed, like the threshold:
    a stream's smoothing adds a stride or two."""
    shown = shown_labels(probs, none, threshold)
    by_video: dict[str, list[tuple[int, int]]] = {}
    for (video, end), label in zip(ends, shown, strict=True):
        by_video.setdefault(video, []).append((end, int(label)))
    lags, end_lags, missed = [], [], 0
    for stream in streams:
        windows = sorted(by_video.get(stream.name, []))
        for instance in stream.instances:
            label = int(lookup[instance.label + 1])
            if label == none:
                continue
            hits = [end for end, lab in windows
                    if instance.start <= end < instance.end and lab == label]  # fmt: skip
            if not hits:
                missed += 1
                continue
            lags.append((min(hits) - instance.start) / fps)
            after = next((i for i, (end, lab) in enumerate(windows)
                          if end >= instance.end and lab != label), None)  # fmt: skip
            if after is None:
                continue  # shown until the video ends
            first = after
            while windows[first - 1][1] != label:  # stops at the latest window that shows it
                first -= 1
            end_lags.append((windows[first][0] - instance.end) / fps)
    count = len(lags) + missed
    return {
        "start_lag_s": round(float(np.median(lags)), 3) if lags else 0.0,
        "start_lag_instances": count,
        "start_lag_missed_share": missed / count if count else 0.0,
        "end_lag_s": round(max(float(np.median(end_lags)), 0.0), 3) if end_lags else 0.0,
        "end_lag_instances": len(end_lags),
    }


def calibrate_threshold(
    probs: NDArray[np.floating], labels: NDArray[np.integer], none: int, false_alarm_rate: float
) -> dict[str, Any]:
    """``lowest_threshold`` at which at most ``false_alarm_rate`` of the background windows
    (label ``none``) would show an action."""
    background = np.asarray(labels) == none

    def share(shown: NDArray[np.int64]) -> float:
        return float((shown != none)[background].mean()) if background.any() else 0.0

    rule = lowest_threshold(probs, labels, none, share, false_alarm_rate)
    rate = rule.pop("rate")
    return {
        **rule,
        "background_window_false_alarm_rate": rate,
        "target_false_alarm_rate": false_alarm_rate,
        "calibration_background_windows": int(background.sum()),
    }
