"""Preparing NTU RGB+D: the ``.skeleton`` files of one benchmark parsed, preprocessed, padded
and written as the ``x_train``/``y_train``/``x_test``/``y_test`` npz every public codebase reads."""

from __future__ import annotations

import logging
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TypeVar

import numpy as np
from numpy.typing import NDArray

from training.data.errors import CorruptSampleError, DatasetError, MalformedLineError
from training.data.ntu_names import NAME_PATTERN, NtuBenchmark, NtuName, get_benchmark
from training.data.ntu_preprocess import read_ntu_sample
from training.data.ntu_skeleton import NTU_JOINTS
from training.data.types import SkippedSample

log = logging.getLogger("training.data")

PAD_FRAMES = 300


@dataclass
class NtuSelection:
    """The files of one benchmark found under a raw folder, already split."""

    benchmark: NtuBenchmark
    train: list[Path]
    test: list[Path]
    listed_missing: list[str]  # files present but named in the missing-skeleton list
    ignored: list[SkippedSample]  # files whose name is not an NTU sample name


def read_missing_list(path: Path) -> set[str]:
    """NTU's ``samples_with_missing_skeletons.txt``: one sample name per line."""
    names: set[str] = set()
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        name = line.strip()
        if not name:
            continue
        if NAME_PATTERN.fullmatch(name) is None:
            raise MalformedLineError(path, f"{name!r} is not an NTU sample name", line=number)
        names.add(name)
    return names


def select_ntu_files(raw: Path, benchmark: str, missing: Path | None = None) -> NtuSelection:
    """Find the ``.skeleton`` files of ``benchmark`` under ``raw`` (searched recursively).

    Training and test files are ordered as the public scripts write them: by the id the split
    is decided on (subject, camera or setup), then by name.
    """
    bench = get_benchmark(benchmark)
    if not raw.is_dir():
        raise DatasetError(f"NTU raw folder {raw} does not exist")
    missing_names = read_missing_list(missing) if missing is not None else set()
    found: dict[str, Path] = {}
    ignored: list[SkippedSample] = []
    for path in sorted(raw.rglob("*.skeleton")):
        if NAME_PATTERN.fullmatch(path.stem) is None:
            ignored.append(SkippedSample(str(path), "not an NTU sample name"))
        elif path.stem in found:
            log.warning("%s: duplicate of %s, using the first", path, found[path.stem])
        else:
            found[path.stem] = path
    train: list[tuple[int, str, Path]] = []
    test: list[tuple[int, str, Path]] = []
    listed: list[str] = []
    for name, path in found.items():
        parsed = NtuName.parse(name)
        if not bench.includes(parsed):
            continue
        if name in missing_names:
            listed.append(name)
            continue
        side = train if bench.is_train(parsed) else test
        side.append((bench.split_key(parsed), name, path))
    return NtuSelection(
        bench, [p for *_, p in sorted(train)], [p for *_, p in sorted(test)], listed, ignored
    )


@dataclass
class NtuPrepareReport:
    benchmark: str
    out: Path
    train: int
    test: int
    frames: int  # the padded length, 300 unless a sequence is longer
    missing_skipped: int
    skipped: list[SkippedSample] = field(default_factory=list)


X = TypeVar("X")
Progress = Callable[[Iterable[X], int], Iterable[X]]


def _no_progress(items: Iterable[X], total: int) -> Iterable[X]:
    return items


def _process(path: Path) -> NDArray[np.float32] | SkippedSample:
    try:
        return read_ntu_sample(path)
    except CorruptSampleError as err:
        return SkippedSample(str(path), err.detail)


def _processed(
    paths: Sequence[Path], workers: int
) -> Iterator[NDArray[np.float32] | SkippedSample]:
    if workers <= 1:
        yield from map(_process, paths)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(_process, paths, chunksize=16)


@dataclass
class _SplitBuffer:
    """Processed sequences of one split, kept compact on disk until the padded length is known."""

    file: IO[bytes]
    names: list[str] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)


def _write_npy_member(archive: zipfile.ZipFile, key: str, array: NDArray[np.generic]) -> None:
    with archive.open(f"{key}.npy", "w", force_zip64=True) as member:
        np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)


def _write_padded_member(
    archive: zipfile.ZipFile, key: str, buffer: _SplitBuffer, frames: int
) -> None:
    width = 2 * NTU_JOINTS * 3
    header = {"descr": "<f4", "fortran_order": False, "shape": (len(buffer.lengths), frames, width)}
    buffer.file.seek(0)
    with archive.open(f"{key}.npy", "w", force_zip64=True) as member:
        np.lib.format.write_array_header_1_0(member, header)
        for length in buffer.lengths:
            row = np.zeros((frames, width), dtype="<f4")
            row[:length] = np.frombuffer(buffer.file.read(length * width * 4), dtype="<f4").reshape(
                length, width
            )
            member.write(row.tobytes())


def _one_hot(labels: list[int], classes: int) -> NDArray[np.float64]:
    out = np.zeros((len(labels), classes))  # float64, as the public scripts write it
    out[np.arange(len(labels)), labels] = 1.0
    return out


def prepare_ntu(
    raw: Path,
    out: Path,
    benchmark: str,
    missing: Path | None = None,
    *,
    workers: int = 1,
    progress: Progress[NDArray[np.float32] | SkippedSample] = _no_progress,
) -> NtuPrepareReport:
    """Parse, denoise, centre and pad every sample of ``benchmark`` and write ``out`` (.npz).

    Files named in ``missing`` (NTU's list of samples with missing skeletons) are skipped and
    counted; corrupt files are logged, skipped and listed in the report, never zero-filled.
    Besides ``x_train`` (N, 300, 150) float32, one-hot ``y_train``, ``x_test`` and ``y_test``
    the archive holds ``names_train`` and ``names_test`` (sample names, for subjects and views).
    """
    selection = select_ntu_files(raw, benchmark, missing)
    bench = selection.benchmark
    skipped = list(selection.ignored)
    out.parent.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryFile(dir=out.parent) as train_file,
        tempfile.TemporaryFile(dir=out.parent) as test_file,
    ):
        buffers = {"train": _SplitBuffer(train_file), "test": _SplitBuffer(test_file)}
        work = [(p, "train") for p in selection.train] + [(p, "test") for p in selection.test]
        results = progress(_processed([p for p, _ in work], workers), len(work))
        for (path, split), result in zip(work, results, strict=True):
            if isinstance(result, SkippedSample):
                log.warning("skipping %s: %s", path, result.reason)
                skipped.append(result)
                continue
            buffer = buffers[split]
            buffer.file.write(np.ascontiguousarray(result, dtype="<f4").tobytes())
            buffer.names.append(path.stem)
            buffer.labels.append(NtuName.parse(path.stem).action - 1)
            buffer.lengths.append(int(result.shape[0]))
        frames = max([PAD_FRAMES, *buffers["train"].lengths, *buffers["test"].lengths])
        partial = out.with_name(out.name + ".partial")
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
            for split, buffer in buffers.items():
                _write_padded_member(archive, f"x_{split}", buffer, frames)
                _write_npy_member(archive, f"y_{split}", _one_hot(buffer.labels, bench.num_classes))
                _write_npy_member(archive, f"names_{split}", np.array(buffer.names, dtype="U20"))
        shutil.move(partial, out)
    if selection.listed_missing:
        log.info("skipped %d samples listed as missing", len(selection.listed_missing))
    return NtuPrepareReport(
        bench.name,
        out,
        len(buffers["train"].lengths),
        len(buffers["test"].lengths),
        frames,
        len(selection.listed_missing),
        skipped,
    )
