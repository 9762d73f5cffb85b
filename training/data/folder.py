"""Bring-your-own recordings: a folder of per-clip ``.npy`` arrays listed in ``manifest.csv``.

Layout of the folder::

    my-recordings/
      manifest.csv
      clips/wave_001.npy
      clips/wave_002.npy
      ...

Each clip is a NumPy ``.npy`` array of shape ``(T, V, 3)`` (one person) or ``(M, T, V, 3)``
(M persons; an absent person is all zeros) holding camera coordinates in metres, with the
joints in the order of the layout you name (one of ``ntu25``, ``utd20``, ``ucla20``, ``sbu15``,
``k4a32``; the README's "Joint layouts" lists each one's joints in order). No value may be NaN
or inf.

The joint-count rule: ``V`` of every clip is the layout's joint count (ntu25: 25, utd20 and
ucla20: 20, sbu15: 15, k4a32: 32); a clip with another count is reported and skipped. The model
follows the data: its ``joints`` are the layout's and its persons the most persons of any clip,
unless a recipe sets them. On load a check of the clips against the layout (bones of steady
length, left and right limbs alike, the head above the feet) warns, naming the suspect joints,
when the declared order looks wrong.

``manifest.csv`` has a header line ``path,label,subject`` and optionally ``view``, ``split``
and ``fps`` columns, then one row per clip::

    path,label,subject,view,split
    clips/wave_001.npy,wave,1,1,train
    clips/wave_002.npy,wave,2,1,test

- ``path``: the clip file, relative to the folder (or absolute).
- ``label``: the class name; the classes are the sorted distinct names and a clip's label id
  is the index of its name among them.
- ``subject``: an integer id of the person recorded.
- ``view``: optional integer camera or view id.
- ``split``: optional ``train`` or ``test``. Without this column, clips of the subjects given
  by the ``test_subjects`` option are the test set; with neither, every clip trains (and
  fine-tuning refuses to start: it has nothing to evaluate on).
- ``fps``: optional frame rate of the recordings, the same on every row (or the ``fps``
  option); default 30. It is written into the model card, where it sets the seconds of a live
  stream the service classifies.

Load it with ``load_dataset("folder", Path("my-recordings"), layout="k4a32")`` or look at it
with ``masksem data stats folder --root my-recordings --option layout=k4a32``. Rows whose clip
is missing or unreadable are reported and skipped.

Whole untrimmed recordings with their action intervals: :mod:`training.data.folder_streams`.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from skeleton.layouts import LAYOUTS, get_layout
from training.data.errors import (
    CorruptSampleError,
    DatasetError,
    EmptySequenceError,
    MalformedLineError,
    NonNumericFieldError,
    WrongJointCountError,
)
from training.data.reading import collect, parse_int, report_skipped
from training.data.types import Sample, SkeletonDataset

MANIFEST = "manifest.csv"
REQUIRED_COLUMNS = ("path", "label", "subject")
OPTIONAL_COLUMNS = ("view", "split", "fps")
SPLITS = ("train", "test")


@dataclass(frozen=True)
class ManifestRow:
    line: int
    path: Path
    label: str
    subject: int
    view: int | None
    split: str | None
    fps: float | None = None


def manifest_rows(
    path: Path, required: tuple[str, ...], optional: tuple[str, ...] = OPTIONAL_COLUMNS
) -> Iterator[tuple[int, list[str], dict[str, str]]]:
    """``(line, header, values)`` of each row of a manifest; a header that lacks a required
    column or has an unknown one raises, as does a row with a required value empty."""
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        header = [c.strip() for c in reader.fieldnames or []]
        missing = [c for c in required if c not in header]
        unknown = [c for c in header if c not in required + optional]
        if missing or unknown:
            expected = ",".join(required) + "".join(f"[,{c}]" for c in optional)
            raise MalformedLineError(
                path,
                f"header {','.join(header)!r} lacks {missing} or has unknown columns {unknown}; "
                f"expected {expected}",
                line=1,
                field="header",
            )
        reader.fieldnames = header
        for raw in reader:
            line = reader.line_num
            values = {k: (v or "").strip() for k, v in raw.items() if k is not None}
            for column in required:
                if not values.get(column):
                    raise MalformedLineError(path, f"empty {column}", line=line, field=column)
            yield line, header, values


def manifest_row(
    path: Path, line: int, header: list[str], values: dict[str, str], label: str
) -> ManifestRow:
    """The row's file, relative to the manifest's folder, and its subject, view, split and fps
    (a bad one raises, naming the line and column)."""
    view = values.get("view") or None
    split = values.get("split") or None
    if "split" in header and split not in SPLITS:
        raise MalformedLineError(
            path, f"split {split!r} is not train or test", line=line, field="split"
        )
    return ManifestRow(
        line=line,
        path=relative_to(path, values["path"]),
        label=label,
        subject=parse_int(values["subject"], path, line=line, field="subject"),
        view=None if view is None else parse_int(view, path, line=line, field="view"),
        split=split,
        fps=_fps(values.get("fps") or None, f"{path}, line {line}"),
    )


def relative_to(manifest: Path, value: str) -> Path:
    """A path of a manifest row: absolute, or relative to the manifest's folder."""
    given = Path(value)
    return given if given.is_absolute() else manifest.parent / given


