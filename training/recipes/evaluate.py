"""Evaluate a finished classifier checkpoint on a dataset's test split."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from skeleton.clip import WindowSpec
from training.recipes.classify import classifier_from_checkpoint, evaluate_classifier
from training.recipes.common import DataConfig, load_data
from training.recipes.plots import plot_confusion


def evaluate_checkpoint(
    checkpoint: Path,
    dataset: str | None = None,
    root: Path | None = None,
    benchmark: str | None = None,
    out: Path | None = None,
) -> dict[str, Any]:
    from training.data.feeder import SkeletonFeeder

    classifier, state = classifier_from_checkpoint(checkpoint)
    trained_on = state["dataset"]
    data_cfg = DataConfig(
        dataset=dataset or trained_on["name"],
        root=root,
        benchmark=benchmark if benchmark is not None else trained_on["benchmark"],
    )
    data = load_data(data_cfg)
    if data.layout != state["layout"] or list(data.classes) != list(state["labels"]):
        raise ValueError(
            f"{checkpoint} classifies {len(state['labels'])} {state['layout']} classes; "
            f"{data.name} has {len(data.classes)} {data.layout} classes"
        )
    window = WindowSpec.from_dict(state["window"])
    test = SkeletonFeeder(data.test, window, train=False)
    report = evaluate_classifier(classifier, test, data.classes, torch.device("cpu"))
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        body = {k: v for k, v in report.items() if k != "confusion"}
        (out / "metrics.json").write_text(json.dumps(body, indent=2))
        plot_confusion(
            np.array(report["confusion"]), data.classes, out / "confusion.png",
            title=f"{checkpoint.parent.name}: top-1 {report['top1']:.3f}",
        )  # fmt: skip
    return report
