"""Streams made of trimmed clips: the clips of one dataset, each followed by a gap of background
recordings of another (people waiting, walking back into place, in no action), so that a model
of trimmed gestures can be trained and scored on what a live camera sends. The dataset
``spliced`` of the registry.

Each split keeps to its own side: training clips are spliced between background of the
background dataset's training videos, test clips between background of its test videos. The
background is its videos' first person, mapped onto the clips' joint layout and camera axes
(skeleton.layouts.convert), cut from frames that lie in no instance and show that person
throughout (streams.background_starts).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from skeleton.layouts import LayoutError, convert
from training.data.errors import DatasetError
from training.data.streams import Interval, Stream, StreamDataset, background_starts
from training.data.types import Sample, SkeletonDataset


def background_gaps(
    videos: Sequence[Stream],
    video_layout: str,
    layout: str,
    persons: int,
    lengths: Sequence[int],
    seed: int,
) -> list[NDArray[np.float32]]:
    """One piece of background per entry of ``lengths`` (frames), ``(persons, length, V, 3)``
    on ``layout``: pieces of the longest length cut from ``videos``, shuffled with ``seed``,
    used in turn (again from the first when there are fewer pieces than gaps) and each cut to
    its length."""
    longest = max(lengths)
    pieces = [(video, start) for video in videos for start in background_starts(video, longest)]
    if not pieces:
        raise DatasetError(f"no {longest}-frame background piece in {len(videos)} videos")
    order = np.random.default_rng(seed).permutation(len(pieces))
    gaps = []
    for i, length in enumerate(lengths):
        video, start = pieces[order[i % len(pieces)]]
        first = video.data[:1, start : start + length]
        try:
            mapped = convert(first, video_layout, layout)
        except LayoutError as err:
            raise DatasetError(
                f"background of {video.name} cannot join {layout} clips: {err}"
            ) from None
        gaps.append(np.pad(mapped, ((0, persons - 1), (0, 0), (0, 0), (0, 0))))
    return gaps


def splice(
    clips: Sequence[Sample],
    gaps: Sequence[NDArray[np.float32]],
    per_stream: int,
    name: str,
) -> list[Stream]:
    """Streams of ``per_stream`` consecutive clips, clip i between ``gaps[i]`` and
    ``gaps[i + 1]`` (``len(clips) + 1`` pieces: a stream's first gap is the last of the stream
    before it); every clip is one instance of its label."""
    if len(gaps) != len(clips) + 1:
        raise ValueError(f"{len(clips)} clips need {len(clips) + 1} gaps, got {len(gaps)}")
    streams = []
    for first in range(0, len(clips), per_stream):
        parts = [gaps[first]]
        instances, at = [], parts[0].shape[1]
        for i, sample in enumerate(clips[first : first + per_stream], start=first):
            frames = sample.data.shape[1]
            instances.append(Interval(sample.label, at, at + frames))
            parts += [sample.data, gaps[i + 1]]
            at += frames + gaps[i + 1].shape[1]
        data = np.ascontiguousarray(np.concatenate(parts, axis=1), dtype=np.float32)
        streams.append(Stream(f"{name}-{first // per_stream}", data, tuple(instances)))
    return streams


def interleaved(clips: Sequence[Sample], seed: int) -> list[Sample]:
    """``clips`` in rounds, each round one clip of every class (its classes in random order),
    the clips of a class taken in random order: a stream of as many clips as there are classes
    then holds each class once, like a session in which any gesture may come next, and holding
    out a few streams (a calibration split) takes a few clips of every class, never most clips of
    a few."""
    rng = np.random.default_rng(seed + 2)
    order = rng.permutation(len(clips))
    seen: dict[int, int] = {}
    rounds = []  # how many clips of its class come before it in ``order``
    for i in order:
        rounds.append(seen.get(clips[i].label, 0))
        seen[clips[i].label] = rounds[-1] + 1
    # by round, and within a round in random order
    return [clips[order[j]] for j in np.lexsort((rng.random(len(clips)), np.array(rounds)))]


def gap_lengths(
    count: int, gap_s: float | str | Sequence[float], fps: float, seed: int
) -> list[int]:
    """``count`` gap lengths in frames: ``gap_s`` seconds each, or drawn uniformly from the
    range ``[low, high]`` it gives (a list, or from the command line "4" or "1,5")."""
    try:
        if isinstance(gap_s, str):
            gap_s = [float(v) for v in gap_s.strip("[]() ").split(",")]
        bounds = [float(gap_s)] if isinstance(gap_s, int | float) else [float(v) for v in gap_s]
    except (TypeError, ValueError):
        bounds = []
    if len(bounds) == 1:
        bounds *= 2
    if len(bounds) != 2 or not 0 < bounds[0] <= bounds[1]:
        raise DatasetError(f"gap_s must be seconds > 0 or a range [low, high]; got {gap_s!r}")
    low, high = bounds
    if low == high:
        return [round(low * fps)] * count
    drawn = np.random.default_rng(seed + 1).uniform(low, high, size=count)
    return [round(s * fps) for s in drawn]


def load_spliced_streams(
    root: Path,
    benchmark: str | None,
    clips: str = "utd-mhad",
    background: str = "pku-mmd",
    background_benchmark: str = "xsub",
    gap_s: float | str | Sequence[float] = 4.0,
    per_stream: int | str = 27,
    seed: int | str = 0,
) -> StreamDataset:
    """``clips``'s trimmed clips (under ``benchmark``) spliced between ``background``'s
    background; ``root`` is the folder both datasets live in (the data root)."""
    from training.data.registry import DATASETS, load_dataset, load_streams

    try:
        per_stream, seed = int(per_stream), int(seed)
    except ValueError:
        raise DatasetError(
            f"per_stream {per_stream!r} and seed {seed!r} must be integers"
        ) from None
    if per_stream < 1:
        raise DatasetError(f"per_stream must be at least 1, got {per_stream}")
    roots = {}
    for name, split in ((clips, benchmark), (background, background_benchmark)):
        entry = DATASETS.get(name)
        if entry is None or entry.default_root is None:
            raise DatasetError(
                f"spliced streams need a dataset with a place under {root}: {name!r}"
            )
        roots[name] = entry.default_root(root, split or "", {})
    trimmed = load_dataset(clips, roots[clips], benchmark)
    videos = load_streams(background, roots[background], background_benchmark)
    return spliced_streams(trimmed, videos, gap_s=gap_s, per_stream=per_stream, seed=seed)


def spliced_streams(
    trimmed: SkeletonDataset,
    videos: StreamDataset,
    *,
    gap_s: float | str | Sequence[float],
    per_stream: int,
    seed: int,
) -> StreamDataset:
    """``trimmed``'s clips spliced between the background of ``videos``, split by split, in
    the order ``interleaved`` gives."""
    fps = trimmed.fps or 30.0
    if abs(videos.fps - fps) > 1e-6:
        raise DatasetError(
            f"{trimmed.name} is recorded at {fps} fps and {videos.name} at {videos.fps}: spliced "
            "streams need one frame rate"
        )
    persons = max(s.data.shape[0] for s in trimmed.samples)

    def streams(samples: list[Sample], background_videos: list[Stream], part: str) -> list[Stream]:
        if not samples:
            return []
        lengths = gap_lengths(len(samples) + 1, gap_s, fps, seed)
        gaps = background_gaps(
            background_videos, videos.layout, trimmed.layout, persons, lengths, seed
        )
        return splice(interleaved(samples, seed), gaps, per_stream, f"{trimmed.name}-{part}")

    return StreamDataset(
        name=f"{trimmed.name} + {videos.name} background",
        layout=trimmed.layout,
        classes=list(trimmed.classes),
        train=streams(trimmed.train, videos.train, "train"),
        test=streams(trimmed.test, videos.test, "test"),
        fps=fps,
        skipped=list(trimmed.skipped),
        benchmark=trimmed.benchmark,
    )
