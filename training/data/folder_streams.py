"""Bring-your-own untrimmed recordings: whole recordings as ``.npy`` arrays, each with a label
file of the intervals in which an action happens, listed in ``streams.csv`` (dataset name
``folder-streams``). What a robot's own camera saw, to train a model that also says "none".

Layout of the folder::

    my-streams/
      streams.csv
      recordings/hall_001.npy
      labels/hall_001.csv
      ...

Each recording is a NumPy ``.npy`` array of shape ``(T, V, 3)`` (one person) or
``(M, T, V, 3)`` (M persons; an absent person is all zeros), camera coordinates in metres,
joints in the order of the layout you name (``ntu25``, ``utd20``, ``ucla20``, ``sbu15`` or
``k4a32``), no NaN or inf: the same rules as the trimmed ``folder`` format
(:mod:`training.data.folder`), but a whole recording, background included.

``streams.csv`` has a header line ``path,labels,subject`` and optionally ``view``, ``split``
and ``fps`` columns, then one row per recording::

    path,labels,subject,split
    recordings/hall_001.npy,labels/hall_001.csv,1,train
    recordings/hall_002.npy,labels/hall_002.csv,2,test

- ``path``: the recording, relative to the folder (or absolute); its file name without
  ``.npy`` names the recording and must be unique.
- ``labels``: its label file, relative to the folder (or absolute).
- ``subject``, ``view``, ``split``, ``fps``: as in the trimmed format. The test set is the
  ``split`` column's, else the recordings of the ``test_subjects`` option, else none (every
  recording trains). ``fps`` (one value per folder, default 30) also turns seconds into frames.

A label file is CSV (UTF-8) with a header line that fixes the unit, then one line per action
instance: ``label,start,end`` in frames, 0-based, ``[start, end)`` (``end`` is the first frame
after the action), or ``label,start_s,end_s`` in seconds from the recording's first frame
(frame = ``round(seconds * fps)``)::

    label,start,end
    wave,120,185
    point,410,470

``label`` is a class name; the classes are the sorted distinct names of all label files, and a
frame in no interval is "none" (a name no interval may take). A header only (or an empty file)
is a recording with no action: background, which a model needs too. Intervals must lie inside
the recording, be non-empty and not overlap (a frame shows one action).

A recording whose file or label file is missing, unreadable or wrong (corrupt line, interval
past the recording's end, inverted or overlapping intervals) is reported, with file, line and
field, and skipped (``skipped``); a bad row of ``streams.csv`` itself refuses the folder,
naming its line. Load it with ``load_streams("folder-streams", Path("my-streams"),
layout="k4a32")``; ``load_dataset`` of the same gives the action instances as trimmed clips
(for pre-training or a trimmed evaluation).
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from training.data.errors import CorruptSampleError, DatasetError, MalformedLineError
from training.data.folder import (
    ManifestRow,
    folder_fps,
    folder_layout,
    manifest_row,
    manifest_rows,
    read_clip,
    relative_to,
    split_rows,
)
from training.data.intervals import check_interval, check_no_overlap
from training.data.reading import parse_floats, parse_int, report_skipped
from training.data.streams import Interval, Stream, StreamDataset
from training.data.types import SkippedSample

log = logging.getLogger("training.data")

MANIFEST = "streams.csv"
REQUIRED_COLUMNS = ("path", "labels", "subject")
FRAME_HEADER = ("label", "start", "end")
SECOND_HEADER = ("label", "start_s", "end_s")
DEFAULT_FPS = 30.0  # as the trimmed folder's
NONE_NAME = "none"  # the model's label for frames in no interval (recipes.stream_data.NONE)


@dataclass(frozen=True)
class NamedInterval:
    """One label line: frames ``[start, end)`` show class ``name``."""

    name: str
    start: int
    end: int
    line: int


def read_interval_labels(path: Path, *, frames: int, fps: float) -> list[NamedInterval]:
    """The intervals of a label file (see the module docstring), checked against the
    recording's ``frames``."""
    if not path.is_file():
        raise CorruptSampleError(path, "the label file does not exist")
    try:
        text = path.read_text(encoding="utf-8-sig")  # a spreadsheet's byte-order mark is no name
    except (OSError, UnicodeDecodeError) as err:
        raise CorruptSampleError(path, f"not a readable text file ({err})") from None
    header: tuple[str, ...] | None = None
    intervals: list[NamedInterval] = []
    for line, fields in enumerate(text.splitlines(), start=1):
        try:
            values = tuple(f.strip() for f in next(csv.reader([fields]), []))
        except csv.Error as err:
            raise MalformedLineError(path, f"not a CSV line ({err})", line=line) from None
        if not any(values):
            continue
        if header is None:
            if values not in (FRAME_HEADER, SECOND_HEADER):
                raise MalformedLineError(
                    path,
                    f"header {','.join(values)!r}, expected {','.join(FRAME_HEADER)} (frames) "
                    f"or {','.join(SECOND_HEADER)} (seconds)",
                    line=line,
                    field="header",
                )
            header = values
            continue
        if len(values) != 3:
            raise MalformedLineError(
                path,
                f"{len(values)} fields, expected {','.join(header)}",
                line=line,
                field="label line",
            )
        name = values[0]
        if not name:
            raise MalformedLineError(path, "empty class name", line=line, field="label")
        if name == NONE_NAME:
            raise MalformedLineError(
                path,
                f"{NONE_NAME!r} names the frames in no interval: leave them unlabelled",
                line=line,
                field="label",
            )
        if header == SECOND_HEADER:
            start, end = _seconds_to_frames(path, values[1:], line=line, fps=fps)
        else:
            start, end = (
                parse_int(token, path, line=line, field=column)
                for token, column in zip(values[1:], header[1:], strict=True)
            )
        check_interval(path, start, end, line=line, frames=frames)
        intervals.append(NamedInterval(name, start, end, line))
    check_no_overlap(path, intervals)
    return intervals


