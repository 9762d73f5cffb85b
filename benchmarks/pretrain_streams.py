"""Issue 18's study: does pre-training on hours of untrimmed recordings pay? Pre-training on
PKU-MMD's untrimmed cross-subject training videos (labels unused, recipes pku_streams_*),
evaluated on its trimmed interactions, and transferred to UTD-MHAD and NW-UCLA.

Arms, equal budgets, paired by seed: ``scratch`` (no pre-training); one shared MAMP stage on the
streams (``--stage1-epochs``), then ``--stage2-epochs`` more from it for each of ``mamp``
(motion-aware masking, velocity target), ``masksem`` (semantic-guided masking with the release's
CAM, ``cam: binary``, hybrid target) and ``masksem-top`` (the same with ``cam: top`` marking
``--cam-share`` of the part-segments). Protocols on the trimmed instances of the eight PKU-MMD
interactions (cross-subject): ``linear``, ``finetune``, ``semi1`` and ``semi10`` (fine-tuning on
a class-stratified 1 % / 10 % of the labels, a different subset per seed). Transfer: each arm's
encoder fine-tuned on UTD-MHAD (cross-subject) and NW-UCLA (cross-view), the ntu25 joint
embedding carried onto their Kinect v1 joints (classify.load_encoder), against scratch with the
same settings (NW-UCLA at the streams' 64-frame window, so the encoder fits). Floor per dataset:
the nearest-neighbour classifier of benchmarks/nn_floor.py (``readme`` placing, all labels),
the same way as for the other sets: it sees person 0 only, so for the two-person interactions
it sits below the data README's floor, which placed both persons on actor 1's first frame.

Rows go to benchmarks/results/pretrain_streams.json (``rows``: dataset, protocol, method,
seed, top1; ``floor``: one per dataset; the budget), the table to RESULTS.md. Every run
resumes and a finished one is read back, so re-running only does what is missing.

    python -m benchmarks.pretrain_streams                  # the study (hours: size it first)
    python -m benchmarks.pretrain_streams --smoke --runs runs/pretrain-streams-smoke \\
        --results /tmp/pretrain_streams.json --no-section   # proves the harness end to end
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from benchmarks.nn_floor import nearest_neighbour_top1
from benchmarks.report import publish
from benchmarks.study import read_back_or_run
from training.config_io import load_config
from training.data.registry import load_dataset
from training.distributed import DistContext
from training.recipes.classify import ClassifyRecipe
from training.recipes.pretrain import PretrainRecipe, run_pretrain

RESULTS = Path(__file__).parent / "results"
CPU = DistContext(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
# the eight interactions of the shipped interaction model's recipe
INTERACTIONS = list(load_config("pku_interactions", ClassifyRecipe).stream.classes)
PKU = {"dataset": "pku-mmd", "benchmark": "xsub", "options": {"classes": INTERACTIONS}}
# stage-2 arms: masking, target orders, CAM rule
ARMS: dict[str, dict[str, Any]] = {
    "mamp": {"masking": "motion", "orders": (1,), "cam": "binary"},
    "masksem": {"masking": "semantic", "orders": (1, 2), "cam": "binary"},
    "masksem-top": {"masking": "semantic", "orders": (1, 2), "cam": "top"},
}
PROTOCOLS = {"linear": 1.0, "finetune": 1.0, "semi1": 0.01, "semi10": 0.1}
# dataset name in the rows: (recipe prefix of its fine-tuning, data fields, floor benchmark)
TRANSFER = {
    "utd-mhad": ("utd", {}, "xsub"),
    "nw-ucla": ("nwucla", {"frames": 64}, "xview"),
}


def pretrain(seed: int, out: Path, args: argparse.Namespace) -> dict[str, Path]:
    """The shared MAMP stage on the streams, then each arm from it: {arm: checkpoint}."""
    streams = {"windows_per_epoch": args.windows}
    first = load_config("pku_streams_mamp", PretrainRecipe)
    first = first.model_copy(update={
        "streams": first.streams.model_copy(update=streams) if first.streams else None,
        "loop": scaled_loop(first, args.stage1_epochs, seed, args.threads),
    })  # fmt: skip
    stage1 = run_pretrain(first, out / "stage1", CPU)
    second = load_config("pku_streams_masksem", PretrainRecipe)
    checkpoints = {}
    for arm, spec in ARMS.items():
        targets = {"orders": spec["orders"], "cam": spec["cam"], "cam_share": args.cam_share}
        recipe = second.model_copy(update={
            "name": f"{second.name}-{arm}",
            "masking": spec["masking"],
            "pretrain": second.pretrain.model_copy(update=targets),
            "init": second.init.model_copy(update={"recipe": None, "checkpoint": stage1}),
            "streams": second.streams.model_copy(update=streams) if second.streams else None,
            "loop": scaled_loop(second, args.stage2_epochs, seed, args.threads),
        })  # fmt: skip
        checkpoints[arm] = run_pretrain(recipe, out / arm, CPU)
    return checkpoints


def scaled_loop(recipe: Any, epochs: int, seed: int, threads: int) -> Any:
    """The recipe's loop at ``epochs`` epochs, its warm-up scaled alike."""
    warmup = round(recipe.loop.warmup_epochs * epochs / recipe.loop.epochs)
    update = {"epochs": epochs, "warmup_epochs": warmup, "seed": seed, "threads": threads}
    return recipe.loop.model_copy(update=update)


