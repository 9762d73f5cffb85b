"""The node's warnings: at most one per kind per period, and the next one counts the held."""

from __future__ import annotations

import time

from masksem_ros.throttled_log import ThrottledWarnings


class Collected:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def warning(self, message: str) -> None:
        self.lines.append(message)


def test_a_flood_of_one_kind_is_held_back_without_hiding_other_kinds() -> None:
    log = Collected()
    warnings = ThrottledWarnings(log, period_s=0.2)
    sent = [warnings.warn("malformed", f"bad message {i}") for i in range(5)]
    assert sent == [True, False, False, False, False]
    assert warnings.warn("dropped too_late", "late frame")  # another kind still gets through
    time.sleep(0.25)
    assert warnings.warn("malformed", "bad message 5")
    assert log.lines[0] == "bad message 0" and log.lines[1] == "late frame"
    assert log.lines[2].startswith("bad message 5 [4 more like this in the last 0.")


def test_no_period_logs_everything() -> None:
    log = Collected()
    warnings = ThrottledWarnings(log, period_s=0.0)
    assert all(warnings.warn("malformed", "bad") for _ in range(3))
    assert len(log.lines) == 3
