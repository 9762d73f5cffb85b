"""How far does longer pre-training move linear evaluation on UTD-MHAD? MAMP stages of several
lengths (1 epoch: close to a random encoder) and the shipped two-stage MaskSem recipe
(``utd_masksem``: 80 MAMP + 40 MaskSem epochs), each followed by the shipped linear probe
(``utd_linear``), all at the recipes' 64-frame windows, against the nearest-neighbour floor.
``--pooled-epochs`` adds MAMP stages that also pre-train on all of NW-UCLA's clips (more clips
rather than more epochs), ``--probe-shear`` a second probe with sheared training windows.
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


def linear_probe(checkpoint: Path, out: Path, threads: int, shear: float = 0.0) -> dict[str, Any]:
    """The shipped linear probe on a pre-trained checkpoint (``shear``: its training windows
    randomly sheared), with its last training top-1."""
    changes = [f"pretrained={checkpoint}", f"loop.threads={threads}"]
    recipe = load_config("utd_linear", ClassifyRecipe, [*changes, f"data.max_shear={shear}"])
    metrics = read_back_or_run(recipe, out)
    history = json.loads((out / "history.json").read_text())
    last = history[-1]["train_top1"]
    return {"top1": metrics["top1"], "top5": metrics["top5"], "train_top1": last}


def probes(checkpoint: Path, out: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The shipped probe, and with ``--probe-shear`` a second one whose windows are sheared."""
    row = linear_probe(checkpoint, out.with_name(f"{out.name}-linear"), args.threads)
    if args.probe_shear:
        shear = args.probe_shear
        sheared = linear_probe(checkpoint, out.with_name(f"{out.name}-linear-shear{shear}"),
                               args.threads, shear)  # fmt: skip
        row |= {"shear_top1": sheared["top1"], "shear_train_top1": sheared["train_top1"]}
    return row


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    base = load_config("utd_mamp", PretrainRecipe)
    shipped = base.loop.epochs  # utd_masksem's first stage
    stages = sorted({*args.mamp_epochs, shipped})
    checkpoints = {
        n: run_pretrain(mamp_stage(n, args.threads), args.runs / f"mamp{n}", CPU) for n in stages
    }
    data = load_data(base.data)
    clips = len(data.train)
    rows = []
    for n in sorted(args.mamp_epochs):
        rows.append({"encoder": "mamp", "clips": clips, "mamp_epochs": n, "masksem_epochs": 0,
                     **probes(checkpoints[n], args.runs / f"mamp{n}", args)})  # fmt: skip
    # NW-UCLA is read (and mapped) here only for the pooled rows' clip count
    pooled_clips = clips + len(extra_clips([POOL], data.layout)) if args.pooled_epochs else 0
    for n in sorted(args.pooled_epochs):
        out = args.runs / f"pooled{n}"
        stage = run_pretrain(mamp_stage(n, args.threads, pooled=True), out, CPU)
        rows.append({"encoder": "mamp, + NW-UCLA clips", "clips": pooled_clips, "mamp_epochs": n,
                     "masksem_epochs": 0, **probes(stage, out, args)})  # fmt: skip
    masksem = load_config("utd_masksem", PretrainRecipe)
    first = checkpoints[shipped]
    masksem = masksem.model_copy(
        update={
            "init": masksem.init.model_copy(update={"recipe": None, "checkpoint": first}),
            "loop": masksem.loop.model_copy(update={"threads": args.threads}),
        }
    )
    checkpoint = run_pretrain(masksem, args.runs / "masksem", CPU)
    rows.append(
        {"encoder": "masksem", "clips": clips, "mamp_epochs": shipped,
         "masksem_epochs": masksem.loop.epochs, **probes(checkpoint, args.runs / "masksem", args)}
    )  # fmt: skip
    return rows


def clip_passes(row: dict[str, Any]) -> int:
    """Clips seen in pre-training, the compute measure that pooled rows share with the rest."""
    return int(row["clips"] * (row["mamp_epochs"] + row["masksem_epochs"]))


