"""Checks every label file of untrimmed recordings shares: an interval lies inside its
recording and has a positive length, and no two intervals of one recording overlap (a frame
shows one action). Errors name the file, the line and the field at fault."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from training.data.errors import MalformedLineError


class Span(Protocol):
    """An interval of frames ``[start, end)`` read from ``line`` of its label file."""

    @property
    def start(self) -> int: ...

    @property
    def end(self) -> int: ...

    @property
    def line(self) -> int: ...


def check_interval(path: Path, start: int, end: int, *, line: int, frames: int | None) -> None:
    """Refuse an inverted or empty interval and, with the recording's length ``frames``, one
    that ends past the recording's end."""
    if not 0 <= start < end:
        raise MalformedLineError(
            path, f"start {start} and end {end} are not 0 <= start < end", line=line, field="end"
        )
    if frames is not None and end > frames:
        raise MalformedLineError(
            path,
            f"instance ends at frame {end}, past the video's end ({frames} frames)",
            line=line,
            field="end",
        )


def check_no_overlap(path: Path, spans: Sequence[Span]) -> None:
    """Refuse two overlapping intervals, named at the later line of the file against the
    earlier one."""
    ordered = sorted(spans, key=lambda s: (s.start, s.end))
    for before, after in zip(ordered, ordered[1:], strict=False):
        if after.start < before.end:
            late, early = (after, before) if after.line > before.line else (before, after)
            raise MalformedLineError(
                path,
                f"instance [{late.start}, {late.end}) overlaps [{early.start}, {early.end}) "
                f"of line {early.line}",
                line=late.line,
                field="start",
            )
