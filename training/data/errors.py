"""Typed errors of the dataset readers: what is wrong with which file, at which line and field."""

from __future__ import annotations

from pathlib import Path


class DatasetError(ValueError):
    """A dataset that cannot be loaded as asked: unknown name, benchmark, option or missing root."""


class CorruptSampleError(ValueError):
    """One sample file that cannot be read; names the file, the 1-based line and the field."""

    def __init__(
        self,
        path: Path | str,
        problem: str,
        *,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.line = line
        self.field = field
        self.problem = problem
        super().__init__(f"{self.path}{self.location}: {problem}")

    @property
    def location(self) -> str:
        """``, line N (field)`` as far as known."""
        line = "" if self.line is None else f", line {self.line}"
        return line + ("" if self.field is None else f" ({self.field})")

    @property
    def detail(self) -> str:
        """The message without the file name, for reports that list files already."""
        where = self.location.removeprefix(", ").strip()
        return f"{where}: {self.problem}" if where else self.problem


class TruncatedFileError(CorruptSampleError):
    """The file ends before the data its own counts announce."""


class WrongJointCountError(CorruptSampleError):
    """A skeleton with another number of joints (or values per frame) than the format has."""


class NonNumericFieldError(CorruptSampleError):
    """A field that should be a finite number is not."""


class EmptySequenceError(CorruptSampleError):
    """A sample with no frame that holds a body."""


class MalformedLineError(CorruptSampleError):
    """A line with the wrong number of fields, a bad name or an impossible value."""
