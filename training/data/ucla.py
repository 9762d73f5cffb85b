"""Northwestern-UCLA Multiview Action 3D in CTR-GCN's JSON form: one ``aAA_sSS_eEE_vVV.json``
per clip with ``file_name``, ``label`` (1..10) and ``skeletons`` (T frames x 20 joints x xyz)."""

from __future__ import annotations

import json
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

UCLA_JOINTS = 20
UCLA_CLASSES = [
    "pick up with one hand", "pick up with two hands", "drop trash", "walk around",
    "sit down", "stand up", "donning", "doffing", "throw", "carry",
]  # fmt: skip
#: Benchmarks: the standard cross-view split (views 1 and 2 train, view 3 tests), and a
#: cross-subject split of our choosing, as UTD-MHAD's: odd subjects train, even ones test.
BENCHMARKS = ("xview", "xsub")
_NAME = re.compile(r"a(\d+)_s(\d+)_e(\d+)_v(\d+)")


def _skeletons(value: object, path: Path) -> NDArray[np.float32]:
    if not isinstance(value, list) or not value:
        raise EmptySequenceError(path, "'skeletons' holds no frame", field="skeletons")
    for t, frame in enumerate(value):
        if not isinstance(frame, list) or len(frame) != UCLA_JOINTS:
            count = len(frame) if isinstance(frame, list) else type(frame).__name__
            raise WrongJointCountError(
                path, f"{count} joints, expected {UCLA_JOINTS}", field=f"skeletons[{t}]"
            )
    try:
        clip = np.array(value, dtype=np.float64)
    except (ValueError, TypeError):
        clip = None
    if clip is None or clip.shape != (len(value), UCLA_JOINTS, 3) or not np.isfinite(clip).all():
        for t, frame in enumerate(value):
            for j, joint in enumerate(frame):
                ok = isinstance(joint, list) and len(joint) == 3
                ok = ok and all(isinstance(c, int | float) and np.isfinite(c) for c in joint)
                if not ok:
                    raise NonNumericFieldError(
                        path,
                        f"{joint!r} is not three finite numbers",
                        field=f"skeletons[{t}][{j}]",
                    )
        raise MalformedLineError(path, "'skeletons' is not T x 20 x 3", field="skeletons")
    return clip.astype(np.float32)[None]


def read_ucla_sample(path: Path) -> list[Sample]:
    match = _NAME.fullmatch(path.stem)
    if match is None:
        raise MalformedLineError(path, "file name is not aAA_sSS_eEE_vVV.json")
    _, subject, _, view = (int(g) for g in match.groups())
    try:
        content = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        line = getattr(err, "lineno", None)
        raise MalformedLineError(path, f"not valid JSON ({err})", line=line) from None
    if not isinstance(content, dict):
        raise MalformedLineError(path, "expected a JSON object")
    label = content.get("label")
    if not isinstance(label, int) or not 1 <= label <= len(UCLA_CLASSES):
        raise MalformedLineError(
            path, f"label {label!r} is not an integer in 1..{len(UCLA_CLASSES)}", field="label"
        )
    clip = _skeletons(content.get("skeletons"), path)
    return [Sample(path.stem, clip, label - 1, subject, view)]


def load_nw_ucla(root: Path, benchmark: str = "xview") -> SkeletonDataset:
    """All clips under ``root``; ``xview``: views 1, 2 train, 3 test; ``xsub``: odd subjects."""
    if benchmark not in BENCHMARKS:
        raise DatasetError(f"NW-UCLA benchmarks are {', '.join(BENCHMARKS)}; got {benchmark!r}")
    if not root.is_dir():
        raise DatasetError(f"NW-UCLA folder {root} does not exist")
    paths = sorted(root.glob("*.json"), key=natural_key)
    if not paths:
        raise DatasetError(f"no .json file in {root}")
    samples, skipped = collect(paths, read_ucla_sample)
    report_skipped("NW-UCLA", skipped)
    if benchmark == "xview":
        is_train = [s.view in (1, 2) for s in samples]
    else:
        is_train = [s.subject % 2 == 1 for s in samples]
    return SkeletonDataset(
        name="nw-ucla",
        layout="ucla20",
        classes=list(UCLA_CLASSES),
        train=[s for s, t in zip(samples, is_train, strict=True) if t],
        test=[s for s, t in zip(samples, is_train, strict=True) if not t],
        skipped=skipped,
        benchmark=benchmark,
    )
