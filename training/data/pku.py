"""PKU-MMD phases I and II: per-video skeleton and label text files cut into action instances,
with the official cross-subject and cross-view split files (the public MAMP/CTR-GCN pipeline)."""

from __future__ import annotations

import logging
import lzma
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from training.data.cache import cached_array
from training.data.errors import (
    CorruptSampleError,
    DatasetError,
    EmptySequenceError,
    MalformedLineError,
    WrongJointCountError,
)
from training.data.intervals import check_interval, check_no_overlap
from training.data.reading import parse_floats, parse_int
from training.data.streams import Interval, Stream, StreamDataset, instance_clips
from training.data.types import SkeletonDataset, SkippedSample

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


SKELETON_SUFFIXES = (".txt.xz", ".txt")
CACHE_FORMAT = "pku-skeleton-v1"  # bump when read_pku_skeleton's output changes


def video_name(path: Path) -> str:
    """``0002-L.txt.xz`` and ``0002-L.txt`` -> ``0002-L``."""
    for suffix in SKELETON_SUFFIXES:
        if path.name.endswith(suffix):
            return path.name.removesuffix(suffix)
    return path.stem


def read_text(path: Path) -> str:
    """A text file, xz-decompressed when its name ends in ``.xz``."""
    if path.suffix == ".xz":
        try:
            with lzma.open(path, "rt") as fh:
                return fh.read()
        except lzma.LZMAError as err:
            raise CorruptSampleError(path, f"not a readable xz file: {err}") from err
    return path.read_text()


def read_pku_skeleton(path: Path, *, cache: bool = False) -> NDArray[np.float32]:
    """A skeleton file (``.txt`` or ``.txt.xz``): one line per frame of 150 values (2 persons x
    25 joints x xyz), as ``(frames, 150)``. ``cache=True`` keeps the parsed array in the user
    cache, keyed by the file's sha256, so the next read skips the text."""
    if cache:
        return cached_array(path, CACHE_FORMAT, lambda: read_pku_skeleton(path))
    lines = read_text(path).splitlines()
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


def read_pku_labels(path: Path, frames: int | None = None) -> list[PkuInstance]:
    """A label file: one ``class,start,end,confidence`` line per action instance. With the
    video's length ``frames``, an instance past its end is refused; overlapping instances are
    refused (a frame shows one action), naming both lines."""
    instances: list[PkuInstance] = []
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
        check_interval(path, start, end, line=number, frames=frames)
        instances.append(PkuInstance(label - 1, start, end, float(confidence), number))
    check_no_overlap(path, instances)
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


def video_view(video: str) -> int | None:
    suffix = video.rsplit("-", 1)[-1] if "-" in video else ""
    return VIEWS.get(suffix.upper())


def read_pku_stream(skeleton: Path, labels: Path, *, cache: bool = False) -> Stream:
    """One whole video: its frames ``(2, T, 25, 3)`` and its action instances in time order."""
    video = read_pku_skeleton(skeleton, cache=cache)
    instances = sorted(read_pku_labels(labels, len(video)), key=lambda i: i.start)
    name = video_name(skeleton)
    data = video.reshape(len(video), 2, PKU_JOINTS, 3).transpose(1, 0, 2, 3)
    return Stream(
        name,
        np.ascontiguousarray(data),
        tuple(Interval(i.label, i.start, i.end, i.line) for i in instances),
        view=video_view(name),
    )


def class_names(root: Path) -> list[str]:
    """The 51 action names of ``actions.csv`` (``label,action``) when the folder has it."""
    names = [f"PKU-MMD action {i + 1}" for i in range(PKU_CLASSES)]
    path = root / "actions.csv"
    if not path.is_file():
        return names
    for number, line in enumerate(path.read_text().splitlines()[1:], start=2):
        if not line.strip():
            continue
        label, _, action = line.partition(",")
        index = parse_int(label.strip(), path, line=number, field="label")
        if not 1 <= index <= PKU_CLASSES or not action.strip():
            raise MalformedLineError(path, "expected label 1..51,name", line=number)
        names[index - 1] = action.strip()
    return names


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


def _video_files(root: Path) -> list[tuple[Path, Path]]:
    skeleton_dir, label_dir = root / "skeleton", root / "label"
    for folder in (skeleton_dir, label_dir):
        if not folder.is_dir():
            raise DatasetError(f"PKU-MMD folder {folder} does not exist")
    files = [p for p in skeleton_dir.iterdir() if p.name.endswith(SKELETON_SUFFIXES)]
    return [(p, label_dir / f"{video_name(p)}.txt") for p in sorted(files, key=video_name)]


def load_pku_streams(
    root: Path, phase: int = 1, benchmark: str = "xsub", *, cache: bool = True
) -> StreamDataset:
    """Every video of a PKU-MMD phase as a whole stream, split by the official file.

    Skeletons may be ``.txt`` or ``.txt.xz``; parsed arrays are cached (see
    :mod:`training.data.cache`). A video whose skeleton or labels are corrupt, or that has no
    label file, is logged and listed in ``skipped``.
    """
    training = read_split_file(_find_split_file(root, int(phase), benchmark))
    train: list[Stream] = []
    test: list[Stream] = []
    skipped: list[SkippedSample] = []
    for skeleton, labels in _video_files(root):
        if not labels.is_file():
            log.warning("skipping %s: no label file %s", skeleton, labels)
            skipped.append(SkippedSample(str(skeleton), f"no label file {labels}"))
            continue
        try:
            stream = read_pku_stream(skeleton, labels, cache=cache)
        except CorruptSampleError as err:
            log.warning("skipping %s: %s", err.path, err.detail)
            skipped.append(SkippedSample(str(err.path), err.detail))
            continue
        (train if stream.name in training else test).append(stream)
    if skipped:
        log.warning("PKU-MMD: skipped %d video(s)", len(skipped))
    return StreamDataset(
        name=f"pku-mmd-{int(phase)}",
        layout="ntu25",
        classes=class_names(root),
        train=train,
        test=test,
        fps=30.0,
        skipped=skipped,
        benchmark=benchmark,
    )


def load_pku_mmd(
    root: Path, phase: int = 1, benchmark: str = "xsub", frames: int = PAD_FRAMES
) -> SkeletonDataset:
    """Load a PKU-MMD phase from ``root`` holding ``skeleton/``, ``label/`` and the split files
    as trimmed instances (the public pipeline).

    Corrupt videos and all-zero instances are logged and listed in ``skipped``.
    """
    streams = load_pku_streams(root, phase, benchmark)
    data = instance_clips(streams, frames=frames, label_file=lambda stream: f"{stream.name}.txt")
    zero = sum(1 for s in data.skipped if s.reason.startswith("all-zero"))
    if zero:
        log.warning("PKU-MMD: skipped %d all-zero instances", zero)
    data.fps = None  # the registry's
    return data