def table(rows: list[dict[str, Any]], command: str) -> str:
    sheared = "shear_top1" in rows[0]
    extra = " linear top-1, sheared probe | its train top-1 |" if sheared else ""
    lines = [
        "## Linear evaluation on UTD-MHAD against the length of pre-training",
        "",
        "The shipped recipes at 64-frame windows (`utd_mamp`, `utd_masksem`, `utd_linear`), "
        "pre-training on the 431 training clips, labels unused; test top-1 on the 430 "
        "cross-subject test clips, seed 0. A 1-epoch MAMP stage is close to a randomly "
        "initialised encoder. The pooled rows pre-train on all 1,484 NW-UCLA clips too, mapped "
        "onto UTD-MHAD's joints (`extra_data`); clip passes (clips x epochs) compare their "
        "compute with the rest. The sheared probe is `utd_linear` with `data.max_shear` "
        f"(as in fine-tuning). Reproduce: `{command}`.",
        "",
        "| encoder | clips | MAMP epochs | MaskSem epochs | clip passes | linear top-1 | top-5 "
        f"| train top-1 |{extra} NN floor |",
        "| --- " * (9 + 2 * sheared) + "|",
    ]
    for r in rows:
        probe = f" {r['shear_top1']:.3f} | {r['shear_train_top1']:.3f} |" if sheared else ""
        lines.append(
            f"| {r['encoder']} | {r['clips']} | {r['mamp_epochs']} | {r['masksem_epochs']} | "
            f"{clip_passes(r):,} | {r['top1']:.3f} | {r['top5']:.3f} | {r['train_top1']:.3f} |"
            f"{probe} {FLOOR:.3f} |"
        )
    lines += ["", "![pretrain length](results/pretrain_length.png)"]
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6.5, 4))
    keys = [("top1", "-", None, "shipped probe")]
    if "shear_top1" in rows[0]:
        keys.append(("shear_top1", ":", "none", "sheared probe"))
    for key, style, face, probe in keys:
        for encoder, marker, colour in (("mamp", "o", "tab:blue"),
                                        ("mamp, + NW-UCLA clips", "^", "tab:orange"),
                                        ("masksem", "s", "tab:green")):  # fmt: skip
            chosen = [r for r in rows if r["encoder"] == encoder]
            if chosen:
                ax.plot([clip_passes(r) / 1000 for r in chosen], [r[key] for r in chosen],
                        marker + style, color=colour, mfc=face or colour,
                        label=f"{encoder}, {probe}")  # fmt: skip
    ax.axhline(FLOOR, color="tab:red", linestyle="--", label="nearest-neighbour floor")
    ax.set_xscale("log")
    ax.set_xlabel("pre-training clip passes (thousands)")
    ax.set_ylabel("linear test top-1")
    ax.set_title("UTD-MHAD cross-subject, linear evaluation")
    ax.legend(fontsize=7)
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
    parser.add_argument(
        "--probe-shear",
        type=float,
        default=0.0,
        help="also probe every encoder with this random shear of its windows",
    )
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--runs", type=Path, default=Path("runs/pretrain_length"))
    args = parser.parse_args()
    command = "python -m benchmarks.pretrain_length --mamp-epochs " + " ".join(
        map(str, sorted(args.mamp_epochs))
    )
    if args.pooled_epochs:
        command += " --pooled-epochs " + " ".join(map(str, sorted(args.pooled_epochs)))
    if args.probe_shear:
        command += f" --probe-shear {args.probe_shear}"
    rows = run(args)
    RESULTS.mkdir(exist_ok=True)
    plot(rows, RESULTS / "pretrain_length.png")
    markdown = table(rows, command)
    publish("pretrain_length", {"rows": rows}, RESULTS / "pretrain_length.json", markdown)


if __name__ == "__main__":
    main()