def pku_recipe(protocol: str, pretrained: Path | None, seed: int, args: argparse.Namespace) -> Any:
    """The small UTD-MHAD classification recipe on the eight PKU-MMD interactions: the
    pre-training's window and model, two persons."""
    kind = "linear" if protocol == "linear" else "finetune"
    base = load_config(f"utd_{kind}", ClassifyRecipe, ["pretrained=null"] if kind == "finetune"
                       else [f"pretrained={pretrained}"])  # fmt: skip
    stream = load_config("pku_streams_mamp", PretrainRecipe)
    data = base.data.model_copy(update={**PKU, "persons": 2, "limit": args.limit})
    model = stream.model.model_copy(update={"drop_path": base.model.drop_path})
    epochs = args.linear_epochs if kind == "linear" else args.finetune_epochs
    return base.model_copy(update={
        "name": f"pku-interactions-{protocol}", "data": data, "model": model,
        "pretrained": pretrained, "label_fraction": PROTOCOLS[protocol], "fraction_seed": seed,
        "loop": scaled_loop(base, epochs, seed, args.threads),
    })  # fmt: skip


def transfer_recipe(
    dataset: str, pretrained: Path | None, seed: int, args: argparse.Namespace
) -> Any:
    prefix, data_fields, _ = TRANSFER[dataset]
    base = load_config(f"{prefix}_finetune", ClassifyRecipe)
    data = base.data.model_copy(update={**data_fields, "limit": args.limit})
    model = base.model.model_copy(update={"frames": data.frames})
    return base.model_copy(update={
        "data": data, "model": model, "pretrained": pretrained, "fraction_seed": seed,
        "loop": scaled_loop(base, args.finetune_epochs, seed, args.threads),
    })  # fmt: skip


def floors(limit: int | None) -> dict[str, float]:
    """Nearest-neighbour top-1 per dataset (benchmarks/nn_floor.py, readme placing)."""
    out = {}
    sources = {"pku-interactions": ("pku-mmd", "xsub", {"classes": INTERACTIONS})}
    sources |= {name: (name, bench, {}) for name, (_, _, bench) in TRANSFER.items()}
    for name, (dataset, benchmark, options) in sources.items():
        data = load_dataset(dataset, None, benchmark, **options)
        if limit is not None:
            data.train, data.test = data.train[:limit], data.test[:limit]
        (out[name],) = nearest_neighbour_top1(data, "readme", [data.train])
    return out


def run_seed(seed: int, args: argparse.Namespace) -> list[dict[str, Any]]:
    out = args.runs / f"seed{seed}"
    encoders: dict[str, Path | None] = {"scratch": None, **pretrain(seed, out / "pretrain", args)}
    rows = []
    for method, encoder in encoders.items():
        for protocol in PROTOCOLS:
            if encoder is None and protocol == "linear":
                continue  # a frozen random encoder is not a method
            recipe = pku_recipe(protocol, encoder, seed, args)
            metrics = read_back_or_run(recipe, out / method / f"pku-{protocol}")
            rows.append({"dataset": "pku-interactions", "protocol": protocol, "method": method,
                         "seed": seed, "top1": metrics["top1"]})  # fmt: skip
        for dataset in TRANSFER:
            recipe = transfer_recipe(dataset, encoder, seed, args)
            metrics = read_back_or_run(recipe, out / method / f"{dataset}-finetune")
            rows.append({"dataset": dataset, "protocol": "finetune", "method": method,
                         "seed": seed, "top1": metrics["top1"]})  # fmt: skip
    return rows


