"""The nearest-neighbour floor of ../shared/data/README.md, recomputed with this project's own
preprocessing, and the same floor for the study's 10 % label subsets.

A 1-nearest-neighbour classifier (Euclidean distance) on person 0's whole clip resized to 20
frames, no learning, with three ways of placing the joints (``PLACINGS``):

- ``readme``: the README's recipe as we read it: the root joint subtracted in every frame,
  then divided by the clip's standard deviation (README: UTD-MHAD cross-subject 0.851, NW-UCLA
  cross-view 0.537);
- ``window``: skeleton.clip's inference window, what the models see: torso-length scale, the
  root of the first frame at the origin;
- ``window+facing``: the same after the facing step of the NW-UCLA recipes.

Each with all training labels, and with only the class-stratified 10 % subsets that the
study's semi-supervised rows train on (the same ``labelled_subset`` and seeds): the fair floor
for those rows.

    python -m benchmarks.nn_floor            # a few seconds
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.report import publish
from skeleton.clip import WindowSpec, inference_window, resize_time, valid_frames
from skeleton.layouts import Layout, get_layout
from training.data.feeder import labelled_subset
from training.data.registry import load_dataset
from training.data.types import Sample, SkeletonDataset

RESULTS = Path(__file__).parent / "results"
# dataset, benchmark, the README's floor
DATASETS = {"utd-mhad": ("xsub", 0.851), "nw-ucla": ("xview", 0.537)}
FRAMES = 20
PLACINGS = ("readme", "window", "window+facing")


def placed(sample: Sample, layout: Layout, placing: str) -> np.ndarray:
    """Person 0 of the clip, ``(1, FRAMES, V, 3)``, placed as ``placing`` says."""
    if placing == "readme":
        x = valid_frames(sample.data, where=sample.name)[:1]
        x = x - x[:, :, layout.root : layout.root + 1]
        return resize_time((x / x.std()).astype(np.float32), FRAMES)
    spec = WindowSpec(
        frames=FRAMES,
        persons=1,
        test_crop=1.0,
        centre_joint=layout.root,
        scale_bone=layout.torso,
        face_pairs=layout.across if placing == "window+facing" else None,
    )
    return inference_window(sample.data, spec, where=sample.name)


def features(samples: list[Sample], layout: Layout, placing: str) -> np.ndarray:
    """One flat vector per clip."""
    return np.stack([placed(s, layout, placing).ravel() for s in samples])


def nearest_neighbour_top1(
    data: SkeletonDataset, placing: str, neighbours: list[list[Sample]]
) -> list[float]:
    """For each list of training clips in ``neighbours``: the share of ``data.test`` clips
    whose closest clip of that list (Euclidean) has their label. Features are computed once."""
    layout = get_layout(data.layout)
    train, test = features(data.train, layout, placing), features(data.test, layout, placing)
    train_labels = np.array([s.label for s in data.train])
    test_labels = np.array([s.label for s in data.test])
    distances = (test**2).sum(axis=1)[:, None] - 2.0 * test @ train.T + (train**2).sum(axis=1)
    position = {id(s): i for i, s in enumerate(data.train)}
    scores = []
    for clips in neighbours:
        keep = np.array([position[id(s)] for s in clips])
        nearest = keep[distances[:, keep].argmin(axis=1)]
        scores.append(float((train_labels[nearest] == test_labels).mean()))
    return scores


def subset_floors(
    data: SkeletonDataset, fraction: float, seeds: list[int], placing: str = "readme"
) -> list[float]:
    """The floor with only the labelled subset of each seed (``labelled_subset``, as the
    semi-supervised runs with that ``fraction_seed`` see it) as neighbours."""
    subsets = [labelled_subset(data.train, fraction, s) for s in seeds]
    return nearest_neighbour_top1(data, placing, subsets)


def floors(dataset: str, benchmark: str, seeds: list[int], fraction: float) -> list[dict[str, Any]]:
    data = load_dataset(dataset, None, benchmark)
    subsets = [labelled_subset(data.train, fraction, s) for s in seeds]
    rows: list[dict[str, Any]] = []
    for placing in PLACINGS:
        every, *each = nearest_neighbour_top1(data, placing, [data.train, *subsets])
        for labels, clips, top1 in (
            ("all labels", len(data.train), [every]),
            (f"{fraction:.0%} labels", len(subsets[0]), each),
        ):
            rows.append(
                {
                    "dataset": dataset,
                    "benchmark": benchmark,
                    "placing": placing,
                    "labels": labels,
                    "train_clips": clips,
                    "test_clips": len(data.test),
                    "top1": top1,
                }
            )
    return rows


def markdown(rows: list[dict[str, Any]], seeds: list[int]) -> str:
    lines = [
        "## The nearest-neighbour floor, recomputed",
        "",
        f"1-nearest-neighbour on the whole clip resized to {FRAMES} frames, no learning. "
        "Placing: `readme` is the README's recipe as we read it (root subtracted in every frame, "
        "divided by the clip's standard deviation); `window` is the models' inference window "
        "(torso-length scale, first frame's root at the origin); `window+facing` adds the "
        "facing step of the NW-UCLA recipes. The 10 % rows use only the labelled subsets of the "
        f"study's semi-supervised rows: mean ± standard deviation over seeds {seeds}. "
        "Reproduce: `python -m benchmarks.nn_floor`.",
        "",
        "| dataset | benchmark | placing | labels | train clips | test clips | top-1 "
        "| README floor |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        scores = row["top1"]
        top1 = (
            f"{scores[0]:.3f}"
            if len(scores) == 1
            else f"{statistics.mean(scores):.3f} ± {statistics.stdev(scores):.3f}"
        )
        lines.append(
            f"| {row['dataset']} | {row['benchmark']} | {row['placing']} "
            f"| {row['labels']} | {row['train_clips']} | {row['test_clips']} | {top1} "
            f"| {DATASETS[row['dataset']][1]:.3f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--fraction", type=float, default=0.1)
    parser.add_argument("--out", type=Path, default=RESULTS / "nn_floor.json")
    args = parser.parse_args(argv)
    rows = [
        row
        for dataset, (benchmark, _) in DATASETS.items()
        for row in floors(dataset, benchmark, args.seeds, args.fraction)
    ]
    publish("nn_floor", {"rows": rows}, args.out, markdown(rows, args.seeds))


if __name__ == "__main__":
    main()
