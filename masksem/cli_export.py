"""``masksem export``: a classifier checkpoint -> ONNX graph + model card (imports torch)."""

from __future__ import annotations

import json
import logging
from enum import Enum
from pathlib import Path

import typer


class VariantChoice(str, Enum):
    fp32 = "fp32"
    int8 = "int8"
    fp16 = "fp16"


def export(
    checkpoint: Path = typer.Option(..., "--checkpoint", help="A finished classifier.pt."),
    out: Path = typer.Option(..., "--out", "-o", help="The ONNX file to write (*.onnx)."),
    variant: VariantChoice = typer.Option(
        VariantChoice.fp32, "--variant", help="fp32; int8 (dynamic quantisation, CPU); fp16 (GPU)."
    ),
    data_root: Path | None = typer.Option(
        None, "--data-root", help="Datasets folder (default: $MASKSEM_DATA_ROOT or ../shared/data)."
    ),
    name: str | None = typer.Option(None, "--name", help="Model name (default: dataset-head)."),
    version: str | None = typer.Option(
        None, "--version", help="Model version (default: the checkpoint's sha256, 12 digits)."
    ),
    limit: int | None = typer.Option(
        None, "--limit", min=1, help="Check on the first N test clips only (default: all)."
    ),
    opset: int = typer.Option(
        18,
        "--opset",
        min=17,
        help="ONNX opset. 23 exports attention as one Attention node (faster on CPU; needs "
        "onnxruntime >= 1.23).",
    ),
) -> None:
    """Export to ONNX with its card; fails unless ONNX matches PyTorch within 1e-4 (fp32)."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from training.export import ExportError
    from training.export_checkpoint import export_checkpoint

    try:
        card = export_checkpoint(
            checkpoint,
            out,
            variant.value,
            data_root=data_root,
            name=name,
            version=version,
            limit=limit,
            opset=opset,
        )
    except ExportError as err:
        typer.echo(f"export failed: {err}", err=True)
        raise typer.Exit(1) from err
    metrics = card.metrics
    summary = {
        "onnx": str(out),
        "card": str(out.with_name(out.name.removesuffix(".onnx") + ".card.json")),
        "variant": card.variant,
        "sha256": card.onnx_sha256,
        "test_top1": metrics.get(card.variant, {}).get("top1"),
        "max_abs_logit_diff": metrics["exactness"]["max_abs_logit_diff"],
    }
    typer.echo(json.dumps(summary, indent=2))