def seed_top1(
    rows: list[dict[str, Any]], dataset: str, protocol: str, method: str
) -> dict[int, float]:
    key = (dataset, protocol, method)
    return {r["seed"]: r["top1"] for r in rows if (r["dataset"], r["protocol"], r["method"]) == key}


def markdown(result: dict[str, Any]) -> str:
    budget = result["budget"]
    lines = [
        "## Pre-training on untrimmed streams (issue 18)",
        "",
        f"Seeds {budget['seeds']}, {result['date']}, {result['machine']}. Budget: "
        f"{budget['stage1_epochs']} + {budget['stage2_epochs']} pre-training epochs of "
        f"{budget['windows']} stream windows, fine-tuning {budget['finetune_epochs']} epochs, "
        f"linear {budget['linear_epochs']} epochs"
        + (f", first {budget['limit']} clips per split only" if budget["limit"] else "")
        + f". Reproduce: `{result['command']}`.",
        "",
        "| dataset | protocol | method | top-1 mean | spread | seeds | minus scratch (paired) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    rows = result["rows"]
    groups = sorted({(r["dataset"], r["protocol"], r["method"]) for r in rows})
    for dataset, protocol, method in groups:
        mine = seed_top1(rows, dataset, protocol, method)
        scratch = seed_top1(rows, dataset, protocol, "scratch")
        paired = [mine[s] - scratch[s] for s in mine if s in scratch]
        spread = statistics.stdev(mine.values()) if len(mine) > 1 else 0.0
        diff = "-" if method == "scratch" or not paired else f"{statistics.mean(paired):+.3f}"
        lines.append(f"| {dataset} | {protocol} | {method} | {statistics.mean(mine.values()):.3f} "
                     f"| {spread:.3f} | {len(mine)} | {diff} |")  # fmt: skip
    lines += ["", "Nearest-neighbour floor: " + ", ".join(
        f"{k} {v:.3f}" for k, v in result["floor"].items())]  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--stage1-epochs", type=int, default=40)
    parser.add_argument("--stage2-epochs", type=int, default=20)
    parser.add_argument("--windows", type=int, default=2048, help="stream windows per epoch")
    parser.add_argument("--cam-share", type=float, default=0.3)
    parser.add_argument("--finetune-epochs", type=int, default=100)
    parser.add_argument("--linear-epochs", type=int, default=100)
    parser.add_argument("--limit", type=int, default=None, help="first N clips per split")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=Path, default=Path("runs/pretrain_streams"))
    parser.add_argument("--results", type=Path, default=RESULTS / "pretrain_streams.json")
    parser.add_argument("--no-section", action="store_true", help="leave RESULTS.md alone")
    smoke = "a tiny budget that proves the harness end to end (its numbers mean nothing)"
    parser.add_argument("--smoke", action="store_true", help=smoke)
    given = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(given)
    if args.smoke:
        # 200 clips: the 1 % subset still holds two, as BatchNorm needs in a training batch
        args.seeds, args.windows, args.limit = [0], 32, 200
        args.stage1_epochs = args.stage2_epochs = args.finetune_epochs = args.linear_epochs = 1
    rows = [row for seed in args.seeds for row in run_seed(seed, args)]
    budget = {k: getattr(args, k) for k in ("seeds", "stage1_epochs", "stage2_epochs", "windows",
              "cam_share", "finetune_epochs", "linear_epochs", "limit", "threads")}  # fmt: skip
    result = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {args.threads} torch threads",
        "command": " ".join(["python -m benchmarks.pretrain_streams", *given]),
        "budget": budget,
        "smoke": args.smoke,
        "rows": rows,
        "floor": floors(args.limit),
    }
    if args.no_section:
        args.results.parent.mkdir(parents=True, exist_ok=True)
        args.results.write_text(json.dumps(result, indent=2) + "\n")
        print(markdown(result))
    else:
        publish("pretrain_streams", result, args.results, markdown(result))


if __name__ == "__main__":
    main()
