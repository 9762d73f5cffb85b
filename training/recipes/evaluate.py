"""The one evaluation path: a classifier checkpoint rebuilt, the test split of the data it was
trained on loaded again, logits, accuracy. ``masksem evaluate``, ``masksem export``, the
training recipes' per-epoch evaluation and the benchmarks all use these functions."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn
from torch.utils.data import DataLoader, Dataset

from skeleton.clip import WindowSpec, inference_window
from training.checkpoints import ClassifierCheckpoint, DataSource
from training.data.types import SkeletonDataset, narrow
from training.model.heads import Classifier, build_classifier
from training.recipes.plots import plot_confusion


class EvaluationError(ValueError):
    """The data a checkpoint should be evaluated on cannot be loaded or does not fit it."""


@dataclass(frozen=True)
class WindowedSplit:
    """Test windows exactly as the service builds them (``inference_window``), with labels."""

    data: SkeletonDataset
    windows: NDArray[np.float32]  # (N, P, T, V, 3)
    labels: NDArray[np.int64]


def load_classifier(path: Path) -> tuple[Classifier, ClassifierCheckpoint]:
    """A finished classifier in eval mode, with its checkpoint."""
    meta, weights = ClassifierCheckpoint.read(Path(path))
    classifier = build_classifier(
        meta.model,
        meta.head,
        len(meta.labels),
        dropout=meta.head_config.dropout,
        hidden=meta.head_config.hidden,
    )
    classifier.load_state_dict(weights)
    return classifier.eval(), meta


def load_trained_data(
    meta: ClassifierCheckpoint, *, data_root: Path | None = None
) -> SkeletonDataset:
    """The data a classifier was trained on: its source's clips; for a model trained on
    untrimmed recordings (its recipe's ``stream`` section), the evaluation windows of the test
    videos, labelled as in training."""
    stream = meta.recipe.get("stream")
    if not stream:
        data: SkeletonDataset = load_source(meta.source, data_root=data_root)
        if meta.recipe.get("none_data") and meta.none_label is not None:
            # trained with a none class from other datasets: the test split is the data's
            data.classes = [*data.classes, meta.none_label]
        return data
    from training.recipes.stream_data import StreamTraining, stream_windows

    streams = load_source(meta.source, data_root=data_root, streams=True)
    seed = int(meta.recipe.get("loop", {}).get("seed", 0))
    return stream_windows(streams, StreamTraining.model_validate(stream), seed=seed).dataset


def load_source(source: DataSource, *, data_root: Path | None = None, streams: bool = False) -> Any:
    """The dataset of ``source`` (its whole recordings with ``streams``). ``data_root``
    replaces the datasets folder: a source without a root is looked for under it, one with a
    root that is gone by its folder name in it."""
    from training.data.errors import CorruptSampleError, DatasetError
    from training.data.registry import DATASETS, load_dataset, load_streams

    root = None if source.root is None else Path(source.root)
    if data_root is not None:
        entry = DATASETS.get(source.dataset)
        if root is not None and not root.exists():
            root = Path(data_root) / root.name
        elif root is None and entry is not None and entry.default_root is not None:
            root = entry.default_root(Path(data_root), source.benchmark or "", source.options)
    where = f"{source.dataset}" + (f" at {root}" if root is not None else "")
    try:
        load = load_streams if streams else load_dataset
        data = load(source.dataset, root, source.benchmark, **source.options)
    except (DatasetError, CorruptSampleError, OSError) as err:
        raise EvaluationError(
            f"cannot load {where} ({source.benchmark or 'default split'}): {err}; pass the data's "
            "location (evaluate: --dataset/--root, export: --data-root)"
        ) from err
    if streams:
        if source.validation_subjects:
            raise EvaluationError(f"{where}: validation_subjects apply to trimmed clips only")
        if source.limit is not None:
            data.train, data.test = data.train[: source.limit], data.test[: source.limit]
        return data
    assert isinstance(data, SkeletonDataset)
    return narrow(data, validation_subjects=source.validation_subjects, limit=source.limit)


def check_fits(meta: ClassifierCheckpoint, data: SkeletonDataset, checkpoint: Path) -> None:
    if data.layout != meta.layout or list(data.classes) != list(meta.labels):
        raise EvaluationError(
            f"{checkpoint} classifies {len(meta.labels)} {meta.layout} classes; {data.name} has "
            f"{len(data.classes)} {data.layout} classes: evaluate on the data it was trained on"
        )


def split_windows(
    data: SkeletonDataset, window: WindowSpec, limit: int | None = None
) -> WindowedSplit:
    """The test clips through ``inference_window`` (the serving path), and their labels."""
    samples = data.test[:limit] if limit else data.test
    if not samples:
        raise EvaluationError(no_test_clips(data))
    windows = np.stack([inference_window(s.data, window, where=s.name) for s in samples])
    labels = np.array([s.label for s in samples], dtype=np.int64)
    return WindowedSplit(data, windows.astype(np.float32, copy=False), labels)


@torch.no_grad()
def predict(
    model: nn.Module,
    clips: NDArray[np.float32] | Dataset[Any],
    device: torch.device | str = "cpu",
    *,
    batch: int = 64,
) -> NDArray[np.float32]:
    """Logits of every clip in order: ``clips`` is an (N, P, T, V, 3) array or a dataset of
    ``(window, label)`` items (a test feeder)."""
    was_training = model.training
    model.eval()
    dataset: Any = clips
    if isinstance(clips, np.ndarray):
        dataset = torch.from_numpy(np.ascontiguousarray(clips))
    out = []
    for item in DataLoader(dataset, batch_size=batch, shuffle=False):
        x = item[0] if isinstance(item, list | tuple) else item
        out.append(model(x.to(device)).float().cpu())
    model.train(was_training)
    return torch.cat(out).numpy().astype(np.float32, copy=False)


def accuracy_report(
    logits: NDArray[np.floating], labels: NDArray[np.integer], classes: list[str]
) -> dict[str, Any]:
    """Top-1, top-5, clip count, per-class accuracy and the confusion matrix."""
    ranked = np.argsort(-logits, axis=1)
    confusion = np.zeros((len(classes), len(classes)), dtype=np.int64)
    np.add.at(confusion, (labels, ranked[:, 0]), 1)
    per_class = confusion.diagonal() / np.maximum(confusion.sum(axis=1), 1)
    return {
        "top1": float((ranked[:, 0] == labels).mean()),
        "top5": float((ranked[:, : min(5, len(classes))] == labels[:, None]).any(axis=1).mean()),
        "clips": int(len(labels)),
        "per_class": {name: float(acc) for name, acc in zip(classes, per_class, strict=True)},
        "confusion": confusion.tolist(),
    }


def evaluate_on(
    model: nn.Module, data: SkeletonDataset, window: WindowSpec, device: torch.device | str = "cpu"
) -> dict[str, Any]:
    """The accuracy report of ``model`` on the test split of ``data`` (windows made as they
    are needed, so a large split never sits in memory at once)."""
    from training.data.feeder import SkeletonFeeder

    if not data.test:
        raise EvaluationError(no_test_clips(data))
    logits = predict(model, SkeletonFeeder(data.test, window, train=False), device)
    labels = np.array([s.label for s in data.test], dtype=np.int64)
    return accuracy_report(logits, labels, data.classes)


def no_test_clips(data: SkeletonDataset) -> str:
    return (
        f"{data.name} ({data.benchmark}) has no test clips: give a folder's manifest a split "
        "column or the test_subjects option (e.g. test_subjects=3,4)"
    )


def evaluate_checkpoint(
    checkpoint: Path,
    dataset: str | None = None,
    root: Path | None = None,
    benchmark: str | None = None,
    out: Path | None = None,
    *,
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Evaluate a finished classifier on the test split of the data it was trained on, or of
    ``dataset``/``root``/``benchmark``/``options`` where given; writes metrics.json and
    confusion.png into ``out``."""
    classifier, meta = load_classifier(checkpoint)
    source = meta.source
    changes: dict[str, Any] = {}
    if dataset is not None and dataset != source.dataset:
        changes.update(
            dataset=dataset,
            root=None,
            options={},
            benchmark=None,
            limit=None,
            validation_subjects=(),
        )
    if root is not None:
        changes["root"] = str(Path(root).resolve())
    if benchmark is not None:
        changes["benchmark"] = benchmark
    if options:
        changes["options"] = {**changes.get("options", source.options), **options}
    data = load_trained_data(meta.model_copy(update={"source": source.model_copy(update=changes)}))
    check_fits(meta, data, checkpoint)
    report = evaluate_on(classifier, data, meta.window_spec)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        body = {k: v for k, v in report.items() if k != "confusion"}
        (out / "metrics.json").write_text(json.dumps(body, indent=2))
        plot_confusion(
            np.array(report["confusion"]), data.classes, out / "confusion.png",
            title=f"{checkpoint.parent.name}: top-1 {report['top1']:.3f}",
        )  # fmt: skip
    return report