def read_manifest(path: Path) -> list[ManifestRow]:
    """The rows of a manifest; a bad header raises, as does a bad subject, view or split."""
    return [
        manifest_row(path, line, header, values, values["label"])
        for line, header, values in manifest_rows(path, REQUIRED_COLUMNS)
    ]


def _fps(value: object, where: str) -> float | None:
    if value is None:
        return None
    try:
        fps = float(str(value))
    except ValueError:
        raise DatasetError(f"{where}: fps {value!r} is not a number") from None
    if not fps > 0 or fps == float("inf"):
        raise DatasetError(f"{where}: fps must be a positive number, got {value!r}")
    return fps


def folder_fps(rows: list[ManifestRow], option: object, manifest: Path) -> float | None:
    """The one frame rate of a folder: the ``fps`` option, else the manifest's column (which
    must say the same on every row that gives it)."""
    given = _fps(option, f"{manifest.parent}: option fps")
    column = {row.fps for row in rows if row.fps is not None}
    if len(column) > 1:
        raise DatasetError(
            f"{manifest}: the fps column holds {sorted(column)}; the clips of one folder must "
            "share one frame rate (resample them, or split the folder)"
        )
    if given is not None and column and column != {given}:
        raise DatasetError(
            f"{manifest}: the fps column says {column.pop()} but the fps option {given}"
        )
    return given if given is not None else (column.pop() if column else None)


def read_clip(path: Path, joints: int) -> NDArray[np.float32]:
    """One ``.npy`` clip as ``(M, T, V, 3)`` float32, checked against the layout's joints."""
    try:
        array = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise CorruptSampleError(path, "the clip file does not exist") from None
    except (ValueError, OSError) as err:
        raise MalformedLineError(path, f"not a readable .npy array ({err})") from None
    if array.ndim == 3:
        array = array[None]
    if array.ndim != 4 or array.shape[-1] != 3:
        raise MalformedLineError(path, f"expected (T, V, 3) or (M, T, V, 3), got {array.shape}")
    if array.shape[2] != joints:
        raise WrongJointCountError(path, f"{array.shape[2]} joints, the layout has {joints}")
    if not np.issubdtype(array.dtype, np.number):
        raise NonNumericFieldError(path, f"dtype {array.dtype} is not numeric")
    if not np.isfinite(array).all():
        m, t, v, _ = (int(i) for i in np.argwhere(~np.isfinite(array))[0])
        raise NonNumericFieldError(
            path, f"NaN or inf at person {m + 1}, frame {t + 1}, joint {v + 1}"
        )
    if array.shape[1] == 0 or not array.any():
        raise EmptySequenceError(path, f"no non-zero frame in {array.shape[1]} frames")
    return np.ascontiguousarray(array, dtype=np.float32)


