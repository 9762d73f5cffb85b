"""What pre-training trains on, labels unused: the trimmed training clips of the main dataset and
of ``extra_data``, and windows cut from untrimmed training recordings (``streams:``), pooled into
one dataset whose stream windows are drawn afresh every epoch.

Every source goes through the same window preprocessing (the main data section's WindowSpec on
the main dataset's layout); recordings of another layout are mapped onto it first
(skeleton.layouts.convert), once, when they are loaded. Only training videos are cut: the test
split of a recording is never trained on, even without its labels.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import Any

from torch.utils.data import Dataset

from skeleton.clip import WindowSpec
from skeleton.layouts import LayoutError, convert, joint_map
from training.data.feeder import PooledFeeder, SkeletonFeeder
from training.data.streams import Stream, StreamDataset
from training.data.types import Sample, SkeletonDataset
from training.recipes.common import ExtraSource, extra_clips, load_stream_source
from training.recipes.stream_data import RandomStreamWindows, StreamPretraining

log = logging.getLogger(__name__)


def recordings_as_dataset(data: StreamDataset) -> SkeletonDataset:
    """Whole recordings as samples (label -1): what sizes the model (layout, most persons) and
    names the run's data when a recipe pre-trains on a dataset's streams. Views, no copies."""

    def whole(streams: Sequence[Stream]) -> list[Sample]:
        return [Sample(s.name, s.data, -1, s.subject, s.view) for s in streams]

    return SkeletonDataset(
        name=data.name,
        layout=data.layout,
        classes=list(data.classes),
        train=whole(data.train),
        test=whole(data.test),
        skipped=list(data.skipped),
        benchmark=data.benchmark,
        fps=data.fps,
    )


def on_layout(streams: Sequence[Stream], source: str, layout: str, where: str) -> list[Stream]:
    """``streams`` with their joints mapped from ``source`` onto ``layout``; refused, naming
    ``where``, when the joints do not map."""
    if source == layout:
        return list(streams)
    try:
        joint_map(source, layout)
    except LayoutError as err:
        raise ValueError(f"{where} cannot join pre-training: {err}") from err
    return [dataclasses.replace(s, data=convert(s.data, source, layout)) for s in streams]


def stream_windows_of(
    streams: Sequence[Stream],
    cfg: StreamPretraining,
    fps: float,
    window: WindowSpec,
    *,
    seed: int,
    key: int,
    where: str,
) -> RandomStreamWindows:
    if not streams:
        raise ValueError(f"{where} has no training recordings to cut windows from")
    feeder = RandomStreamWindows(
        streams,
        cfg.window_frames(fps),
        window,
        count=cfg.windows_per_epoch,
        min_present=cfg.min_present(fps),
        seed=seed,
        key=(key,),
    )
    frames = sum(s.frames for s in streams)
    log.info("%s: %d windows of %d frames per epoch from %d training videos (%d frames, %d "
             "window ends)", where, cfg.windows_per_epoch, cfg.window_frames(fps), len(streams),
             frames, len(feeder.ends.pool))  # fmt: skip
    return feeder


def pretrain_dataset(
    data: SkeletonDataset,
    main_streams: tuple[StreamDataset, StreamPretraining] | None,
    extra: Sequence[ExtraSource],
    window: WindowSpec,
    *,
    seed: int,
) -> PooledFeeder:
    """The pre-training dataset: ``data``'s training clips, or windows of ``main_streams``'s
    training recordings when given, plus every ``extra`` source (clips or stream windows)."""
    parts: list[Dataset[Any]] = []
    key = 0
    if main_streams is not None:
        streams, cfg = main_streams
        where = f"{streams.name} ({streams.benchmark or 'default split'})"
        parts.append(
            stream_windows_of(
                streams.train, cfg, streams.fps, window, seed=seed, key=key, where=where
            )  # fmt: skip
        )
    clips = [] if main_streams is not None else list(data.train)
    clips += extra_clips([s for s in extra if s.streams is None], data.layout)
    if clips:
        parts.insert(0, SkeletonFeeder(clips, window, train=True, seed=seed))
    for source in extra:
        if source.streams is None:
            continue
        key += 1
        recordings = load_stream_source(source)
        where = f"extra_data {source.dataset!r}"
        train = on_layout(recordings.train, recordings.layout, data.layout, where)
        parts.append(
            stream_windows_of(
                train, source.streams, recordings.fps, window, seed=seed, key=key, where=where
            )  # fmt: skip
        )
    if not parts:
        raise ValueError("nothing to pre-train on")
    return PooledFeeder(parts)
