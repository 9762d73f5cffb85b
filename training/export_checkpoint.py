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
from training.checkpoints import ClassifierCheckpoint
from training.data.types import SkeletonDataset
from training.export import (
    DEFAULT_OPSET,
    EXACT_TOLERANCE,
    ExportError,
    Variant,
    build_classifier_from_checkpoint,
    check_exactness,
    export_graph,
    onnx_logits,
    save_with_card,
    serialized,
    to_variant,
)
from training.recipes.evaluate import (
    EvaluationError,
    accuracy_report,
    check_fits,
    load_trained_data,
    predict,
    split_windows,
)

log = logging.getLogger(__name__)


def accuracy(logits: NDArray[np.floating], labels: NDArray[np.integer]) -> dict[str, float]:
    report = accuracy_report(logits, labels, [str(i) for i in range(logits.shape[1])])
    return {"top1": report["top1"], "top5": report["top5"]}


def median_clip_seconds(data: SkeletonDataset, fps: float) -> float:
    frames = [s.frames for s in data.train] or [s.frames for s in data.test]
    return round(float(np.median(frames)) / fps, 3)


def card_content(meta: ClassifierCheckpoint, fields: dict[str, Any]) -> CardContent:
    """The card's fields, with the checkpoint's continuous-recognition settings."""
    return CardContent(**fields, none_label=meta.none_label, decision=meta.decision)


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
    classifier, meta = build_classifier_from_checkpoint(checkpoint)
    window = meta.window_spec
    cfg = classifier.encoder.cfg
    if (window.frames, window.persons) != (cfg.frames, cfg.persons):
        raise ExportError(
            f"{checkpoint}: window {window.frames} frames x {window.persons} persons does not "
            f"match the model's {cfg.frames} x {cfg.persons}"
        )
    try:
        data = load_trained_data(meta, data_root=data_root)
        check_fits(meta, data, checkpoint)
        split = split_windows(data, window, limit)
    except EvaluationError as err:
        raise ExportError(str(err)) from err
    windows, labels = split.windows, split.labels
    log.info("checking the export on %d %s test windows", len(windows), data.name)

    reference = predict(classifier, windows, batch=32)
    graph = export_graph(classifier, opset=opset)
    exact = check_exactness(graph, classifier, windows, reference=reference)
    fp32_logits = onnx_logits(graph, windows)
    metrics: dict[str, Any] = {
        "checkpoint": meta.metrics,
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
    source = meta.source
    fields = card_content(
        meta,
        dict(
            name=name or f"{data.name}-{meta.head}",
            version=version or checkpoint_sha[:12],
            labels=tuple(meta.labels),
            layout=meta.layout,
            window=window,
            fps=meta.fps,
            training={
                "dataset": {"name": data.name, "benchmark": data.benchmark},
                "source": source.model_dump(mode="json"),
                "head": meta.head,
                "model_config": meta.model.model_dump(mode="json"),
                "recipe": meta.recipe,
                "checkpoint_sha256": checkpoint_sha,
                "pretrained_sha256": meta.pretrained_sha256,
                "absent_person_shortcut": (
                    "persons beyond the input's P take the encoder features of an all-zero "
                    "person, computed at export; send P = 1 when the second person is absent"
                    if cfg.persons > 1
                    else None
                ),
                "exported_with": {
                    "torch": torch.__version__,
                    "onnxruntime": onnxruntime.__version__,
                },
            },
            metrics=metrics,
            stream_window_s=meta.stream_window_s or median_clip_seconds(data, meta.fps),
        ),
    )
    card = save_with_card(model, fields, out, variant=variant, single_person_input=cfg.persons > 1)
    log.info("wrote %s (%s, sha256 %s)", out, variant, card.onnx_sha256[:12])
    return card
