"""Does MaskSem pay off? The real-data study of issue 4 on UTD-MHAD (cross-subject) and NW-UCLA
(cross-view), several seeds each: from-scratch supervised; MAMP and MaskSem pre-training, each
followed by linear evaluation, fine-tuning and 10 % semi-supervised fine-tuning.

MAMP and MaskSem get the same pre-training budget in epochs: MAMP runs ``mamp + masksem``
epochs of motion-aware masking; MaskSem runs the ``mamp`` epochs of its first stage, then
``masksem`` semantic-guided epochs. Every run is resumable: re-running the command skips what
is finished. Rows go to benchmarks/results/study.json, the table and plots to RESULTS.md.

    python -m benchmarks.study                    # the full study (hours on 2 CPU cores)
    python -m benchmarks.study --datasets utd --seeds 0 --scale 0.25   # a quick partial look
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path
from typing import Any

import torch

from benchmarks.report import publish
from training.config_io import load_config
from training.distributed import DistContext
from training.recipes.classify import ClassifyRecipe, run_classify
from training.recipes.plots import plt
from training.recipes.pretrain import PretrainRecipe, run_pretrain

RESULTS = Path(__file__).parent / "results"
DATASETS = {"utd": ("utd-mhad", "xsub", 0.851), "nwucla": ("nw-ucla", "xview", 0.537)}
CPU = DistContext(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))


def scaled(epochs: int, scale: float) -> int:
    return max(1, round(epochs * scale))


def pretrain(prefix: str, method: str, seed: int, out: Path, scale: float) -> Path:
    mamp = load_config(f"{prefix}_mamp", PretrainRecipe)
    masksem = load_config(f"{prefix}_masksem", PretrainRecipe)
    stage1 = scaled(mamp.loop.epochs, scale)
    stage2 = scaled(masksem.loop.epochs, scale)
    first = mamp.model_copy(
        update={"loop": mamp.loop.model_copy(update={"seed": seed, "epochs": stage1})}
    )
    if method == "mamp":
        budget = first.loop.model_copy(update={"epochs": stage1 + stage2})
        return run_pretrain(first.model_copy(update={"loop": budget}), out / "mamp", CPU)
    stage1_ckpt = run_pretrain(first, out / "masksem" / "stage1", CPU)
    second = masksem.model_copy(
        update={
            "init": masksem.init.model_copy(update={"recipe": None, "checkpoint": stage1_ckpt}),
            "loop": masksem.loop.model_copy(update={"seed": seed, "epochs": stage2}),
        }
    )
    return run_pretrain(second, out / "masksem", CPU)


def classify(
    prefix: str, kind: str, seed: int, out: Path, scale: float, **fields: Any
) -> dict[str, Any]:
    recipe = load_config(f"{prefix}_{kind}", ClassifyRecipe)
    loop = recipe.loop.model_copy(
        update={"seed": seed, "epochs": scaled(recipe.loop.epochs, scale)}
    )
    recipe = recipe.model_copy(update={"loop": loop, "fraction_seed": seed, **fields})
    return run_classify(recipe, out, CPU)


def study(datasets: list[str], seeds: list[int], scale: float, root: Path) -> list[dict[str, Any]]:
    rows = []
    for key in datasets:
        name, benchmark, _ = DATASETS[key]
        for seed in seeds:
            base = root / key / f"seed{seed}"
            runs: list[tuple[str, str, dict[str, Any]]] = [
                ("finetune", "scratch", classify(key, "finetune", seed, base / "scratch", scale))
            ]
            for method in ("mamp", "masksem"):
                ckpt = pretrain(key, method, seed, base / "pretrain", scale)
                for protocol, kind, extra in (
                    ("linear", "linear", {}),
                    ("finetune", "finetune", {}),
                    ("semi10", "finetune", {"label_fraction": 0.1}),
                ):
                    out = base / f"{method}-{protocol}"
                    metrics = classify(key, kind, seed, out, scale, pretrained=ckpt, **extra)
                    runs.append((protocol, method, metrics))
            rows += [
                {
                    "dataset": name,
                    "benchmark": benchmark,
                    "protocol": protocol,
                    "method": method,
                    "seed": seed,
                    "top1": metrics["top1"],
                    "top5": metrics["top5"],
                }  # fmt: skip
                for protocol, method, metrics in runs
            ]
    return rows


def table(rows: list[dict[str, Any]], scale: float, command: str) -> str:
    groups: dict[tuple[str, str, str], list[float]] = {}
    for r in rows:
        groups.setdefault((r["dataset"], r["protocol"], r["method"]), []).append(r["top1"])
    floor = {name: nn for name, _, nn in DATASETS.values()}
    lines = [
        "## The real-data study: MAMP vs MaskSem",
        "",
        f"Top-1 on the test split, mean ± standard deviation over seeds; epochs scaled by "
        f"{scale} from the small CPU recipes. Floor: the nearest-neighbour classifier of "
        f"`../shared/data/README.md`. Reproduce: `{command}`.",
        "",
        "| dataset | protocol | method | seeds | top-1 mean | spread (sd) | NN floor |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for (dataset, protocol, method), values in sorted(groups.items()):
        sd = statistics.stdev(values) if len(values) > 1 else float("nan")
        lines.append(
            f"| {dataset} | {protocol} | {method} | {len(values)} | "
            f"{statistics.mean(values):.3f} | {sd:.3f} | {floor[dataset]:.3f} |"
        )
    lines += ["", "![study](results/study.png)"]
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    datasets = sorted({r["dataset"] for r in rows})
    fig, axes = plt.subplots(1, len(datasets), figsize=(6 * len(datasets), 4), squeeze=False)
    for ax, dataset in zip(axes[0], datasets, strict=True):
        subset = [r for r in rows if r["dataset"] == dataset]
        labels = sorted({f"{r['protocol']}\n{r['method']}" for r in subset})
        for i, label in enumerate(labels):
            values = [r["top1"] for r in subset if f"{r['protocol']}\n{r['method']}" == label]
            ax.scatter([i] * len(values), values, color="tab:blue")
            ax.bar(i, statistics.mean(values), alpha=0.3, color="tab:blue")
        ax.set_xticks(range(len(labels)), labels, fontsize=7)
        ax.set_ylabel("top-1")
        ax.set_title(dataset)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every epoch count")
    parser.add_argument("--runs", type=Path, default=Path("runs/study"))
    args = parser.parse_args()
    rows = study(args.datasets, args.seeds, args.scale, args.runs)
    RESULTS.mkdir(exist_ok=True)
    plot(rows, RESULTS / "study.png")
    command = (
        f"python -m benchmarks.study --datasets {' '.join(args.datasets)} "
        f"--seeds {' '.join(map(str, args.seeds))} --scale {args.scale}"
    )
    publish("study", {"rows": rows}, RESULTS / "study.json", table(rows, args.scale, command))


if __name__ == "__main__":
    main()
