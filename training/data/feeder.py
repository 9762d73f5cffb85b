"""The torch dataset over samples: skeleton.clip's training or inference window per item, with
per-item random streams derived from (seed, epoch, index) so runs reproduce and resume."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import ConcatDataset, Dataset

from skeleton.clip import WindowSpec, inference_window, training_window
from training.data.types import Sample


class SkeletonFeeder(Dataset[tuple[torch.Tensor, int]]):
    """Items are ``(float32 tensor (M, T, V, 3), label)`` with ``M, T`` from the window spec.

    ``train=True`` gives the augmented window (random crop and rotation); its randomness comes
    from ``np.random.default_rng((seed, epoch, index))`` only, so an item is the same in any
    worker, order or resumed run. Call :meth:`set_epoch` before each epoch; DataLoader workers
    copy the feeder when they start, so with ``persistent_workers=True`` the epoch they see is
    the one set before the first iteration.
    """

    def __init__(
        self, samples: Sequence[Sample], spec: WindowSpec, *, train: bool, seed: int = 0
    ) -> None:
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        self.samples = list(samples)
        self.spec = spec
        self.train = train
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        self.epoch = epoch

    def rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng((self.seed, self.epoch, index))

    def window(self, index: int) -> np.ndarray:
        sample = self.samples[index]
        if self.train:
            return training_window(sample.data, self.spec, self.rng(index), where=sample.name)
        return inference_window(sample.data, self.spec, where=sample.name)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return torch.from_numpy(np.ascontiguousarray(self.window(index))), self.samples[index].label


def labelled_subset(samples: Sequence[Sample], fraction: float, seed: int) -> list[Sample]:
    """A class-stratified random ``fraction`` of ``samples`` for the semi-supervised protocol.

    ``round(len(samples) * fraction)`` samples (at least one); each class gets its proportional
    share, the left-over places going to the classes with the largest remainders (ties broken
    at random). Different seeds give different subsets; the result keeps the input order.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    if not samples:
        return []
    rng = np.random.default_rng(seed)
    labels = np.array([s.label for s in samples])
    total = max(1, round(len(samples) * fraction))
    classes, counts = np.unique(labels, return_counts=True)
    quota = counts * total / len(samples)
    take = np.floor(quota).astype(np.int64)
    left = total - int(take.sum())
    # largest remainder first; a random key breaks ties
    order = np.lexsort((rng.random(len(classes)), -(quota - take)))
    take[order[:left]] += 1
    chosen: list[int] = []
    for cls, k in zip(classes, take, strict=True):
        members = np.flatnonzero(labels == cls)
        chosen.extend(int(i) for i in rng.choice(members, size=int(k), replace=False))
    return [samples[i] for i in sorted(chosen)]


class PooledFeeder(ConcatDataset[tuple[torch.Tensor, int]]):
    """Several feeders as one dataset (items of the first, then of the second, ...) that passes
    :meth:`set_epoch` on to each, so every part redraws its windows each epoch."""

    def set_epoch(self, epoch: int) -> None:
        for part in self.datasets:
            set_epoch = getattr(part, "set_epoch", None)
            if callable(set_epoch):
                set_epoch(epoch)
