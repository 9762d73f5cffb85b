"""The clips every reader yields: samples, skipped files and a dataset with its split."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from skeleton.clip import valid_frame_mask
from skeleton.layouts import get_layout
from training.data.errors import DatasetError

log = logging.getLogger("training.data")

#: ``Sample.subject`` of a dataset that does not say who performed a clip (PKU-MMD, npz files
#: without names).
UNKNOWN_SUBJECT = -1


@dataclass(frozen=True, eq=False)
class Sample:
    """One labelled clip: ``data`` is float32 ``(M, T, V, 3)``, an absent person all zeros."""

    name: str
    data: NDArray[np.float32]
    label: int  # 0-based index into SkeletonDataset.classes
    subject: int
    view: int | None = None

    def __post_init__(self) -> None:
        if self.data.ndim != 4 or self.data.shape[-1] != 3:
            raise ValueError(f"sample {self.name}: expected (M, T, V, 3), got {self.data.shape}")
        if self.data.dtype != np.float32:
            raise ValueError(f"sample {self.name}: expected float32, got {self.data.dtype}")

    @property
    def frames(self) -> int:
        """Number of valid frames (frames where any coordinate of any person is non-zero)."""
        return int(valid_frame_mask(self.data).sum())


@dataclass
class SkippedSample:
    """A file or instance a whole-dataset load left out, and why."""

    source: str
    reason: str


@dataclass
class SkeletonDataset:
    """A dataset under one benchmark: its layout, class names and train/test samples."""

    name: str
    layout: str
    classes: list[str]
    train: list[Sample]
    test: list[Sample]
    skipped: list[SkippedSample] = field(default_factory=list)
    benchmark: str = ""
    fps: float | None = None  # frame rate of the recordings; None: not known to the reader

    @property
    def samples(self) -> list[Sample]:
        return self.train + self.test

    def stats(self) -> dict[str, Any]:
        """Counts a user checks a download against (sequences, classes, subjects, split sizes)."""
        samples = self.samples
        frames = np.array([s.frames for s in samples], dtype=np.int64)
        subjects = {s.subject for s in samples if s.subject != UNKNOWN_SUBJECT}
        return {
            "name": self.name,
            "layout": self.layout,
            "benchmark": self.benchmark,
            "sequences": len(samples),
            "classes": len(self.classes),
            "subjects": len(subjects),
            "joints": get_layout(self.layout).num_joints,
            "persons": max((s.data.shape[0] for s in samples), default=0),
            "train": len(self.train),
            "test": len(self.test),
            "skipped": len(self.skipped),
            "frames": {
                "min": int(frames.min()) if frames.size else 0,
                "median": float(np.median(frames)) if frames.size else 0.0,
                "max": int(frames.max()) if frames.size else 0,
            },
        }


def keep_classes(data: SkeletonDataset, names: Sequence[str]) -> SkeletonDataset:
    """``data`` with only the clips of the classes ``names``, relabelled 0..len(names)-1 in
    that order (how many clips of other classes were left out is logged)."""
    unknown = [n for n in names if n not in data.classes]
    if unknown or not names or len(set(names)) != len(names):
        raise DatasetError(
            f"classes must name distinct classes of {data.name} ({data.classes}); "
            f"got {list(names)} (unknown: {unknown})"
        )
    new = {data.classes.index(n): i for i, n in enumerate(names)}

    def kept(samples: list[Sample]) -> list[Sample]:
        return [dataclasses.replace(s, label=new[s.label]) for s in samples if s.label in new]

    out = dataclasses.replace(
        data, classes=list(names), train=kept(data.train), test=kept(data.test)
    )
    left = len(data.samples) - len(out.samples)
    log.info("%s: kept %d clips of %d classes, left out %d clips of other classes", data.name,
             len(out.samples), len(names), left)  # fmt: skip
    return out


def hold_out_subjects(data: SkeletonDataset, subjects: Sequence[int]) -> SkeletonDataset:
    """``data`` with the training clips of ``subjects`` as its evaluation split, in place of the
    test split: a validation protocol that chooses a recipe without looking at the test clips."""
    held = set(subjects)
    train_subjects = {s.subject for s in data.train}
    unknown = sorted(held - train_subjects)
    if unknown or not held:
        raise DatasetError(
            f"validation_subjects must name subjects of {data.name}'s training split "
            f"({sorted(train_subjects)}); got {sorted(held)}"
        )
    if held >= train_subjects:
        raise DatasetError(
            f"validation_subjects {sorted(held)} hold out every training subject of {data.name}"
        )
    return dataclasses.replace(
        data,
        train=[s for s in data.train if s.subject not in held],
        test=[s for s in data.train if s.subject in held],
    )


def narrow(
    data: SkeletonDataset, *, validation_subjects: Sequence[int], limit: int | None
) -> SkeletonDataset:
    """A source's split options applied to its clips: ``validation_subjects`` held out of the
    training split (hold_out_subjects), then the first ``limit`` clips of each split."""
    if validation_subjects:
        data = hold_out_subjects(data, validation_subjects)
    if limit is not None:
        data = dataclasses.replace(data, train=data.train[:limit], test=data.test[:limit])
    return data
