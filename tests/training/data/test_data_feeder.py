"""The torch feeder: windows from skeleton.clip, reproducible per (seed, epoch, index); and the
stratified labelled subsets of the semi-supervised protocol."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from skeleton.clip import WindowSpec, inference_window, training_window
from training.data.feeder import SkeletonFeeder, labelled_subset
from training.data.types import Sample, SkeletonDataset

SPEC = WindowSpec(frames=32, persons=2, min_crop_frames=8)


def samples(count: int, classes: int = 3) -> list[Sample]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(count):
        data = np.zeros((1, 60, 20, 3), np.float32)
        data[:, : 20 + i % 30] = rng.normal(size=(1, 20 + i % 30, 20, 3))  # zero padded tail
        out.append(Sample(f"clip{i}", data, i % classes, subject=i % 4))
    return out


def test_training_items_repeat_for_the_same_seed_epoch_and_index() -> None:
    feeder = SkeletonFeeder(samples(6), SPEC, train=True, seed=7)
    feeder.set_epoch(3)
    first = [feeder[i][0] for i in (4, 1, 2)]
    again = SkeletonFeeder(samples(6), SPEC, train=True, seed=7)
    again.set_epoch(3)
    _ = again[0]  # other items drawn first change nothing: no shared random state
    for index, item in zip((4, 1, 2), first, strict=True):
        torch.testing.assert_close(again[index][0], item, rtol=0, atol=0)
    # and the item is exactly skeleton.clip's training window with the derived generator
    expected = training_window(feeder.samples[4].data, SPEC, np.random.default_rng((7, 3, 4)))
    np.testing.assert_array_equal(first[0].numpy(), expected)


def test_training_items_change_with_epoch_and_seed() -> None:
    feeder = SkeletonFeeder(samples(2), SPEC, train=True, seed=1)
    a = feeder[1][0]
    feeder.set_epoch(1)
    b = feeder[1][0]
    other_seed = SkeletonFeeder(samples(2), SPEC, train=True, seed=2)[1][0]
    assert not torch.equal(a, b) and not torch.equal(a, other_seed)


def test_test_items_are_the_inference_window() -> None:
    data = samples(3)
    feeder = SkeletonFeeder(data, SPEC, train=False)
    window, label = feeder[2]
    assert window.dtype == torch.float32 and window.shape == (2, 32, 20, 3) and label == 2
    np.testing.assert_array_equal(window.numpy(), inference_window(data[2].data, SPEC))


def test_loader_with_workers_gives_the_same_batches_as_in_process() -> None:
    feeder = SkeletonFeeder(samples(8), SPEC, train=True, seed=5)
    feeder.set_epoch(2)
    serial = next(iter(DataLoader(feeder, batch_size=8)))
    parallel = next(iter(DataLoader(feeder, batch_size=8, num_workers=2)))
    torch.testing.assert_close(serial[0], parallel[0], rtol=0, atol=0)
    assert serial[1].tolist() == [i % 3 for i in range(8)]


def test_labelled_subset_is_stratified_and_depends_on_the_seed() -> None:
    data = samples(300, classes=3)  # 100 per class
    subset = labelled_subset(data, 0.1, seed=0)
    assert len(subset) == 30
    assert np.bincount([s.label for s in subset]).tolist() == [10, 10, 10]
    names = [s.name for s in subset]
    assert names == [s.name for s in labelled_subset(data, 0.1, seed=0)]
    assert names != [s.name for s in labelled_subset(data, 0.1, seed=1)]
    order = {s.name: i for i, s in enumerate(data)}
    assert [order[n] for n in names] == sorted(order[n] for n in names)


def test_labelled_subset_of_a_real_training_set(utd_dataset: SkeletonDataset) -> None:
    train = utd_dataset.train  # 431 clips, 27 classes of 15 or 16
    subset = labelled_subset(train, 0.1, seed=3)
    assert len(subset) == round(431 * 0.1)
    per_class = np.bincount([s.label for s in subset], minlength=27)
    assert per_class.min() >= 1 and per_class.max() <= 2
    subsets = {tuple(s.name for s in labelled_subset(train, 0.01, seed=k)) for k in range(5)}
    assert len(subsets) == 5 and all(len(s) == 4 for s in subsets)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="fraction"):
        labelled_subset(samples(3), 0.0, seed=0)
    with pytest.raises(ValueError, match="seed"):
        SkeletonFeeder(samples(1), SPEC, train=True, seed=-1)
