"""SBU Kinect Interaction: ``sXXsYY/CC/NNN/skeleton_pos.txt``, one line per frame of a frame
index and 90 normalised values (2 persons x 15 joints x xyz), converted here to metres."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from training.data.errors import (
    DatasetError,
    EmptySequenceError,
    MalformedLineError,
    WrongJointCountError,
)
from training.data.reading import collect, parse_floats, report_skipped
from training.data.types import Sample, SkeletonDataset

SBU_JOINTS = 15
SBU_CLASSES = [
    "approaching", "departing", "kicking", "punching", "pushing", "hugging",
    "shaking hands", "exchanging",
]  # fmt: skip
#: SBU's published five folds over the 21 subject pairs; fold k is the test set of "foldk".
FOLDS: dict[str, tuple[str, ...]] = {
    "fold1": ("s01s02", "s03s04", "s05s02", "s06s04"),
    "fold2": ("s02s03", "s02s07", "s03s05", "s05s03"),
    "fold3": ("s01s03", "s01s07", "s07s01", "s07s03"),
    "fold4": ("s02s01", "s02s06", "s03s02", "s03s06"),
    "fold5": ("s04s02", "s04s03", "s04s06", "s06s02", "s06s03"),
}
_FIELDS = ("frame",) + tuple(
    f"person {p + 1} joint {j + 1} {c}" for p in range(2) for j in range(SBU_JOINTS) for c in "xyz"
)
_PAIR = re.compile(r"s(\d{2})s(\d{2})")
# The dataset note's original units (millimetres): X = 1280 - 2560 x, Y = 960 - 1920 y,
# Z = 10000 z / 7.8125.
_SCALE = np.array([-2560.0, -1920.0, 10000.0 / 7.8125])
_OFFSET = np.array([1280.0, 960.0, 0.0])


def to_metres(normalised: NDArray[np.floating]) -> NDArray[np.float32]:
    """Normalised ``(..., 3)`` SBU coordinates in metres; all-zero (absent) joints stay zero."""
    metres = (normalised * _SCALE + _OFFSET) / 1000.0
    absent = ~(np.asarray(normalised) != 0).any(axis=-1)
    metres[absent] = 0.0
    return np.asarray(metres, dtype=np.float32)


def read_sbu_clip(path: Path) -> NDArray[np.float32]:
    """One ``skeleton_pos.txt`` as ``(2, T, 15, 3)`` float32 in metres."""
    tokens: list[str] = []
    numbers: list[int] = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        values = [v.strip() for v in line.strip().rstrip(",").split(",")]
        if len(values) != len(_FIELDS):
            raise WrongJointCountError(
                path,
                f"{len(values)} fields, expected a frame index and 90 values "
                "(2 persons x 15 joints x xyz)",
                line=number,
                field="frame",
            )
        tokens.extend(values)
        numbers.append(number)
    if not numbers:
        raise EmptySequenceError(path, "the file holds no frame", line=1, field="frame")
    parsed = parse_floats(tokens, path, lines=numbers, fields=_FIELDS)
    clip = to_metres(parsed[:, 1:].reshape(len(numbers), 2, SBU_JOINTS, 3))
    return np.ascontiguousarray(clip.transpose(1, 0, 2, 3))


def read_sbu_sample(path: Path) -> list[Sample]:
    take, action, pair = path.parent.name, path.parent.parent.name, path.parent.parent.parent.name
    match = _PAIR.fullmatch(pair)
    if match is None or not action.isdigit():
        raise MalformedLineError(path, "path is not sXXsYY/CC/NNN/skeleton_pos.txt")
    label = int(action)
    if not 1 <= label <= len(SBU_CLASSES):
        raise MalformedLineError(path, f"class folder {action} is outside 01..08")
    first, second = (int(g) for g in match.groups())
    # subject = the pair as one number: s01s02 -> 102
    return [Sample(f"{pair}_{action}_{take}", read_sbu_clip(path), label - 1, 100 * first + second)]


def load_sbu(root: Path, benchmark: str = "fold1") -> SkeletonDataset:
    """All sequences under ``root``; benchmark ``foldk`` tests on fold k, trains on the others."""
    if benchmark not in FOLDS:
        raise DatasetError(f"SBU benchmarks are {', '.join(FOLDS)}; got {benchmark!r}")
    if not root.is_dir():
        raise DatasetError(f"SBU folder {root} does not exist")
    paths = sorted(root.glob("s*s*/*/*/skeleton_pos.txt"))
    if not paths:
        raise DatasetError(f"no sXXsYY/CC/NNN/skeleton_pos.txt under {root}")
    samples, skipped = collect(paths, read_sbu_sample)
    report_skipped("SBU", skipped)
    test_pairs = {100 * int(p[1:3]) + int(p[4:6]) for p in FOLDS[benchmark]}
    return SkeletonDataset(
        name="sbu",
        layout="sbu15",
        classes=list(SBU_CLASSES),
        train=[s for s in samples if s.subject not in test_pairs],
        test=[s for s in samples if s.subject in test_pairs],
        skipped=skipped,
        benchmark=benchmark,
    )
