"""``masksem export``'s work: checkpoint -> ONNX + card, checked on the real test split.

The test split of the checkpoint's own dataset gives the windows of the exactness check
(fp32 against PyTorch, at most 1e-4) and the accuracy of each variant recorded in the card.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import torch
from numpy.typing import NDArray

from skeleton.card import CardContent, ModelCard, sha256_of
from skeleton.clip import WindowSpec, inference_window
from training.data.types import SkeletonDataset
from training.export import (
    DEFAULT_OPSET,
    EXACT_TOLERANCE,
    ExportError,
    Variant,
    accuracy,
    build_classifier_from_checkpoint,
    check_exactness,
    export_graph,
    onnx_logits,
    save_with_card,
    serialized,
    to_variant,
    torch_logits,
)

log = logging.getLogger(__name__)


def load_stream_test_split(state: dict[str, Any]) -> SkeletonDataset:
    """The evaluation windows of a model trained on untrimmed recordings, labelled as in
    training (its recipe's stream section)."""
    from training.data.errors import DatasetError
    from training.recipes.classify import ClassifyRecipe, load_streams_of
    from training.recipes.stream_data import stream_windows

    recipe = ClassifyRecipe.model_validate(state["recipe"])
    assert recipe.stream is not None
    try:
        streams = load_streams_of(recipe.data)
    except (DatasetError, OSError) as err:
        raise ExportError(f"cannot load the test videos of {recipe.data.dataset}: {err}") from err
    return stream_windows(streams, recipe.stream, seed=recipe.loop.seed).dataset


def load_test_split(state: dict[str, Any], data_root: Path | None) -> SkeletonDataset:
    """The dataset the checkpoint was trained on, checked against its labels and layout."""
    from training.data.errors import DatasetError
    from training.data.registry import DATASETS, load_dataset

    if state.get("recipe", {}).get("stream"):
        return load_stream_test_split(state)
    name, benchmark = state["dataset"]["name"], state["dataset"].get("benchmark") or None
    root = None
    if data_root is not None:
        entry = DATASETS.get(name)
        if entry is None or entry.default_root is None:
            raise ExportError(f"dataset {name!r} has no default folder under --data-root")
        root = entry.default_root(Path(data_root), benchmark or "", {})
    try:
        data = load_dataset(name, root, benchmark)
    except (DatasetError, OSError) as err:
        raise ExportError(f"cannot load the test split of {name} ({benchmark}): {err}") from err
    if data.layout != state["layout"] or list(data.classes) != list(state["labels"]):
        raise ExportError(
            f"the checkpoint classifies {len(state['labels'])} {state['layout']} classes, but "
            f"{name} has {len(data.classes)} {data.layout} classes"
        )
    return data


def split_windows(
    data: SkeletonDataset, window: WindowSpec, limit: int | None
) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """The test clips through ``inference_window`` (the serving path), and their labels."""
    samples = data.test[:limit] if limit else data.test
    if not samples:
        raise ExportError(f"{data.name} has no test clips to check the export on")
    windows = np.stack([inference_window(s.data, window, where=s.name) for s in samples])
    return windows, np.array([s.label for s in samples], dtype=np.int64)


def median_clip_seconds(data: SkeletonDataset, fps: float) -> float:
    frames = [s.frames for s in data.train] or [s.frames for s in data.test]
    return round(float(np.median(frames)) / fps, 3)


def export_checkpoint(
    checkpoint: Path,
    out: Path,
    variant: Variant = "fp32",
    *,
    data_root: Path | None = None,
    name: str | None = None,
    version: str | None = None,
    limit: int | None = None,
    opset: int = DEFAULT_OPSET,
) -> ModelCard:
    """Export ``checkpoint`` to ``out`` (+ card). Raises :class:`ExportError` when the fp32
    graph differs from PyTorch by more than 1e-4 on the test windows."""
    classifier, state = build_classifier_from_checkpoint(checkpoint)
    window = WindowSpec.from_dict(state["window"])
    cfg = classifier.encoder.cfg
    if (window.frames, window.persons) != (cfg.frames, cfg.persons):
        raise ExportError(
            f"{checkpoint}: window {window.frames} frames x {window.persons} persons does not "
            f"match the model's {cfg.frames} x {cfg.persons}"
        )
    data = load_test_split(state, data_root)
    windows, labels = split_windows(data, window, limit)
    log.info("checking the export on %d %s test windows", len(windows), data.name)

    reference = torch_logits(classifier, windows)
    graph = export_graph(classifier, opset=opset)
    exact = check_exactness(graph, classifier, windows, reference=reference)
    fp32_logits = onnx_logits(graph, windows)
    metrics: dict[str, Any] = {
        "checkpoint": state.get("metrics", {}),
        "test_split": {
            "dataset": data.name,
            "benchmark": data.benchmark,
            "clips": len(windows),
            "of": len(data.test),
        },
        "torch": accuracy(reference, labels),
        "fp32": accuracy(fp32_logits, labels),
        "exactness": {
            "max_abs_logit_diff": exact.max_abs_diff,
            "max_abs_logit_diff_single_person": exact.max_abs_diff_single_person,
            "tolerance": EXACT_TOLERANCE,
        },
    }
    model = to_variant(graph, variant)
    if variant != "fp32":
        logits = onnx_logits(serialized(model), windows)
        metrics[variant] = {
            **accuracy(logits, labels),
            "max_abs_logit_diff_vs_fp32": float(np.abs(logits - fp32_logits).max()),
            "argmax_agreement_with_fp32": float(
                (logits.argmax(axis=1) == fp32_logits.argmax(axis=1)).mean()
            ),
        }
        metrics["change_vs_fp32"] = {
            k: metrics[variant][k] - metrics["fp32"][k] for k in ("top1", "top5")
        }
    checkpoint_sha = sha256_of(Path(checkpoint))
    head = state.get("head", "classifier")
    fields = CardContent(
        name=name or f"{data.name}-{head}",
        version=version or checkpoint_sha[:12],
        labels=tuple(state["labels"]),
        layout=state["layout"],
        window=window,
        fps=float(state["fps"]),
        training={
            "dataset": state["dataset"],
            "head": head,
            "model_config": state["model_config"],
            "recipe": state.get("recipe", {}),
            "checkpoint_sha256": checkpoint_sha,
            "absent_person_shortcut": (
                "persons beyond the input's P take the encoder features of an all-zero person, "
                "computed at export; send P = 1 when the second person is absent"
                if cfg.persons > 1
                else None
            ),
            "exported_with": {
                "torch": torch.__version__,
                "onnxruntime": onnxruntime.__version__,
            },
        },
        metrics=metrics,
        stream_window_s=state.get("stream_window_s")
        or median_clip_seconds(data, float(state["fps"])),
        none_label=state.get("none_label"),
        decision=state.get("decision"),
    )
    card = save_with_card(model, fields, out, variant=variant, single_person_input=cfg.persons > 1)
    log.info("wrote %s (%s, sha256 %s)", out, variant, card.onnx_sha256[:12])
    return card
