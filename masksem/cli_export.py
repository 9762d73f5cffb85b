"""``masksem export``: a classifier checkpoint -> ONNX graph + model card (imports torch)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import warnings
from collections.abc import Iterator
from enum import Enum
from pathlib import Path

import typer


@contextlib.contextmanager
def quiet(on: bool) -> Iterator[None]:
    """Keep the exporter's progress prints (torch.onnx writes them to stdout, not to a logger)
    off the terminal; our own log lines still go to stderr."""
    if not on:
        yield
        return
    noisy = [logging.getLogger(name) for name in ("torch", "onnxscript", "onnx_ir", "onnxruntime")]
    levels = [logger.level for logger in noisy]
    for logger in noisy:
        logger.setLevel(logging.ERROR)
    try:
        with (
            open(os.devnull, "w") as sink,
            contextlib.redirect_stdout(sink),
            warnings.catch_warnings(),
        ):
            warnings.simplefilter("ignore", FutureWarning)  # torch.export's deprecations
            yield
    finally:
        for logger, level in zip(noisy, levels, strict=True):
            logger.setLevel(level)


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
    verbose: bool = typer.Option(
        False, "--verbose", help="Show the ONNX exporter's and quantiser's own logs."
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
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("training").setLevel(logging.INFO)
    from training.export import ExportError
    from training.export_checkpoint import export_checkpoint

    try:
        with quiet(not verbose):
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
        typer.echo(f"export failed: {' '.join(str(err).split())}", err=True)
        raise typer.Exit(2) from None
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
