"""Spliced streams (the dataset ``spliced``): real UTD-MHAD clips between real PKU-MMD
background, each split with its own side's clips and background."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from skeleton.layouts import convert
from training.data.errors import DatasetError
from training.data.registry import load_dataset, load_streams
from training.data.spliced import gap_lengths, interleaved, spliced_streams
from training.data.streams import NONE_LABEL, Stream, StreamDataset
from training.data.types import SkeletonDataset
from training.recipes.stream_data import StreamTraining, instance_samples, stream_windows


@pytest.fixture(scope="module")
def utd(data_root: Path) -> SkeletonDataset:
    return load_dataset("utd-mhad")


@pytest.fixture(scope="module")
def pku(data_root: Path) -> StreamDataset:
    return load_streams("pku-mmd", benchmark="xsub")


@pytest.fixture(scope="module")
def spliced(utd: SkeletonDataset, pku: StreamDataset) -> StreamDataset:
    return spliced_streams(utd, pku, gap_s=[1.0, 5.0], per_stream=27, seed=3)


def instances_in_order(streams: list[Stream]) -> list[tuple[Stream, int, int, int]]:
    return [(s, i.label, i.start, i.end) for s in streams for i in s.instances]


def test_every_clip_is_one_instance_in_order_and_each_split_keeps_its_own(
    spliced: StreamDataset,
) -> None:
    utd = load_dataset("utd-mhad")
    pku = load_streams("pku-mmd", benchmark="xsub")
    sides = ((utd.train, spliced.train, pku.train), (utd.test, spliced.test, pku.test))
    for clips, streams, videos in sides:
        placed = instances_in_order(streams)
        assert len(placed) == len(clips)
        ordered = interleaved(clips, seed=3)
        assert sorted(s.name for s in ordered) == sorted(s.name for s in clips)
        for sample, (stream, label, start, end) in zip(ordered, placed, strict=True):
            assert label == sample.label
            np.testing.assert_array_equal(stream.data[:, start:end], sample.data)
        # the background is the split's own: the first gap of the first stream is a piece of
        # one of that split's PKU-MMD videos (first person, mapped onto utd20)
        stream = streams[0]
        gap = stream.data[0, : stream.instances[0].start]
        assert 30 <= len(gap) <= 150  # 1 to 5 s at 30 fps
        found = False
        for video in videos:
            mapped = convert(video.data[:1], pku.layout, "utd20")[0]
            hits = np.flatnonzero((mapped == gap[0]).all(axis=(1, 2)))
            for at in hits:
                if np.array_equal(mapped[at : at + len(gap)], gap):
                    found = (video.frame_labels()[at : at + len(gap)] == NONE_LABEL).all()
            if found:
                break
        assert found


def test_a_stream_of_as_many_clips_as_classes_holds_every_class_once(
    spliced: StreamDataset, utd: SkeletonDataset
) -> None:
    """So a stream held out for calibration takes a clip of each class, not a few classes' clips
    (UTD-MHAD's training split has 16 clips of each class, 15 of one: the last stream lacks it)."""
    for stream in spliced.train[:-1] + spliced.test[:-1]:
        assert sorted(i.label for i in stream.instances) == list(range(27))
    orders = [[s.name for s in interleaved(utd.train, seed)] for seed in (0, 1)]
    assert orders[0] != orders[1] and sorted(orders[0]) == sorted(orders[1])


def test_gap_lengths_are_fixed_or_drawn_from_the_range() -> None:
    assert gap_lengths(3, 4.0, 30.0, seed=0) == [120, 120, 120]
    drawn = gap_lengths(500, [1.0, 5.0], 30.0, seed=0)
    assert min(drawn) >= 30 and max(drawn) <= 150 and len(set(drawn)) > 50
    assert drawn == gap_lengths(500, [1.0, 5.0], 30.0, seed=0) == gap_lengths(500, "1,5", 30.0, 0)
    with pytest.raises(DatasetError, match="gap_s"):
        gap_lengths(3, [5.0, 1.0], 30.0, seed=0)
    with pytest.raises(DatasetError, match="gap_s"):
        gap_lengths(3, "four", 30.0, seed=0)


def test_a_bad_option_is_a_dataset_error(data_root: Path) -> None:
    with pytest.raises(DatasetError, match="per_stream"):
        load_streams("spliced", per_stream=0)
    with pytest.raises(DatasetError, match="does not take"):
        load_streams("spliced", gap=3)


def test_instance_clips_are_the_training_clips_of_the_streams_trained_on(
    utd: SkeletonDataset, spliced: StreamDataset
) -> None:
    """A stream recipe with instance_clips also trains on every clip of its training videos,
    whole and with its own label, and on none of the videos held out for calibration."""
    cfg = StreamTraining(window_s=64 / 30, calibration_share=0.1, instance_clips=True)
    windows = stream_windows(spliced, cfg, seed=0)
    clips = instance_samples(windows)
    held_out = {i.start for s in windows.calibration_streams for i in s.instances}
    assert windows.calibration_streams and held_out
    expected = [
        sample for sample, (stream, *_) in zip(interleaved(utd.train, seed=3),
                                                instances_in_order(spliced.train), strict=True)
        if stream not in windows.calibration_streams
    ]  # fmt: skip
    assert len(clips) == len(expected) < len(utd.train)
    for clip, sample in zip(clips, expected, strict=True):
        assert clip.label == sample.label  # utd-mhad's classes, in its order: no class is none
        np.testing.assert_array_equal(clip.data, sample.data)
