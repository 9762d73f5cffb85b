"""UTD-MHAD skeletons: one ``aA_sS_tT_skeleton.mat`` per clip holding ``d_skel`` (20, 3, T)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from training.data.errors import (
    DatasetError,
    EmptySequenceError,
    MalformedLineError,
    NonNumericFieldError,
    WrongJointCountError,
)
from training.data.reading import collect, natural_key, report_skipped
from training.data.types import Sample, SkeletonDataset

UTD_JOINTS = 20
UTD_CLASSES = [
    "right arm swipe to the left", "right arm swipe to the right", "right hand wave",
    "two hand front clap", "right arm throw", "cross arms in the chest", "basketball shoot",
    "right hand draw x", "right hand draw circle (clockwise)",
    "right hand draw circle (counter clockwise)", "draw triangle", "bowling (right hand)",
    "front boxing", "baseball swing from right", "tennis right hand forehand swing",
    "arm curl (two arms)", "tennis serve", "two hand push", "right hand knock on door",
    "right hand catch an object", "right hand pick up and throw", "jogging in place",
    "walking in place", "sit to stand", "stand to sit", "forward lunge (left foot forward)",
    "squat (two arms stretch out)",
]  # fmt: skip
_NAME = re.compile(r"a(\d+)_s(\d+)_t(\d+)_skeleton")


def read_utd_clip(path: Path) -> NDArray[np.float32]:
    """The ``d_skel`` variable of one file as ``(1, T, 20, 3)`` float32 (metres)."""
    from scipy.io import loadmat  # scipy is slow to import; only this reader needs it

    try:
        content = loadmat(path, variable_names=["d_skel"])
    except (ValueError, OSError, TypeError) as err:
        raise MalformedLineError(path, f"not a readable MATLAB file ({err})") from None
    if "d_skel" not in content:
        raise MalformedLineError(path, "no variable 'd_skel'", field="d_skel")
    skel = np.asarray(content["d_skel"])
    if skel.ndim == 2 and skel.shape == (UTD_JOINTS, 3):
        skel = skel[:, :, None]  # MATLAB drops a trailing singleton frame axis
    if skel.ndim != 3 or skel.shape[1] != 3:
        raise MalformedLineError(
            path, f"expected (20, 3, frames), got {skel.shape}", field="d_skel"
        )
    if skel.shape[0] != UTD_JOINTS:
        raise WrongJointCountError(
            path, f"{skel.shape[0]} joints, expected {UTD_JOINTS}", field="d_skel"
        )
    if skel.shape[2] == 0:
        raise EmptySequenceError(path, "d_skel has no frame", field="d_skel")
    if not np.issubdtype(skel.dtype, np.number) or not np.isfinite(skel).all():
        raise NonNumericFieldError(path, "holds non-numeric, NaN or inf values", field="d_skel")
    return np.ascontiguousarray(skel.transpose(2, 0, 1)[None], dtype=np.float32)


def read_utd_sample(path: Path) -> list[Sample]:
    match = _NAME.fullmatch(path.stem)
    if match is None:
        raise MalformedLineError(path, "file name is not aA_sS_tT_skeleton.mat")
    action, subject, trial = (int(g) for g in match.groups())
    if not 1 <= action <= len(UTD_CLASSES):
        raise MalformedLineError(path, f"action {action} is outside 1..{len(UTD_CLASSES)}")
    return [Sample(path.stem, read_utd_clip(path), action - 1, subject)]


def load_utd_mhad(root: Path, benchmark: str = "xsub") -> SkeletonDataset:
    """All clips under ``root``; cross-subject: odd subjects (1, 3, 5, 7) train, even ones test."""
    if benchmark != "xsub":
        raise DatasetError(f"UTD-MHAD has one benchmark, 'xsub'; got {benchmark!r}")
    if not root.is_dir():
        raise DatasetError(f"UTD-MHAD folder {root} does not exist")
    paths = sorted(root.glob("*_skeleton.mat"), key=natural_key)
    if not paths:
        raise DatasetError(f"no *_skeleton.mat file in {root}")
    samples, skipped = collect(paths, read_utd_sample)
    report_skipped("UTD-MHAD", skipped)
    return SkeletonDataset(
        name="utd-mhad",
        layout="utd20",
        classes=list(UTD_CLASSES),
        train=[s for s in samples if s.subject % 2 == 1],
        test=[s for s in samples if s.subject % 2 == 0],
        skipped=skipped,
        benchmark=benchmark,
    )
