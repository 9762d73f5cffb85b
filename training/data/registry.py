"""One entry point for every dataset: ``load_dataset(name, root, benchmark, **options)``."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.data.errors import DatasetError
from training.data.streams import StreamDataset
from training.data.types import SkeletonDataset

DATA_ROOT_ENV = "MASKSEM_DATA_ROOT"


def data_root() -> Path:
    """``$MASKSEM_DATA_ROOT``, else ``<repo root>/../shared/data``."""
    env = os.environ.get(DATA_ROOT_ENV)
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parents[2].parent / "shared" / "data"


def _utd(root: Path, benchmark: str) -> SkeletonDataset:
    from training.data.utd import load_utd_mhad

    return load_utd_mhad(root, benchmark)


def _ucla(root: Path, benchmark: str) -> SkeletonDataset:
    from training.data.ucla import load_nw_ucla

    return load_nw_ucla(root, benchmark)


def _sbu(root: Path, benchmark: str) -> SkeletonDataset:
    from training.data.sbu import load_sbu

    return load_sbu(root, benchmark)


def _ntu(root: Path, benchmark: str) -> SkeletonDataset:
    from training.data.ntu_npz import load_ntu_npz

    return load_ntu_npz(root, benchmark)


def _pku(
    root: Path,
    benchmark: str,
    phase: int | str = 1,
    frames: int | str = 300,
    classes: Sequence[str] | None = None,
) -> SkeletonDataset:
    from training.data.pku import load_pku_mmd

    try:
        phase, frames = int(phase), int(frames)
    except ValueError:
        raise DatasetError(f"phase {phase!r} and frames {frames!r} must be integers") from None
    data = load_pku_mmd(root, phase, benchmark, frames)
    if classes is None:
        return data
    if isinstance(classes, str):
        raise DatasetError(f"classes must be a list of class names, got {classes!r}")
    from training.data.types import keep_classes

    return keep_classes(data, classes)


def _pku_streams(root: Path, benchmark: str, phase: int | str = 1) -> StreamDataset:
    from training.data.pku import load_pku_streams

    try:
        phase = int(phase)
    except ValueError:
        raise DatasetError(f"phase {phase!r} must be an integer") from None
    return load_pku_streams(root, phase, benchmark)


def _pku_root(data: Path, options: dict[str, Any]) -> Path:
    """``pku-mmd/v<phase>`` when it exists, else ``pku-mmd`` itself (phase I, as shipped)."""
    versioned = data / "pku-mmd" / f"v{options.get('phase', 1)}"
    return versioned if versioned.is_dir() else data / "pku-mmd"


def _folder(
    root: Path,
    benchmark: str | None,
    layout: str | None = None,
    test_subjects: Any = None,
    fps: Any = None,
) -> SkeletonDataset:
    from training.data.folder import load_folder

    return load_folder(
        root, layout=layout, test_subjects=test_subjects, benchmark=benchmark, fps=fps
    )


def _folder_streams(
    root: Path,
    benchmark: str | None,
    layout: str | None = None,
    test_subjects: Any = None,
    fps: Any = None,
) -> StreamDataset:
    from training.data.folder_streams import load_folder_streams

    return load_folder_streams(
        root, layout=layout, test_subjects=test_subjects, benchmark=benchmark, fps=fps
    )


def _folder_stream_clips(
    root: Path,
    benchmark: str | None,
    layout: str | None = None,
    test_subjects: Any = None,
    fps: Any = None,
) -> SkeletonDataset:
    from training.data.folder_streams import load_folder_streams
    from training.data.streams import instance_clips

    return instance_clips(
        load_folder_streams(
            root, layout=layout, test_subjects=test_subjects, benchmark=benchmark, fps=fps
        )
    )


def _spliced_streams(root: Path, benchmark: str | None, **options: Any) -> StreamDataset:
    from training.data.spliced import load_spliced_streams

    return load_spliced_streams(root, benchmark, **options)


def _spliced_clips(root: Path, benchmark: str | None, **options: Any) -> SkeletonDataset:
    from training.data.streams import instance_clips

    return instance_clips(_spliced_streams(root, benchmark, **options))


@dataclass(frozen=True)
class DatasetEntry:
    loader: Callable[..., SkeletonDataset]
    benchmarks: tuple[str, ...]  # the first is the default; empty: any label is accepted
    options: tuple[str, ...]
    # where it lives under the data root, given the benchmark and options; None: root required
    default_root: Callable[[Path, str, dict[str, Any]], Path] | None
    note: str
    fps: float = 30.0  # the recordings' frame rate (a folder may say its own)
    # whole untrimmed recordings with per-frame labels, for datasets that have them
    streams: Callable[..., StreamDataset] | None = None


DATASETS: dict[str, DatasetEntry] = {
    "utd-mhad": DatasetEntry(
        _utd, ("xsub",), (), lambda d, b, o: d / "utd-mhad", "UTD-MHAD .mat files"
    ),
    "nw-ucla": DatasetEntry(
        _ucla, ("xview", "xsub"), (), lambda d, b, o: d / "nw-ucla", "NW-UCLA JSON files"
    ),
    "sbu": DatasetEntry(
        _sbu,
        ("fold1", "fold2", "fold3", "fold4", "fold5"),
        (),
        lambda d, b, o: d / "sbu-kinect",
        "SBU Kinect Interaction text files",
        fps=15.0,  # the dataset's paper: recorded at 15 frames per second
    ),
    "ntu": DatasetEntry(
        _ntu,
        ("xsub", "xview", "xsub120", "xset120"),
        (),
        lambda d, b, o: d / "ntu" / f"{b}.npz",
        "a prepared NTU npz file (root is the file)",
    ),
    "pku-mmd": DatasetEntry(
        _pku,
        ("xsub", "xview"),
        ("phase", "frames", "classes"),
        lambda d, b, o: _pku_root(d, o),
        "PKU-MMD phase 1 or 2 (option phase; option classes keeps those instances only)",
        streams=_pku_streams,
    ),
    "folder": DatasetEntry(
        _folder, (), ("layout", "test_subjects", "fps"), None, "your own clips + manifest.csv"
    ),
    "folder-streams": DatasetEntry(
        _folder_stream_clips,
        (),
        ("layout", "test_subjects", "fps"),
        None,
        "your own untrimmed recordings + label files + streams.csv",
        streams=_folder_streams,
    ),
    "spliced": DatasetEntry(
        _spliced_clips,
        (),
        ("clips", "background", "background_benchmark", "gap_s", "per_stream", "seed"),
        lambda d, b, o: d,
        "one dataset's trimmed clips between another's background (root: the data root)",
        streams=_spliced_streams,
    ),
}


def load_dataset(
    name: str, root: Path | None = None, benchmark: str | None = None, **options: Any
) -> SkeletonDataset:
    """Load dataset ``name`` under ``benchmark`` (its default if None) as trimmed clips.

    ``root`` defaults to the dataset's folder under :func:`data_root`.
    """
    entry, root, benchmark = _resolve(name, root, benchmark, options)
    data = entry.loader(Path(root), benchmark, **options)
    if data.fps is None:
        data.fps = entry.fps
    from training.data.layout_check import warn_if_misordered

    warn_if_misordered([s.data for s in data.samples], data.layout, f"{name} at {root}")
    return data


def has_streams(name: str) -> bool:
    entry = DATASETS.get(name)
    return entry is not None and entry.streams is not None


def load_streams(
    name: str, root: Path | None = None, benchmark: str | None = None, **options: Any
) -> StreamDataset:
    """Load dataset ``name`` as whole untrimmed recordings with per-frame labels."""
    entry, root, benchmark = _resolve(name, root, benchmark, options)
    if entry.streams is None:
        with_streams = ", ".join(n for n, e in DATASETS.items() if e.streams is not None)
        raise DatasetError(f"{name} holds trimmed clips only; untrimmed streams: {with_streams}")
    if "classes" in options:
        raise DatasetError(
            f"{name}: the option classes picks trimmed instances; a stream recipe names the "
            "classes it learns in stream.classes, and pre-training on streams uses no labels"
        )
    stream_options = {k: v for k, v in options.items() if k != "frames"}
    data = entry.streams(Path(root), benchmark, **stream_options)
    from training.data.layout_check import warn_if_misordered

    warn_if_misordered([s.data for s in data.streams], data.layout, f"{name} at {root}")
    return data


def _resolve(
    name: str, root: Path | None, benchmark: str | None, options: dict[str, Any]
) -> tuple[DatasetEntry, Path, str | None]:
    entry = DATASETS.get(name)
    if entry is None:
        known = "; ".join(f"{n} ({e.note})" for n, e in DATASETS.items())
        raise DatasetError(f"unknown dataset {name!r}; known: {known}")
    if entry.benchmarks and benchmark is None:
        benchmark = entry.benchmarks[0]
    if entry.benchmarks and benchmark not in entry.benchmarks:
        raise DatasetError(
            f"{name} has benchmarks {', '.join(entry.benchmarks)}; got {benchmark!r}"
        )
    unknown = sorted(set(options) - set(entry.options))
    if unknown:
        allowed = ", ".join(entry.options) or "none"
        raise DatasetError(f"{name} does not take option(s) {unknown}; it takes: {allowed}")
    if root is None:
        if entry.default_root is None:
            raise DatasetError(f"{name} has no default location: give its root folder")
        root = entry.default_root(data_root(), benchmark or "", options)
    return entry, Path(root), benchmark
