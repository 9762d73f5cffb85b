"""``masksem pretrain | linear | finetune | evaluate``: torch is imported only when they run.

Under ``torchrun --nproc-per-node G -m masksem.cli pretrain ...`` each process joins the group
from the environment; only rank 0 writes.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import typer

from masksem.cli_data import parse_options

CONFIG = typer.Option(..., "--config", "-c", help="Recipe YAML, or a shipped recipe's name.")
SET = typer.Option([], "--set", help="Override a recipe field: key.sub=value (repeatable).")
OUT = typer.Option(..., "--out", "-o", help="Run folder: checkpoints, logs, metrics, plots.")
FRESH = typer.Option(False, "--fresh", help="Ignore a checkpoint in --out instead of resuming.")
DEVICE = typer.Option("auto", "--device", help="auto | cpu | cuda.")


def _setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")


def pretrain(
    config: str = CONFIG,
    overrides: list[str] = SET,
    out: Path = OUT,
    fresh: bool = FRESH,
    device: str = DEVICE,
) -> None:
    """Self-supervised pre-training (MAMP or MaskSem); resumes from --out when it can."""
    _setup_logging()
    from training.config_io import load_config
    from training.distributed import process_group
    from training.recipes.pretrain import PretrainRecipe, run_pretrain

    recipe = load_config(config, PretrainRecipe, overrides)
    with process_group(device) as ctx:
        path = run_pretrain(recipe, out, ctx, fresh=fresh)
    if ctx.is_main:
        typer.echo(f"pre-training checkpoint: {path}")
        typer.echo(f"encoder for fine-tuning (--pretrained): {path.with_name('encoder.pt')}")


def _classify(kind: str, config: str, overrides: list[str], out: Path, fresh: bool, device: str,
              pretrained: Path | None, label_fraction: float | None, seed: int | None,
              from_scratch: bool) -> None:  # fmt: skip
    _setup_logging()
    from training.config_io import load_config
    from training.distributed import process_group
    from training.recipes.classify import ClassifyRecipe, run_classify

    extra = [f"kind={kind}"]
    if pretrained is not None:
        extra.append(f"pretrained={pretrained}")
    if from_scratch:
        extra.append("pretrained=null")
    if label_fraction is not None:
        extra.append(f"label_fraction={label_fraction}")
    if seed is not None:
        extra += [f"fraction_seed={seed}", f"loop.seed={seed}"]
    recipe = load_config(config, ClassifyRecipe, [*extra, *overrides])
    with process_group(device) as ctx:
        metrics = run_classify(recipe, out, ctx, fresh=fresh)
    if ctx.is_main:
        typer.echo(json.dumps({k: metrics[k] for k in ("top1", "top5", "clips")}))


PRETRAINED = typer.Option(
    None,
    "--pretrained",
    help="Pre-trained encoder to start from: an encoder.pt (models/ ships one) or the "
    "checkpoint.pt of a pre-training run.",
)
SEED = typer.Option(None, "--seed", help="Seed of the run and of the labelled subset.")


def linear(
    config: str = CONFIG,
    overrides: list[str] = SET,
    out: Path = OUT,
    pretrained: Path | None = PRETRAINED,
    seed: int | None = SEED,
    fresh: bool = FRESH,
    device: str = DEVICE,
) -> None:
    """Linear evaluation: a frozen pre-trained encoder and a trained linear classifier."""
    _classify("linear", config, overrides, out, fresh, device, pretrained, None, seed, False)


def finetune(
    config: str = CONFIG,
    overrides: list[str] = SET,
    out: Path = OUT,
    pretrained: Path | None = PRETRAINED,
    label_fraction: float | None = typer.Option(
        None, "--label-fraction", help="Semi-supervised: train on this share of the labels."
    ),
    from_scratch: bool = typer.Option(False, "--from-scratch", help="No pre-trained encoder."),
    seed: int | None = SEED,
    fresh: bool = FRESH,
    device: str = DEVICE,
) -> None:
    """Fine-tune the whole network (or train it from scratch)."""
    _classify(
        "finetune", config, overrides, out, fresh, device, pretrained, label_fraction, seed,
        from_scratch,
    )  # fmt: skip


def evaluate(
    checkpoint: Path = typer.Option(..., "--checkpoint", help="A classifier.pt."),
    dataset: str | None = typer.Option(None, "--dataset", help="Default: the training dataset."),
    root: Path | None = typer.Option(
        None, "--root", help="Dataset folder or file (default: where the model was trained)."
    ),
    benchmark: str | None = typer.Option(None, "--benchmark"),
    option: list[str] = typer.Option(
        [], "--option", help="Loader option KEY=VALUE (e.g. layout=sbu15), over the training one."
    ),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Write metrics.json and confusion.png here."
    ),
) -> None:
    """Evaluate a finished classifier on the test split of its data (or of --dataset/--root)."""
    _setup_logging()
    from training.recipes.evaluate import evaluate_checkpoint

    metrics = evaluate_checkpoint(
        checkpoint, dataset, root, benchmark, out, options=parse_options(option)
    )
    typer.echo(json.dumps({k: metrics[k] for k in ("top1", "top5", "clips")}))
