"""Helpers the readers share: number parsing with line/field errors, and skip-and-report loads."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

from training.data.errors import CorruptSampleError, NonNumericFieldError
from training.data.types import Sample, SkippedSample

log = logging.getLogger("training.data")

T = TypeVar("T")


def parse_floats(
    tokens: Sequence[str],
    path: Path,
    *,
    lines: Sequence[int],
    fields: Sequence[str],
) -> NDArray[np.float64]:
    """Parse ``len(lines) x len(fields)`` tokens (row-major) into a float64 array.

    A token that is not a finite number raises :class:`NonNumericFieldError` naming the file,
    the 1-based line it sits on and its field name.
    """
    width = len(fields)
    try:
        values = np.array(tokens, dtype=np.float64)
    except ValueError:
        values = None
    if values is not None and np.isfinite(values).all():
        return values.reshape(len(lines), width)
    for i, token in enumerate(tokens):
        try:
            ok = np.isfinite(float(token))
        except ValueError:
            ok = False
        if not ok:
            row, col = divmod(i, width)
            raise NonNumericFieldError(
                path,
                f"{token!r} is not a finite number",
                line=lines[row],
                field=fields[col],
            )
    raise AssertionError("unreachable: a token failed to parse but each one parses")


def parse_int(token: str, path: Path, *, line: int, field: str) -> int:
    try:
        return int(token)
    except ValueError:
        raise NonNumericFieldError(
            path, f"{token!r} is not an integer", line=line, field=field
        ) from None


def collect(
    sources: Iterable[T],
    read: Callable[[T], list[Sample]],
    describe: Callable[[T], str] = str,
) -> tuple[list[Sample], list[SkippedSample]]:
    """Read every source; a corrupt one is logged, recorded in the skipped list and left out."""
    samples: list[Sample] = []
    skipped: list[SkippedSample] = []
    for source in sources:
        try:
            samples.extend(read(source))
        except CorruptSampleError as err:
            source_name = describe(source)
            # a row of a list names its file only through the error
            reason = err.detail if source_name == str(err.path) else str(err)
            log.warning("skipping %s: %s", source_name, reason)
            skipped.append(SkippedSample(source_name, reason))
    return samples, skipped


def report_skipped(dataset_name: str, skipped: list[SkippedSample]) -> None:
    if skipped:
        log.warning("%s: skipped %d bad sample(s)", dataset_name, len(skipped))


def natural_key(path: Path) -> list[int | str]:
    """Sort key that puts ``a2_s1`` before ``a10_s1``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]
