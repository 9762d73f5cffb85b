"""How long reading all 218 PKU-MMD videos takes: the first time (parsing the xz-compressed
text and filling the prepared-data cache) and every time after (the cache).

    python -m benchmarks.pku_cache [--repeats 5]

Each run points ``MASKSEM_CACHE_DIR`` at a fresh temporary folder, reads every video through
``training.data.registry.load_streams("pku-mmd")`` (what training, the streaming benchmark and
``masksem data prepare pku-mmd`` call), then reads them again ``--repeats`` times. Writes
benchmarks/results/pku_cache.json (every timing, medians) and a RESULTS.md section.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from benchmarks.report import publish
from training.data.cache import CACHE_ENV
from training.data.registry import data_root, load_streams

RESULTS = Path(__file__).parent / "results" / "pku_cache.json"


def timed_read() -> tuple[float, int, int]:
    """Seconds to read every video; the number of videos and of frames read."""
    start = time.perf_counter()
    data = load_streams("pku-mmd", benchmark="xsub")
    seconds = time.perf_counter() - start
    videos = [*data.train, *data.test]
    return seconds, len(videos), sum(v.data.shape[1] for v in videos)


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="cached reads after the first")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    previous = os.environ.get(CACHE_ENV)
    with tempfile.TemporaryDirectory(prefix="masksem-cache-") as cache:
        os.environ[CACHE_ENV] = cache
        try:
            first, videos, frames = timed_read()
            cached = [timed_read()[0] for _ in range(args.repeats)]
            cache_bytes = folder_bytes(Path(cache))
        finally:
            if previous is None:
                os.environ.pop(CACHE_ENV, None)
            else:
                os.environ[CACHE_ENV] = previous
    source = data_root() / "pku-mmd"
    result: dict[str, Any] = {
        "command": "python -m benchmarks.pku_cache " + " ".join(argv or sys.argv[1:]),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "load_average_1min": os.getloadavg()[0],
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "videos": videos,
        "frames": frames,
        "first_read_s": round(first, 2),
        "cached_read_s": [round(s, 3) for s in cached],
        "cached_read_median_s": round(statistics.median(cached), 3),
        "source_bytes": folder_bytes(source),
        "cache_bytes": cache_bytes,
    }
    publish("pku_cache", result, args.out, markdown(result))


def markdown(r: dict[str, Any]) -> str:
    return "\n".join(
        [
            "## Reading PKU-MMD: first time and cached",
            "",
            f"`{r['command'].strip()}` ({r['machine']}, load average "
            f"{r['load_average_1min']:.1f}, {r['date']}). Every one of the {r['videos']} "
            f"videos ({r['frames']:,} frames) read through `load_streams('pku-mmd')` with an "
            "empty prepared-data cache (parsing the xz-compressed text, writing the cache), "
            f"then {len(r['cached_read_s'])} times from the cache (each file still hashed to "
            "find its entry).",
            "",
            "| first read (parse + cache) | cached read, median | cached reads | source | cache |",
            "| --- | --- | --- | --- | --- |",
            f"| {r['first_read_s']:.1f} s | {r['cached_read_median_s']:.2f} s "
            f"| {', '.join(f'{s:.2f}' for s in r['cached_read_s'])} s "
            f"| {r['source_bytes'] / 1e6:.0f} MB | {r['cache_bytes'] / 1e6:.0f} MB |",
        ]
    )


if __name__ == "__main__":
    main()
