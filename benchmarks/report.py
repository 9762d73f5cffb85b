"""benchmarks/RESULTS.md is assembled from sections, one per benchmark script, each replaced in
place when its script runs again."""

from __future__ import annotations

import json
import platform
import re
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

RESULTS_MD = Path(__file__).parent / "RESULTS.md"
HEADER = (
    "# Measured results\n\n"
    "Every figure here is written by a script in `benchmarks/`; each section names the command "
    "that reproduces it, the machine and the date. Raw numbers are in `benchmarks/results/`.\n"
)


def write_section(key: str, markdown: str, path: Path = RESULTS_MD) -> None:
    """Put ``markdown`` between this key's markers in RESULTS.md, replacing what was there."""
    text = path.read_text() if path.is_file() else HEADER
    block = f"<!-- begin:{key} -->\n{markdown.rstrip()}\n<!-- end:{key} -->"
    pattern = re.compile(rf"<!-- begin:{re.escape(key)} -->.*?<!-- end:{re.escape(key)} -->", re.S)
    text = (
        pattern.sub(lambda _: block, text)
        if pattern.search(text)
        else f"{text.rstrip()}\n\n{block}\n"
    )
    path.write_text(text if text.endswith("\n") else text + "\n")


def publish(key: str, result: dict[str, Any], json_path: Path, markdown: str) -> None:
    """Write a benchmark's raw result as JSON, its section into RESULTS.md, and print it."""
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(result, indent=2) + "\n")
    write_section(key, markdown)
    print(markdown)


def provenance(module: str, argv: Sequence[str], threads: int) -> dict[str, str]:
    """When, where and how a benchmark ran: its ``date`` (UTC), ``machine`` (processor and
    ``threads``) and the ``command`` that reproduces it (``python -m module argv``)."""
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.processor() or platform.machine()}, {threads} threads",
        "command": " ".join([f"python -m {module}", *argv]),
    }