def _seconds_to_frames(
    path: Path, tokens: tuple[str, ...], *, line: int, fps: float
) -> tuple[int, int]:
    """``start_s, end_s`` as frames at ``fps``; negative, inverted or sub-frame intervals are
    refused in seconds, before rounding could hide them."""
    start_s, end_s = (
        float(v) for v in parse_floats(tokens, path, lines=[line], fields=SECOND_HEADER[1:])[0]
    )
    if not 0 <= start_s < end_s:
        raise MalformedLineError(
            path,
            f"start {start_s} s and end {end_s} s are not 0 <= start < end",
            line=line,
            field="end_s",
        )
    start, end = round(start_s * fps), round(end_s * fps)
    if start == end:
        raise MalformedLineError(
            path,
            f"[{start_s} s, {end_s} s) holds no frame at {fps:g} fps",
            line=line,
            field="end_s",
        )
    return start, end


@dataclass(frozen=True)
class StreamRow:
    """A row of ``streams.csv``: the recording's row and its label file."""

    row: ManifestRow
    labels: Path

    @property
    def name(self) -> str:
        return self.row.path.name.removesuffix(".npy")


def read_streams_manifest(path: Path) -> list[StreamRow]:
    """The rows of ``streams.csv``; a bad header or row raises, naming its line and column, as
    does a recording listed twice."""
    rows: list[StreamRow] = []
    seen: dict[str, int] = {}
    for line, header, values in manifest_rows(path, REQUIRED_COLUMNS):
        row = StreamRow(
            manifest_row(path, line, header, values, label=""),
            relative_to(path, values["labels"]),
        )
        if row.name in seen:
            raise MalformedLineError(
                path,
                f"recording name {row.name!r} is listed already at line {seen[row.name]}",
                line=line,
                field="path",
            )
        seen[row.name] = line
        rows.append(row)
    return rows


def load_folder_streams(
    root: Path,
    layout: str | None = None,
    test_subjects: Iterable[int] | str | None = None,
    benchmark: str | None = None,
    fps: float | str | None = None,
) -> StreamDataset:
    """Load an untrimmed bring-your-own folder (see the module docstring for the format)."""
    layout, joints = folder_layout(layout)
    manifest = root / MANIFEST
    if not manifest.is_file():
        raise DatasetError(f"no {MANIFEST} in {root} (the untrimmed folder format)")
    rows = read_streams_manifest(manifest)
    if not rows:
        raise DatasetError(f"{manifest} lists no recording")
    frame_rate = folder_fps([r.row for r in rows], fps, manifest) or DEFAULT_FPS
    train_rows, test_rows, rule = split_rows([r.row for r in rows], test_subjects)
    skipped: list[SkippedSample] = []
    read: dict[int, tuple[StreamRow, NDArray[np.float32], list[NamedInterval]]] = {}
    for row in rows:
        try:
            data = read_clip(row.row.path, joints)
            labels = read_interval_labels(row.labels, frames=data.shape[1], fps=frame_rate)
        except CorruptSampleError as err:
            source = f"{manifest}, line {row.row.line}"
            log.warning("skipping %s: %s", source, err)
            skipped.append(SkippedSample(source, str(err)))
            continue
        read[row.row.line] = (row, data, labels)
    report_skipped(str(root), skipped)
    if not read:
        reasons = "; ".join(f"{s.source}: {s.reason}" for s in skipped[:3])
        raise DatasetError(
            f"{root} holds no readable recording: all {len(rows)} skipped ({reasons}"
            + (", ..." if len(skipped) > 3 else "")
            + ")"
        )
    classes = sorted({i.name for _, _, labels in read.values() for i in labels})
    ids = {name: index for index, name in enumerate(classes)}

    def streams(split: list[ManifestRow]) -> list[Stream]:
        out = []
        for manifest_line in (r.line for r in split):
            if manifest_line not in read:
                continue
            row, data, labels = read[manifest_line]
            instances = sorted(
                (Interval(ids[i.name], i.start, i.end, i.line) for i in labels),
                key=lambda i: i.start,
            )
            out.append(Stream(row.name, data, tuple(instances), row.row.view, row.row.subject))
        return out

    return StreamDataset(
        name=root.name,
        layout=layout,
        classes=classes,
        train=streams(train_rows),
        test=streams(test_rows),
        fps=frame_rate,
        skipped=skipped,
        benchmark=benchmark or rule.replace("clips", "recordings"),
    )
