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
``--length-epochs``: why pre-training does (not) pay, by its length: MAMP alone on the streams,
one stage of each length (for each of ``--length-seeds``, default the first seed), evaluated
like the arms (``length`` in the results,
with each pre-training's last-epoch loss), plotted beside the CAM's part-segment share per
stage-2 epoch (results/pretrain_streams_why.png).

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
from benchmarks.study import epoch_values, plot, read_back_or_run
from training.config_io import load_config
from training.data.registry import load_dataset
from training.distributed import DistContext
from training.recipes.classify import ClassifyRecipe
from training.recipes.plots import plt  # type: ignore[attr-defined]
from training.recipes.pretrain import PretrainRecipe, run_pretrain

RESULTS = Path(__file__).parent / "results"
PLOT = "pretrain_streams.png"
WHY_PLOT = "pretrain_streams_why.png"
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


def mamp_on_streams(epochs: int, seed: int, args: argparse.Namespace) -> PretrainRecipe:
    """MAMP on the streams' training videos for ``epochs`` epochs of ``--windows`` windows."""
    recipe = framed(load_config("pku_streams_mamp", PretrainRecipe), args.frames)
    streams = {"windows_per_epoch": args.windows}
    result: PretrainRecipe = recipe.model_copy(update={
        "streams": recipe.streams.model_copy(update=streams) if recipe.streams else None,
        "loop": scaled_loop(recipe, epochs, seed, args.threads),
    })  # fmt: skip
    return result


def pretrain(seed: int, out: Path, args: argparse.Namespace) -> dict[str, Path]:
    """The shared MAMP stage on the streams, then each arm from it: {arm: checkpoint}."""
    streams = {"windows_per_epoch": args.windows}
    stage1 = run_pretrain(mamp_on_streams(args.stage1_epochs, seed, args), out / "stage1", CPU)
    second = framed(load_config("pku_streams_masksem", PretrainRecipe), args.frames)
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


def framed(recipe: Any, frames: int | None) -> Any:
    """The recipe with windows of ``frames`` frames (None: as it is)."""
    if frames is None:
        return recipe
    return recipe.model_copy(update={
        "data": recipe.data.model_copy(update={"frames": frames}),
        "model": recipe.model.model_copy(update={"frames": frames}),
    })  # fmt: skip


def pku_recipe(protocol: str, pretrained: Path | None, seed: int, args: argparse.Namespace) -> Any:
    """The small UTD-MHAD classification recipe on the eight PKU-MMD interactions: the
    pre-training's window and model, two persons."""
    kind = "linear" if protocol == "linear" else "finetune"
    base = load_config(f"utd_{kind}", ClassifyRecipe, ["pretrained=null"] if kind == "finetune"
                       else [f"pretrained={pretrained}"])  # fmt: skip
    stream = framed(load_config("pku_streams_mamp", PretrainRecipe), args.frames)
    data = base.data.model_copy(update={**PKU, "persons": 2, "limit": args.limit,
                                        "frames": stream.model.frames})  # fmt: skip
    model = stream.model.model_copy(update={"drop_path": base.model.drop_path})
    epochs = {"linear": args.linear_epochs, "finetune": args.finetune_epochs}.get(
        protocol, args.semi_epochs
    )
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
    base = framed(base.model_copy(update={"data": data}), args.frames or data.frames)
    return base.model_copy(update={
        "pretrained": pretrained, "fraction_seed": seed,
        "loop": scaled_loop(base, args.transfer_epochs, seed, args.threads),
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


Rows = list[dict[str, Any]]


def run_seed(seed: int, args: argparse.Namespace) -> tuple[Rows, Rows]:
    """One seed's pre-training and evaluations: (rows, the CAM's salient shares per arm)."""
    out = args.runs / f"seed{seed}"
    encoders: dict[str, Path | None] = {"scratch": None, **pretrain(seed, out / "pretrain", args)}
    rows = []
    for protocol in [p for p in PROTOCOLS if p in args.protocols]:
        for method, encoder in encoders.items():
            if encoder is None and protocol == "linear":
                continue  # a frozen random encoder is not a method
            recipe = pku_recipe(protocol, encoder, seed, args)
            metrics = read_back_or_run(recipe, out / method / f"pku-{protocol}")
            rows.append({"dataset": "pku-interactions", "protocol": protocol, "method": method,
                         "seed": seed, "top1": metrics["top1"]})  # fmt: skip
    transferred = [m for m in encoders if "transfer" in args.protocols
                   and m in (args.transfer_methods or encoders)]  # fmt: skip
    for dataset in TRANSFER:
        for method in transferred:
            recipe = transfer_recipe(dataset, encoders[method], seed, args)
            metrics = read_back_or_run(recipe, out / method / f"{dataset}-finetune")
            rows.append({"dataset": dataset, "protocol": "finetune", "method": method,
                         "seed": seed, "top1": metrics["top1"]})  # fmt: skip
    return rows, [cam_shares(out / "pretrain" / arm, arm, seed) for arm in ARMS]


def length_rows(args: argparse.Namespace) -> Rows:
    """Why pre-training does not pay, measured by its length: MAMP alone on the streams for each
    of ``--length-epochs`` (one stage, its warm-up and cosine schedule scaled to the length),
    for each of ``--length-seeds``, each followed by ``--length-protocols``; the row carries the
    pre-training's last-epoch loss."""
    rows = []
    for seed in args.length_seeds:
        for epochs in args.length_epochs:
            out = args.runs / f"seed{seed}" / "length" / f"mamp{epochs}"
            encoder = run_pretrain(mamp_on_streams(epochs, seed, args), out / "pretrain", CPU)
            loss = epoch_values(out / "pretrain", "loss")[-1]
            for protocol in args.length_protocols:
                recipe = pku_recipe(protocol, encoder, seed, args)
                metrics = read_back_or_run(recipe, out / protocol)
                rows.append({"dataset": "pku-interactions", "protocol": protocol,
                             "method": "mamp", "pretrain_epochs": epochs, "pretrain_loss": loss,
                             "seed": seed, "top1": metrics["top1"]})  # fmt: skip
    return rows


def cam_shares(run: Path, arm: str, seed: int) -> dict[str, Any]:
    """The shares of tokens and of part-segments the CAM marked salient, at the first and the
    last epoch of a stage-2 arm (NaN-free only for semantic masking)."""
    shares = {key: epoch_values(run, key) for key in ("salient_share", "salient_segments")}
    row: dict[str, Any] = {"method": arm, "seed": seed}
    row |= {key: [v[0], v[-1]] if v else None for key, v in shares.items()}
    return row | {"segments_per_epoch": shares["salient_segments"]}


def seed_top1(
    rows: list[dict[str, Any]], dataset: str, protocol: str, method: str
) -> dict[int, float]:
    key = (dataset, protocol, method)
    return {r["seed"]: r["top1"] for r in rows if (r["dataset"], r["protocol"], r["method"]) == key}


def verdicts(result: dict[str, Any]) -> list[str]:
    """The issue's questions answered from the rows: does each pre-trained method beat scratch
    on the 10 % labels by more than the seed spread (the larger of the two arms' standard
    deviations), and is its linear evaluation above the nearest-neighbour floor?"""
    rows, out = result["rows"], []
    scratch = seed_top1(rows, "pku-interactions", "semi10", "scratch")
    floor = result["floor"]["pku-interactions"]
    for method in ARMS:
        mine = seed_top1(rows, "pku-interactions", "semi10", method)
        paired = [mine[s] - scratch[s] for s in mine if s in scratch]
        if len(paired) > 1:
            spread = max(statistics.stdev(mine.values()), statistics.stdev(scratch.values()))
            gain = statistics.mean(paired)
            out.append(f"- {method}, 10 % labels: {gain:+.3f} against scratch (paired over "
                       f"{len(paired)} seeds, {sum(d > 0 for d in paired)} positive), seed spread "
                       f"{spread:.3f}: {'beats' if gain > spread else 'does not beat'} scratch by "
                       "more than the spread.")  # fmt: skip
        linear = seed_top1(rows, "pku-interactions", "linear", method)
        if linear:
            top1 = statistics.mean(linear.values())
            out.append(f"- {method}, linear: {top1:.3f}, {'above' if top1 > floor else 'below'} "
                       f"the nearest-neighbour floor {floor:.3f}.")  # fmt: skip
    return out


def markdown(result: dict[str, Any]) -> str:
    budget = result["budget"]
    lines = [
        "## Pre-training on untrimmed streams (issue 18)",
        "",
        f"Seeds {budget['seeds']}, {result['date']}, {result['machine']}. Budget: "
        f"{budget['stage1_epochs']} + {budget['stage2_epochs']} pre-training epochs of "
        f"{budget['windows']} stream windows, fine-tuning {budget['finetune_epochs']} epochs "
        f"({budget['semi_epochs']} on the 1 % and 10 % subsets, {budget['transfer_epochs']} "
        f"for transfer), linear {budget['linear_epochs']} "
        f"epochs, windows of {budget['frames'] or 64} frames"
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
    lines += ["", *verdicts(result)]
    lines += ["", "Share the CAM marked salient, first / last stage-2 epoch (mean over seeds):", "",
              "| method | tokens | part-segments |", "| --- | --- | --- |"]  # fmt: skip
    for method in ARMS:
        arm = [c for c in result["cam"] if c["method"] == method and c["salient_share"]]
        if arm:
            tokens, segments = ([statistics.mean(c[k][i] for c in arm) for i in (0, 1)]
                                for k in ("salient_share", "salient_segments"))  # fmt: skip
            lines.append(f"| {method} | {tokens[0]:.2f} / {tokens[1]:.2f} "
                         f"| {segments[0]:.2f} / {segments[1]:.2f} |")  # fmt: skip
    lines += ["", f"![pre-training on streams](results/{PLOT})", *length_table(result)]
    return "\n".join(lines)


def length_table(result: dict[str, Any]) -> list[str]:
    """The length rows, one per length and seed, each beside scratch of the same seed and label
    subset (in brackets; the study's rows), and for a length with several seeds the mean
    difference to scratch, paired by seed."""
    length = result["length"]
    if not length:
        return []
    protocols = result["budget"]["length_protocols"]
    lines = ["", "Pre-training length: MAMP alone on the streams, one stage of each length, "
             "against scratch of the same seed and label subset (in brackets):", "",
             "| pre-training epochs | seed | last-epoch loss | " + " | ".join(protocols) + " |",
             "| --- | --- | --- | " + " | ".join("---" for _ in protocols) + " |"]  # fmt: skip
    scratch = {p: seed_top1(result["rows"], "pku-interactions", p, "scratch") for p in protocols}
    for epochs in sorted({r["pretrain_epochs"] for r in length}):
        seeds = sorted({r["seed"] for r in length if r["pretrain_epochs"] == epochs})
        mine = {(r["protocol"], r["seed"]): r for r in length if r["pretrain_epochs"] == epochs}
        for seed in seeds:
            cells = []
            for p in protocols:
                base = scratch[p].get(seed)
                cells.append(f"{mine[p, seed]['top1']:.3f}"
                             + ("" if base is None else f" ({base:.3f})"))  # fmt: skip
            loss = mine[protocols[0], seed]["pretrain_loss"]
            lines.append(f"| {epochs} | {seed} | {loss:.3f} | " + " | ".join(cells) + " |")
        if len(seeds) > 1:
            cells = []
            for p in protocols:
                paired = [mine[p, s]["top1"] - scratch[p][s] for s in seeds if s in scratch[p]]
                cells.append(f"{statistics.mean(paired):+.3f}" if paired else "-")
            lines.append(f"| {epochs} | mean minus scratch | - | " + " | ".join(cells) + " |")
    return [*lines, "", f"![why](results/{WHY_PLOT})"]


def plot_why(result: dict[str, Any], path: Path) -> None:
    """Left: test top-1 against the length of MAMP pre-training on the streams (the length
    rows: each seed a dot, the line their mean), scratch of the same seeds dashed, the
    nearest-neighbour floor dotted. Right: the share of part-segments the CAM marks salient per
    stage-2 epoch, per arm and seed."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    length = result["length"]
    for i, protocol in enumerate(sorted({r["protocol"] for r in length})):
        colour = f"C{i}"
        mine = [r for r in length if r["protocol"] == protocol]
        left.plot([r["pretrain_epochs"] for r in mine], [r["top1"] for r in mine], "o",
                  color=colour, alpha=0.4)  # fmt: skip
        means = [(e, statistics.mean(r["top1"] for r in mine if r["pretrain_epochs"] == e))
                 for e in sorted({r["pretrain_epochs"] for r in mine})]  # fmt: skip
        left.plot(*zip(*means, strict=True), "-", color=colour, label=f"{protocol}, MAMP")
        scratch = seed_top1(result["rows"], "pku-interactions", protocol, "scratch")
        paired = [scratch[s] for s in {r["seed"] for r in mine} if s in scratch]
        if paired:
            left.axhline(statistics.mean(paired), color=colour, linestyle="--",
                         label=f"{protocol}, scratch")  # fmt: skip
    if length:
        left.axhline(result["floor"]["pku-interactions"], color="grey", linestyle=":",
                     label="nearest-neighbour floor")  # fmt: skip
    left.set_xlabel("pre-training epochs on the streams")
    left.set_ylabel("PKU-MMD interactions, test top-1")
    left.legend(fontsize=7)
    for i, method in enumerate(ARMS):
        for c in result["cam"]:
            if c["method"] == method and c.get("segments_per_epoch"):
                share = c["segments_per_epoch"]
                right.plot(
                    range(1, len(share) + 1),
                    share,
                    "o-",
                    color=f"C{i}",
                    alpha=0.7,
                    label=method if c["seed"] == result["budget"]["seeds"][0] else None,
                )
    right.axhline(0.5, color="grey", linestyle=":")
    right.set_ylim(0, 1)
    right.set_xlabel("stage-2 epoch")
    right.set_ylabel("share of part-segments salient")
    right.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--stage1-epochs", type=int, default=40)
    parser.add_argument("--stage2-epochs", type=int, default=20)
    parser.add_argument("--windows", type=int, default=2048, help="stream windows per epoch")
    parser.add_argument("--cam-share", type=float, default=0.3)
    parser.add_argument("--finetune-epochs", type=int, default=100)
    parser.add_argument(
        "--transfer-epochs", type=int, help="transfer fine-tuning epochs (default: as finetune)"
    )
    parser.add_argument("--linear-epochs", type=int, default=100)
    parser.add_argument("--semi-epochs", type=int, default=100, help="epochs of semi1 and semi10")
    parser.add_argument(
        "--frames",
        type=int,
        default=None,
        help="window frames of every stage (default: the recipes' 64)",
    )
    parser.add_argument(
        "--protocols",
        nargs="+",
        choices=[*PROTOCOLS, "transfer"],
        default=[*PROTOCOLS, "transfer"],
        help="the evaluations to run",
    )
    parser.add_argument(
        "--transfer-methods",
        nargs="+",
        choices=["scratch", *ARMS],
        help="the encoders transferred (default: all)",
    )
    parser.add_argument(
        "--length-epochs",
        type=int,
        nargs="*",
        default=[],
        help="also pre-train MAMP alone for each of these many epochs (first seed) and evaluate it",
    )
    parser.add_argument(
        "--length-protocols",
        nargs="+",
        choices=list(PROTOCOLS),
        default=["linear", "semi10", "semi1"],
        help="the evaluations of the --length-epochs encoders",
    )
    parser.add_argument(
        "--length-seeds",
        type=int,
        nargs="+",
        help="the seeds of the --length-epochs runs (default: the first of --seeds)",
    )
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
        args.semi_epochs = 1
        args.length_epochs = [1] if args.length_epochs else []
    args.length_seeds = args.length_seeds or args.seeds[:1]
    if args.transfer_epochs is None:
        args.transfer_epochs = args.finetune_epochs
    rows, cam = [], []
    for seed in args.seeds:
        seed_rows, seed_cam = run_seed(seed, args)
        rows += seed_rows
        cam += seed_cam
    budget = {k: getattr(args, k) for k in ("seeds", "stage1_epochs", "stage2_epochs", "windows",
              "cam_share", "finetune_epochs", "transfer_epochs", "semi_epochs", "linear_epochs",
              "frames", "protocols", "transfer_methods", "length_epochs", "length_seeds",
              "length_protocols", "limit", "threads")}  # fmt: skip
    result = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {args.threads} torch threads",
        "command": " ".join(["python -m benchmarks.pretrain_streams", *given]),
        "budget": budget,
        "smoke": args.smoke,
        "rows": rows,
        "cam": cam,
        "length": length_rows(args),
        "floor": floors(args.limit),
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    plot(rows, result["floor"], args.results.parent / PLOT)
    plot_why(result, args.results.parent / WHY_PLOT)
    if args.no_section:
        args.results.write_text(json.dumps(result, indent=2) + "\n")
        print(markdown(result))
    else:
        publish("pretrain_streams", result, args.results, markdown(result))


if __name__ == "__main__":
    main()
