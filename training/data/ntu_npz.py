"""Reading prepared NTU RGB+D npz files (``x_train`` (N, T, 150), one-hot ``y_train``,
``x_test``, ``y_test``), ours and those of the public scripts, into a dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from training.data.errors import CorruptSampleError, DatasetError, WrongJointCountError
from training.data.ntu_names import NAME_PATTERN, NtuName, class_names
from training.data.ntu_skeleton import NTU_JOINTS
from training.data.types import UNKNOWN_SUBJECT, Sample, SkeletonDataset


def _labels(y: NDArray[Any], path: Path, key: str) -> NDArray[np.int64]:
    if y.ndim != 2:
        raise CorruptSampleError(
            path, f"expected a one-hot (N, classes) array, got {y.shape}", field=key
        )
    hot = y > 0
    counts = hot.sum(axis=1)
    bad = np.flatnonzero(counts != 1)
    if bad.size:
        raise CorruptSampleError(
            path,
            f"row {int(bad[0])} has {int(counts[bad[0]])} positive entries, expected 1",
            field=key,
        )
    return np.asarray(np.argmax(hot, axis=1), dtype=np.int64)


def _npz_split(
    archive: np.lib.npyio.NpzFile, path: Path, split: str, classes: int | None
) -> tuple[list[Sample], int]:
    x_key, y_key = f"x_{split}", f"y_{split}"
    for key in (x_key, y_key):
        if key not in archive.files:
            raise CorruptSampleError(path, f"no array {key!r} (has {archive.files})", field=key)
    x = archive[x_key]
    width = 2 * NTU_JOINTS * 3
    if x.ndim != 3 or x.shape[2] != width:
        raise WrongJointCountError(
            path,
            f"expected (N, frames, {width}) = 2 persons x 25 joints x xyz, got {x.shape}",
            field=x_key,
        )
    y = archive[y_key]
    labels = _labels(y, path, y_key)
    if len(labels) != len(x):
        raise CorruptSampleError(path, f"{len(x)} clips but {len(labels)} labels", field=y_key)
    if classes is not None and y.shape[1] != classes:
        raise CorruptSampleError(path, f"{y.shape[1]} classes, train has {classes}", field=y_key)
    for start in range(0, len(x), 1024):
        chunk = x[start : start + 1024]
        if not np.isfinite(chunk).all():
            row = start + int(np.flatnonzero(~np.isfinite(chunk).all(axis=(1, 2)))[0])
            raise CorruptSampleError(path, f"clip {row} holds NaN or inf", field=x_key)
    names_key = f"names_{split}"
    names = [str(n) for n in archive[names_key]] if names_key in archive.files else None
    clips = x.astype(np.float32, copy=False).reshape(len(x), x.shape[1], 2, NTU_JOINTS, 3)
    samples = []
    for i in range(len(x)):
        name = names[i] if names is not None else f"{split}_{i:06d}"
        parsed = NtuName.parse(name) if NAME_PATTERN.fullmatch(name) else None
        samples.append(
            Sample(
                name=name,
                # (frames, persons, ...) -> (persons, frames, ...), a view: nothing is copied
                data=clips[i].transpose(1, 0, 2, 3),
                label=int(labels[i]),
                subject=parsed.performer if parsed else UNKNOWN_SUBJECT,
                view=parsed.camera if parsed else None,
            )
        )
    return samples, int(y.shape[1])


def load_ntu_npz(path: Path, benchmark: str | None = None) -> SkeletonDataset:
    """Read an npz with ``x_train`` (N, T, 150), one-hot ``y_train``, ``x_test``, ``y_test``.

    Works for the files ``prepare_ntu`` writes and for those of the public scripts (SGN,
    CTR-GCN, MAMP), whose clips keep their zero padding; the clip operations find the valid
    frames.
    """
    if not path.is_file():
        raise DatasetError(f"npz file {path} does not exist (make one with `masksem data prepare`)")
    with np.load(path, allow_pickle=False) as archive:
        train, classes = _npz_split(archive, path, "train", None)
        test, _ = _npz_split(archive, path, "test", classes)
    name = {60: "ntu60", 120: "ntu120"}.get(classes, path.stem)
    return SkeletonDataset(
        name=name,
        layout="ntu25",
        classes=class_names(classes),
        train=train,
        test=test,
        skipped=[],
        benchmark=benchmark or path.stem,
    )
