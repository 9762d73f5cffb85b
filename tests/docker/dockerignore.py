"""Decides which files a ``.dockerignore`` leaves in the build context, with Docker's rules:
patterns are rooted at the context, ``*`` and ``?`` stop at ``/``, ``**`` spans folders, a
pattern that matches a folder matches everything in it, ``!`` re-includes, the last match wins.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Rule:
    pattern: str
    regex: re.Pattern[str]
    include: bool  # a ``!`` exception


def _translate(pattern: str) -> re.Pattern[str]:
    out = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = pattern.index("]", i)
            out.append(pattern[i : end + 1])
            i = end
        elif char == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(char))
        i += 1
    return re.compile("".join(out))


def read_rules(path: Path) -> list[Rule]:
    rules = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        include = line.startswith("!")
        pattern = posixpath.normpath(line.removeprefix("!").strip()).lstrip("/")
        rules.append(Rule(pattern, _translate(pattern), include))
    return rules


def _self_and_parents(relative: str) -> list[str]:
    parts = relative.split("/")
    return ["/".join(parts[: n + 1]) for n in range(len(parts))]


def is_ignored(relative: str, rules: list[Rule]) -> bool:
    """Whether the file at ``relative`` (posix, from the context root) stays out of the context."""
    ignored = False
    candidates = _self_and_parents(posixpath.normpath(relative))
    for rule in rules:
        if any(rule.regex.fullmatch(candidate) for candidate in candidates):
            ignored = not rule.include
    return ignored
