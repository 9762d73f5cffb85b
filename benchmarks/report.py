"""benchmarks/RESULTS.md is assembled from sections, one per benchmark script, each replaced in
place when its script runs again."""

from __future__ import annotations

import re
from pathlib import Path

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
