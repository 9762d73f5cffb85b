"""How far does longer pre-training move linear evaluation on UTD-MHAD? MAMP stages of several
lengths (1 epoch: close to a random encoder) and the shipped two-stage MaskSem recipe
(``utd_masksem``: 80 MAMP + 40 MaskSem epochs), each followed by the shipped linear probe
(``utd_linear``), all at the recipes' 64-frame windows, against the nearest-neighbour floor.
Finished runs are read back. Rows go to benchmarks/results/pretrain_length.json, the table and
plot to RESULTS.md.

    python -m benchmarks.pretrain_length   # MAMP 1, 80, 240 epochs, MaskSem (about 1 h, 2 cores)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from benchmarks.report import publish
from benchmarks.study import CPU, DATASETS, RESULTS, read_back_or_run
from training.config_io import load_config
from training.recipes.classify import ClassifyRecipe
from training.recipes.common import ExtraSource, extra_clips, load_data
from training.recipes.plots import plt  # type: ignore[attr-defined]
from training.recipes.pretrain import PretrainRecipe, run_pretrain

FLOOR = DATASETS["utd"][2]


#: The pooled rows' extra clips: all of NW-UCLA (train and test, labels unused), whose Kinect v1
#: joints map onto UTD-MHAD's; the evaluation stays on UTD-MHAD's cross-subject test split.
POOL = ExtraSource(dataset="nw-ucla", splits=("train", "test"))


def mamp_stage(epochs: int, threads: int, *, pooled: bool = False) -> PretrainRecipe:
    """``utd_mamp`` with ``epochs`` epochs, warm-up scaled with them; ``pooled``: NW-UCLA's
    clips pre-trained on beside UTD-MHAD's."""
    recipe = load_config("utd_mamp", PretrainRecipe)
    warmup = round(recipe.loop.warmup_epochs * epochs / recipe.loop.epochs)
    loop = {"epochs": epochs, "warmup_epochs": warmup, "threads": threads}
    extra = [POOL] if pooled else []
    return recipe.model_copy(
        update={"loop": recipe.loop.model_copy(update=loop), "extra_data": extra}
    )


def linear_probe(checkpoint: Path, out: Path, threads: int) -> dict[str, Any]:
    """The shipped linear probe on a pre-trained checkpoint, with its last training top-1."""
    recipe = load_config(
        "utd_linear", ClassifyRecipe, [f"pretrained={checkpoint}", f"loop.threads={threads}"]
    )
    metrics = read_back_or_run(recipe, out)
    history = json.loads((out / "history.json").read_text())
    last = history[-1]["train_top1"]
    return {"top1": metrics["top1"], "top5": metrics["top5"], "train_top1": last}


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    shipped = load_config("utd_mamp", PretrainRecipe).loop.epochs  # utd_masksem's first stage
    stages = sorted({*args.mamp_epochs, shipped})
    checkpoints = {
        n: run_pretrain(mamp_stage(n, args.threads), args.runs / f"mamp{n}", CPU) for n in stages
    }
    utd = load_config("utd_mamp", PretrainRecipe).data
    clips = len(load_data(utd).train)
    pooled_clips = clips + len(extra_clips([POOL], load_data(utd).layout))
    rows = []
    for n in sorted(args.mamp_epochs):
        probe = linear_probe(checkpoints[n], args.runs / f"mamp{n}-linear", args.threads)
        rows.append({"encoder": "mamp", "clips": clips, "mamp_epochs": n, "masksem_epochs": 0,
                     **probe})  # fmt: skip
    for n in sorted(args.pooled_epochs):
        stage = run_pretrain(
            mamp_stage(n, args.threads, pooled=True), args.runs / f"pooled{n}", CPU
        )
        probe = linear_probe(stage, args.runs / f"pooled{n}-linear", args.threads)
        rows.append({"encoder": "mamp, + NW-UCLA clips", "clips": pooled_clips, "mamp_epochs": n,
                     "masksem_epochs": 0, **probe})  # fmt: skip
    masksem = load_config("utd_masksem", PretrainRecipe)
    first = checkpoints[shipped]
    masksem = masksem.model_copy(
        update={
            "init": masksem.init.model_copy(update={"recipe": None, "checkpoint": first}),
            "loop": masksem.loop.model_copy(update={"threads": args.threads}),
        }
    )
    checkpoint = run_pretrain(masksem, args.runs / "masksem", CPU)
    probe = linear_probe(checkpoint, args.runs / "masksem-linear", args.threads)
    rows.append(
        {"encoder": "masksem", "clips": clips, "mamp_epochs": shipped,
         "masksem_epochs": masksem.loop.epochs, **probe}
    )  # fmt: skip
    return rows


def table(rows: list[dict[str, Any]], command: str) -> str:
    lines = [
        "## Linear evaluation on UTD-MHAD against the length of pre-training",
        "",
        "The shipped recipes at 64-frame windows (`utd_mamp`, `utd_masksem`, `utd_linear`), "
        "pre-training on the 431 training clips, labels unused; test top-1 on the 430 "
        "cross-subject test clips, seed 0. A 1-epoch MAMP stage is close to a randomly "
        f"initialised encoder. Reproduce: `{command}`.",
        "",
        "| encoder | MAMP epochs | MaskSem epochs | linear top-1 | top-5 | train top-1 "
        "| NN floor |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['encoder']} | {r['mamp_epochs']} | {r['masksem_epochs']} | {r['top1']:.3f} | "
            f"{r['top5']:.3f} | {r['train_top1']:.3f} | {FLOOR:.3f} |"
        )
    lines += ["", "![pretrain length](results/pretrain_length.png)"]
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    mamp = [r for r in rows if r["encoder"] == "mamp"]
    ax.plot([r["mamp_epochs"] for r in mamp], [r["top1"] for r in mamp], "o-", label="MAMP")
    for r in rows:
        if r["encoder"] == "masksem":
            total = r["mamp_epochs"] + r["masksem_epochs"]
            ax.plot([total], [r["top1"]], "s", color="tab:green", label="MAMP + MaskSem")
    ax.axhline(FLOOR, color="tab:red", linestyle="--", label="nearest-neighbour floor")
    ax.set_xlabel("pre-training epochs")
    ax.set_ylabel("linear test top-1")
    ax.set_title("UTD-MHAD cross-subject, linear evaluation")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mamp-epochs", nargs="+", type=int, default=[1, 80, 240])
    parser.add_argument(
        "--pooled-epochs", nargs="*", type=int, default=[],
        help="MAMP stages pre-trained on UTD-MHAD's and all of NW-UCLA's clips",
    )  # fmt: skip
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--runs", type=Path, default=Path("runs/pretrain_length"))
    args = parser.parse_args()
    command = "python -m benchmarks.pretrain_length --mamp-epochs " + " ".join(
        map(str, sorted(args.mamp_epochs))
    )
    if args.pooled_epochs:
        command += " --pooled-epochs " + " ".join(map(str, sorted(args.pooled_epochs)))
    rows = run(args)
    RESULTS.mkdir(exist_ok=True)
    plot(rows, RESULTS / "pretrain_length.png")
    markdown = table(rows, command)
    publish("pretrain_length", {"rows": rows}, RESULTS / "pretrain_length.json", markdown)


if __name__ == "__main__":
    main()
