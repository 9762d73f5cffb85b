"""Warnings throttled per kind: a flood of one problem never hides another kind of problem."""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Logger(Protocol):
    def warning(self, message: str) -> object: ...


class ThrottledWarnings:
    """At most one warning of each kind per ``period_s``; the next one says how many were held."""

    def __init__(self, logger: Logger, period_s: float) -> None:
        self.logger, self.period_s = logger, period_s
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}
        self._lock = threading.Lock()

    def warn(self, kind: str, message: str) -> bool:
        """Log ``message`` unless a warning of ``kind`` went out less than ``period_s`` ago."""
        now = time.monotonic()
        with self._lock:
            last = self._last.get(kind)
            if last is not None and now - last < self.period_s:
                self._held[kind] = self._held.get(kind, 0) + 1
                return False
            held = self._held.pop(kind, 0)
            self._last[kind] = now
        if held and last is not None:
            message += f" [{held} more like this in the last {now - last:.1f} s]"
        self.logger.warning(message)
        return True
