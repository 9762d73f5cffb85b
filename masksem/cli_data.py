"""``masksem data``: prepare the NTU npz files and print dataset statistics."""

from __future__ import annotations

import json
import logging
from enum import Enum
from pathlib import Path
from typing import Any

import typer

data_app = typer.Typer(
    help="Prepare datasets and check what a download holds.", no_args_is_help=True
)
prepare_app = typer.Typer(help="Convert a raw download into training files.", no_args_is_help=True)
data_app.add_typer(prepare_app, name="prepare")


class NtuBenchmarkName(str, Enum):
    xsub = "xsub"
    xview = "xview"
    xsub120 = "xsub120"
    xset120 = "xset120"


@prepare_app.command("ntu")
def prepare_ntu_command(
    raw: Path = typer.Option(
        ..., "--raw", help="Folder holding the .skeleton files (searched recursively)."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="The .npz file to write."),
    benchmark: NtuBenchmarkName = typer.Option(NtuBenchmarkName.xsub, "--benchmark"),
    missing: Path | None = typer.Option(
        None,
        "--missing",
        help="NTU's samples_with_missing_skeletons.txt; listed samples are skipped.",
    ),
    workers: int = typer.Option(1, "--workers", min=1, help="Parallel parser processes."),
) -> None:
    """Parse, denoise, centre and pad NTU RGB+D into x_train/y_train/x_test/y_test."""
    from tqdm import tqdm

    from training.data.errors import CorruptSampleError, DatasetError
    from training.data.ntu_prepare import prepare_ntu

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    try:
        report = prepare_ntu(
            raw,
            out,
            benchmark.value,
            missing,
            workers=workers,
            progress=lambda items, total: tqdm(
                items, total=total, unit="clip", desc=benchmark.value
            ),
        )
    except (DatasetError, CorruptSampleError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None
    typer.echo(
        f"wrote {report.out}: {report.train} train, {report.test} test clips, "
        f"{report.frames} frames each"
    )
    typer.echo(f"skipped {report.missing_skipped} samples listed as missing skeletons")
    typer.echo(f"skipped {len(report.skipped)} unreadable or corrupt files")
    for item in report.skipped:
        typer.echo(f"  {item.source}: {item.reason}")


@prepare_app.command("pku-mmd")
def prepare_pku_command(
    root: Path | None = typer.Option(
        None, "--root", help="PKU-MMD folder; default: MASKSEM_DATA_ROOT/pku-mmd."
    ),
    phase: int = typer.Option(1, "--phase", min=1, max=2),
) -> None:
    """Parse every PKU-MMD video once into the user cache (MASKSEM_CACHE_DIR, default
    ~/.cache/masksem), so later reads of the streams take seconds."""
    from training.data.cache import cache_dir
    from training.data.errors import CorruptSampleError, DatasetError
    from training.data.registry import load_streams

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    try:
        streams = load_streams("pku-mmd", root, None, phase=phase)
    except (DatasetError, CorruptSampleError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None
    stats = streams.stats()
    typer.echo(
        f"cached {stats['videos']} videos ({stats['frames']} frames) in {cache_dir()}; "
        f"skipped {stats['skipped']}"
    )
    for item in streams.skipped:
        typer.echo(f"  {item.source}: {item.reason}")


def parse_options(pairs: list[str]) -> dict[str, Any]:
    """``--option KEY=VALUE`` pairs as loader options (dashes in keys become underscores)."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--option")
        options[key.strip().replace("-", "_")] = value.strip()
    return options


def _table(stats: dict[str, Any]) -> str:
    frames = stats["frames"]
    rows = [(k, v) for k, v in stats.items() if k not in ("frames", "instances_per_class")]
    if isinstance(frames, dict):
        frames = f"min {frames['min']}, median {frames['median']:g}, max {frames['max']}"
    rows.append(("frames", frames))
    per_class = stats.get("instances_per_class", {})
    rows.extend((f"  {name}", count) for name, count in per_class.items())
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


@data_app.command("stats")
def stats_command(
    dataset: str = typer.Argument(
        ..., help="utd-mhad, nw-ucla, sbu, ntu, pku-mmd, folder, folder-streams or spliced."
    ),
    root: Path | None = typer.Option(
        None,
        "--root",
        help="Dataset folder (ntu: the .npz file); default: under MASKSEM_DATA_ROOT.",
    ),
    benchmark: str | None = typer.Option(
        None, "--benchmark", help="Split; default: the standard one."
    ),
    option: list[str] = typer.Option(
        [], "--option", help="Loader option KEY=VALUE, e.g. phase=2, layout=k4a32, fps=15."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    clips: bool = typer.Option(
        False, "--clips", help="Untrimmed datasets: count the trimmed instances instead."
    ),
) -> None:
    """Count sequences, classes, subjects, joints and the split of a dataset; for untrimmed
    recordings (pku-mmd, folder-streams, spliced): videos, frames, background share, instances per
    class."""
    from training.data.errors import CorruptSampleError, DatasetError
    from training.data.registry import has_streams, load_dataset, load_streams

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    load = load_streams if has_streams(dataset) and not clips else load_dataset
    try:
        stats = load(dataset, root, benchmark, **parse_options(option)).stats()
    except (DatasetError, CorruptSampleError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None
    typer.echo(json.dumps(stats) if as_json else _table(stats))
    if not stats.get("sequences", stats.get("videos")):
        reason = f"; {stats['skipped']} skipped as unreadable" if stats["skipped"] else ""
        where = root if root is not None else stats["name"]
        typer.echo(f"error: {dataset} at {where} holds no readable sequence{reason}", err=True)
        raise typer.Exit(2)
