"""PKU-MMD phases I and II: per-video skeleton and label text files cut into action instances,
with the official cross-subject and cross-view split files (the public MAMP/CTR-GCN pipeline)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from training.data.errors import (
    CorruptSampleError,
    DatasetError,
    EmptySequenceError,
    MalformedLineError,
    WrongJointCountError,
)
from training.data.reading import parse_floats, parse_int
from training.data.types import UNKNOWN_SUBJECT, Sample, SkeletonDataset, SkippedSample

log = logging.getLogger("training.data")

PKU_CLASSES = 51  # the public pipeline one-hot encodes 51 classes for both phases
PKU_JOINTS = 25
VALUES_PER_FRAME = 2 * PKU_JOINTS * 3
PAD_FRAMES = 300
VIEWS = {"L": 1, "M": 2, "R": 3}  # the three Kinects of a PKU-MMD recording
LABEL_FIELDS = ("class", "start", "end", "confidence")
_COORDS = tuple(
    f"person {p + 1} joint {j + 1} {c}" for p in range(2) for j in range(25) for c in "xyz"
)
# Split files per phase and benchmark; the hyphenated and underscored spellings both circulate.
SPLIT_FILES = {
    1: {
        "xsub": ("cross-subject.txt", "cross_subject.txt"),
        "xview": ("cross-view.txt", "cross_view.txt"),
    },
    2: {
        "xsub": ("cross_subject_v2.txt", "cross-subject_v2.txt"),
        "xview": ("cross_view_v2.txt", "cross-view_v2.txt"),
    },
}


@dataclass(frozen=True)
class PkuInstance:
    """One label line: frames ``[start, end)`` of its video show action ``label`` (0-based)."""

    label: int
    start: int
    end: int
    confidence: float
    line: int


def read_pku_skeleton(path: Path) -> NDArray[np.float32]:
    """A skeleton file: one line per frame of 150 values (2 persons x 25 joints x xyz)."""
    lines = path.read_text().splitlines()
    tokens: list[str] = []
    numbers: list[int] = []
    for number, line in enumerate(lines, start=1):
        values = line.split()
        if not values:
            continue
        if len(values) != VALUES_PER_FRAME:
            raise WrongJointCountError(
                path,
                f"{len(values)} values, expected {VALUES_PER_FRAME} (2 persons x 25 joints x xyz)",
                line=number,
                field="frame",
            )
        tokens.extend(values)
        numbers.append(number)
    if not numbers:
        raise EmptySequenceError(path, "the file holds no frame", line=1, field="frame")
    return parse_floats(tokens, path, lines=numbers, fields=_COORDS).astype(np.float32)


def read_pku_labels(path: Path) -> list[PkuInstance]:
    """A label file: one ``class,start,end,confidence`` line per action instance."""
    instances = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.strip().rstrip(",").split(",")]
        if len(fields) != len(LABEL_FIELDS):
            raise MalformedLineError(
                path,
                f"{len(fields)} fields, expected class,start,end,confidence",
                line=number,
                field="label line",
            )
        label, start, end = (
            parse_int(token, path, line=number, field=name)
            for token, name in zip(fields[:3], LABEL_FIELDS, strict=False)
        )
        (confidence,) = parse_floats(fields[3:], path, lines=[number], fields=LABEL_FIELDS[3:])[0]
        if not 1 <= label <= PKU_CLASSES:
            raise MalformedLineError(
                path, f"class {label} is outside 1..{PKU_CLASSES}", line=number, field="class"
            )
        if not 0 <= start < end:
            raise MalformedLineError(
                path,
                f"start {start} and end {end} are not 0 <= start < end",
                line=number,
                field="end",
            )
        instances.append(PkuInstance(label - 1, start, end, float(confidence), number))
    return instances


def read_split_file(path: Path) -> set[str]:
    """Training video names: the second line of the file, separated by ``", "``."""
    lines = path.read_text().splitlines()
    if len(lines) < 2:
        raise MalformedLineError(path, "no second line with the training videos", line=2)
    names = {name.strip() for name in lines[1].split(",") if name.strip()}
    if not names:
        raise MalformedLineError(path, "the second line lists no video", line=2)
    return names


def instance_clip(
    video: NDArray[np.float32], instance: PkuInstance, frames: int = PAD_FRAMES
) -> NDArray[np.float32]:
    """Frames ``[start, end)`` of a video, cut or zero-padded: ``(2, frames, 25, 3)``."""
    part = video[instance.start : instance.end][:frames]
    out = np.zeros((frames, VALUES_PER_FRAME), dtype=np.float32)
    out[: len(part)] = part
    return np.ascontiguousarray(out.reshape(frames, 2, PKU_JOINTS, 3).transpose(1, 0, 2, 3))


def video_view(video: str) -> int | None:
    suffix = video.rsplit("-", 1)[-1] if "-" in video else ""
    return VIEWS.get(suffix.upper())


def read_pku_video(
    skeleton: Path, labels: Path, frames: int = PAD_FRAMES
) -> tuple[list[Sample], list[SkippedSample]]:
    """All instances of one video; all-zero instances are returned as skipped."""
    video = read_pku_skeleton(skeleton)
    samples: list[Sample] = []
    skipped: list[SkippedSample] = []
    for index, instance in enumerate(read_pku_labels(labels)):
        name = f"{skeleton.stem}_{index}"
        clip = instance_clip(video, instance, frames)
        if not clip.any():
            reason = (
                f"all-zero instance (frames {instance.start}-{instance.end} of "
                f"{len(video)}, {labels.name} line {instance.line})"
            )
            skipped.append(SkippedSample(name, reason))
            continue
        samples.append(
            Sample(name, clip, instance.label, UNKNOWN_SUBJECT, video_view(skeleton.stem))
        )
    return samples, skipped


def _find_split_file(root: Path, phase: int, benchmark: str) -> Path:
    try:
        names = SPLIT_FILES[phase][benchmark]
    except KeyError:
        raise DatasetError(
            f"unknown PKU-MMD phase {phase} or benchmark {benchmark!r}; phases 1, 2, "
            "benchmarks xsub, xview"
        ) from None
    for folder in (root, root / "Split", root / "split"):
        for name in names:
            if (folder / name).is_file():
                return folder / name
    raise DatasetError(f"no split file {' or '.join(names)} in {root} (or its Split/ folder)")


def load_pku_mmd(
    root: Path, phase: int = 1, benchmark: str = "xsub", frames: int = PAD_FRAMES
) -> SkeletonDataset:
    """Load a PKU-MMD phase from ``root`` holding ``skeleton/``, ``label/`` and the split files.

    Corrupt videos and all-zero instances are logged and listed in ``skipped``.
    """
    split_file = _find_split_file(root, int(phase), benchmark)
    skeleton_dir, label_dir = root / "skeleton", root / "label"
    for folder in (skeleton_dir, label_dir):
        if not folder.is_dir():
            raise DatasetError(f"PKU-MMD folder {folder} does not exist")
    training = read_split_file(split_file)
    train: list[Sample] = []
    test: list[Sample] = []
    skipped: list[SkippedSample] = []
    for skeleton in sorted(skeleton_dir.glob("*.txt")):
        labels = label_dir / skeleton.name
        if not labels.is_file():
            log.warning("skipping %s: no label file %s", skeleton, labels)
            skipped.append(SkippedSample(str(skeleton), f"no label file {labels}"))
            continue
        try:
            samples, empty = read_pku_video(skeleton, labels, frames)
        except CorruptSampleError as err:
            log.warning("skipping %s: %s", skeleton, err.detail)
            skipped.append(SkippedSample(str(err.path), err.detail))
            continue
        for item in empty:
            log.warning("skipping %s: %s", item.source, item.reason)
        skipped.extend(empty)
        (train if skeleton.stem in training else test).extend(samples)
    zero = sum(1 for s in skipped if s.reason.startswith("all-zero"))
    if skipped:
        log.warning("PKU-MMD: skipped %d (%d all-zero instances)", len(skipped), zero)
    return SkeletonDataset(
        name=f"pku-mmd-{int(phase)}",
        layout="ntu25",
        classes=[f"PKU-MMD action {i + 1}" for i in range(PKU_CLASSES)],
        train=train,
        test=test,
        skipped=skipped,
        benchmark=benchmark,
    )