def _test_subjects(value: Iterable[int] | str | None) -> set[int] | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return {int(v) for v in value.replace(" ", "").split(",") if v}
        except ValueError:
            raise DatasetError(f"test_subjects {value!r} is not a comma list of ids") from None
    return {int(v) for v in value}


def folder_layout(layout: str | None) -> tuple[str, int]:
    """The layout a folder names and its joint count; none or an unknown one is refused."""
    if layout is None:
        raise DatasetError(f"a folder dataset needs a layout, one of {', '.join(LAYOUTS)}")
    try:
        return layout, get_layout(layout).num_joints
    except ValueError as err:
        raise DatasetError(str(err)) from None


def split_rows(
    rows: list[ManifestRow], test_subjects: Iterable[int] | str | None
) -> tuple[list[ManifestRow], list[ManifestRow], str]:
    """(train rows, test rows, the rule used): the split column, else the test subjects,
    else everything trains."""
    held_out = _test_subjects(test_subjects)
    if rows and rows[0].split is not None:
        rule = "manifest split column"
        test_rows = [row for row in rows if row.split == "test"]
    elif held_out is not None:
        rule = f"test subjects {','.join(map(str, sorted(held_out)))}"
        test_rows = [row for row in rows if row.subject in held_out]
    else:
        rule = "all clips train"
        test_rows = []
    test_lines = {row.line for row in test_rows}
    return [row for row in rows if row.line not in test_lines], test_rows, rule


def load_folder(
    root: Path,
    layout: str | None = None,
    test_subjects: Iterable[int] | str | None = None,
    benchmark: str | None = None,
    fps: float | str | None = None,
) -> SkeletonDataset:
    """Load a bring-your-own folder (see the module docstring for the format)."""
    layout, joints = folder_layout(layout)
    manifest = root / MANIFEST
    if not manifest.is_file():
        raise DatasetError(f"no {MANIFEST} in {root}")
    rows = read_manifest(manifest)
    frame_rate = folder_fps(rows, fps, manifest)
    classes = sorted({row.label for row in rows})
    ids = {name: i for i, name in enumerate(classes)}

    def read(row: ManifestRow) -> list[Sample]:
        clip = read_clip(row.path, joints)
        return [Sample(row.path.stem, clip, ids[row.label], row.subject, row.view)]

    train_rows, test_rows, rule = split_rows(rows, test_subjects)

    def describe(row: ManifestRow) -> str:
        return f"{manifest}, line {row.line}"

    train, skipped = collect(train_rows, read, describe)
    test, skipped_test = collect(test_rows, read, describe)
    skipped += skipped_test
    report_skipped(str(root), skipped)
    return SkeletonDataset(
        name=root.name,
        layout=layout,
        classes=classes,
        train=train,
        test=test,
        skipped=skipped,
        benchmark=benchmark or rule,
        fps=frame_rate,
    )


def write_folder(dataset: SkeletonDataset, root: Path) -> Path:
    """Write ``dataset`` in this format (clips under ``clips/``, split column set, and the fps
    column when the dataset knows its frame rate)."""
    (root / "clips").mkdir(parents=True, exist_ok=True)
    manifest = root / MANIFEST
    fps = () if dataset.fps is None else (f"{dataset.fps:g}",)
    with manifest.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(("path", "label", "subject", "view", "split", *(("fps",) if fps else ())))
        for split, samples in (("train", dataset.train), ("test", dataset.test)):
            for sample in samples:
                relative = Path("clips") / f"{sample.name}.npy"
                np.save(root / relative, sample.data)
                view = "" if sample.view is None else sample.view
                label = dataset.classes[sample.label]
                writer.writerow((relative.as_posix(), label, sample.subject, view, split, *fps))
    return manifest
