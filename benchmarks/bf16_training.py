"""Does bf16 autocast change what pre-training learns? The small CPU recipe on UTD-MHAD
(``utd_mamp`` then ``utd_masksem``, the default model's encoder recipe) pre-trained twice per
seed, with ``loop.amp`` ``off`` (fp32) and ``bf16`` (autocast on the CPU), everything else
equal; each encoder then evaluated in fp32 by the linear recipe (``utd_linear``) and, with
``--finetune``, by the default model's fine-tuning recipe (``utd_finetune``). Paired by seed.

    python -m benchmarks.bf16_training [--seeds 0 1] [--amps off bf16] [--finetune]

benchmarks/pretrain_step.py times one step of each; this measures the accuracy it costs. The
arms may run in parallel processes (``--amps off`` and ``--amps bf16``, ``--no-section``): each
finished arm is read back, so a last call with both publishes them. Writes
benchmarks/results/bf16_training.json and a RESULTS.md section.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.pretrain_streams import CPU
from benchmarks.report import provenance, publish
from benchmarks.study import read_back_or_run
from training.config_io import load_config
from training.recipes.classify import ClassifyRecipe
from training.recipes.pretrain import PretrainRecipe, run_pretrain

RESULTS = Path(__file__).parent / "results"
AMPS = ("off", "bf16")


def looped(recipe: Any, amp: str, seed: int, threads: int) -> Any:
    update = {"amp": amp, "seed": seed, "threads": threads}
    return recipe.model_copy(update={"loop": recipe.loop.model_copy(update=update)})


def last_loss(run: Path) -> float:
    return float(json.loads((run / "history.json").read_text())[-1]["loss"])


def evaluated(kind: str, encoder: Path, seed: int, out: Path, threads: int) -> float:
    """Top-1 of the ``utd_<kind>`` recipe from ``encoder`` (fp32: the recipe's own amp)."""
    recipe = load_config(f"utd_{kind}", ClassifyRecipe, [f"pretrained={encoder}"])
    loop = recipe.loop.model_copy(update={"seed": seed, "threads": threads})
    metrics = read_back_or_run(recipe.model_copy(update={"loop": loop}), out)
    return float(metrics["top1"])


def arm(amp: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """One pre-training of both stages under ``amp`` and its evaluations (read back once done;
    minutes are those of the run that trained it)."""
    out = args.runs / f"seed{seed}" / amp
    kept = out / "arm.json"
    row: dict[str, Any] = json.loads(kept.read_text()) if kept.exists() else {}
    if "masksem_loss" not in row:
        masksem = load_config("utd_masksem", PretrainRecipe)
        mamp = load_config(masksem.init.recipe or "utd_mamp", PretrainRecipe)
        started = time.perf_counter()
        stage1 = run_pretrain(looped(mamp, amp, seed, args.threads), out / "stage1", CPU)
        middle = time.perf_counter()
        second = masksem.model_copy(
            update={"init": masksem.init.model_copy(update={"recipe": None, "checkpoint": stage1})}
        )
        run_pretrain(looped(second, amp, seed, args.threads), out / "masksem", CPU)
        row = {
            "seed": seed,
            "amp": amp,
            "threads": args.threads,
            "mamp_minutes": round((middle - started) / 60, 1),
            "masksem_minutes": round((time.perf_counter() - middle) / 60, 1),
            "mamp_loss": last_loss(out / "stage1"),
            "masksem_loss": last_loss(out / "masksem"),
        }
    encoder = out / "masksem" / "checkpoint.pt"
    row["linear_top1"] = evaluated("linear", encoder, seed, out / "linear", args.threads)
    if args.finetune:
        row["finetune_top1"] = evaluated("finetune", encoder, seed, out / "finetune", args.threads)
    out.mkdir(parents=True, exist_ok=True)
    kept.write_text(json.dumps(row, indent=1))
    print(json.dumps(row), file=sys.stderr)
    return row


def paired(rows: list[dict[str, Any]], key: str) -> list[float]:
    """bf16 minus fp32 of ``key``, per seed that has both."""
    by = {(r["seed"], r["amp"]): r for r in rows if key in r}
    seeds = sorted({s for s, _ in by if (s, "bf16") in by and (s, "off") in by})
    return [by[(s, "bf16")][key] - by[(s, "off")][key] for s in seeds]


def finetuned(row: dict[str, Any]) -> str:
    return f"{row['finetune_top1']:.3f}" if "finetune_top1" in row else "-"


def markdown(result: dict[str, Any]) -> str:
    rows = result["rows"]
    body = "".join(
        f"| {r['seed']} | {'fp32' if r['amp'] == 'off' else 'bf16'} | {r['mamp_minutes']:.1f} "
        f"| {r['masksem_minutes']:.1f} | {r['mamp_loss']:.3f} | {r['masksem_loss']:.3f} "
        f"| {r['linear_top1']:.3f} | {finetuned(r)} |\n"
        for r in rows
    )
    lines = []
    for key in ("masksem_loss", "linear_top1", "finetune_top1"):
        diffs = paired(rows, key)
        if diffs:
            mean = statistics.fmean(diffs)
            each = ", ".join(f"{d:+.3f}" for d in diffs)
            lines.append(f"- {key}, bf16 minus fp32: {mean:+.3f} (per seed {each})")
    return (
        "## bf16 autocast in pre-training: what it costs in accuracy\n\n"
        f"`{result['command']}` ({result['machine']}, {result['date']}). The small CPU recipe "
        "(`utd_mamp`, then `utd_masksem`) pre-trained on UTD-MHAD's training clips under "
        "`loop.amp` off (fp32) and bf16, each encoder evaluated in fp32 (`utd_linear`; "
        "`utd_finetune`, the default model's recipe, where given). Minutes: wall time of each "
        "stage in the run that trained it (arms may have run side by side, one thread each: "
        "benchmarks/pretrain_step.py is the speed measurement).\n\n"
        "| seed | precision | MAMP minutes | MaskSem minutes | MAMP last loss "
        "| MaskSem last loss | linear top-1 | fine-tuned top-1 |\n"
        "| --- | --- | --- | --- | --- | --- | --- | --- |\n"
        + body
        + "\n"
        + "\n".join(lines)
        + "\n"
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--amps", nargs="+", choices=AMPS, default=list(AMPS))
    parser.add_argument("--finetune", action="store_true", help="also the fine-tuning recipe")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=Path, default=Path("runs/bf16_training"))
    parser.add_argument("--results", type=Path, default=RESULTS / "bf16_training.json")
    parser.add_argument("--no-section", action="store_true", help="run the arms, publish nothing")
    given = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(given)
    rows = [arm(amp, seed, args) for seed in args.seeds for amp in args.amps]
    if args.no_section:
        return
    result = {
        **provenance("benchmarks.bf16_training", given, args.threads),
        "rows": rows,
    }
    publish("bf16_training", result, args.results, markdown(result))


if __name__ == "__main__":
    main()
