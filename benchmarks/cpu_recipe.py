"""The small CPU two-stage MaskSem recipe on UTD-MHAD's training split, end to end: wall time
of each stage, the loss at its first and last epoch, and the share of part-segments the CAM
marks salient. Optionally the fine-tuning recipe of the default model on top.

    python -m benchmarks.cpu_recipe [--finetune] [--runs runs/bench_cpu_recipe]
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from benchmarks.report import write_section
from training.config_io import load_config
from training.distributed import DistContext
from training.recipes.classify import ClassifyRecipe, run_classify
from training.recipes.pretrain import PretrainRecipe, run_pretrain

RESULTS = Path(__file__).parent / "results"
CPU = DistContext(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))


def stage_summary(run: Path, seconds: float) -> dict[str, Any]:
    history = json.loads((run / "history.json").read_text())
    first, last = history[0], history[-1]
    out = {"epochs": len(history), "minutes": round(seconds / 60, 1),
           "loss_first": first["loss"], "loss_last": last["loss"]}  # fmt: skip
    if "salient_share" in last:
        out["salient_share_first"] = first["salient_share"]
        out["salient_share_last"] = last["salient_share"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=Path("runs/bench_cpu_recipe"))
    parser.add_argument("--finetune", action="store_true")
    args = parser.parse_args()
    shutil.rmtree(args.runs, ignore_errors=True)
    masksem = load_config("utd_masksem", PretrainRecipe)
    mamp = load_config(masksem.init.recipe or "utd_mamp", PretrainRecipe)

    start = time.perf_counter()
    stage1 = run_pretrain(mamp, args.runs / "stage1", CPU)
    t1 = time.perf_counter()
    stage2_recipe = masksem.model_copy(
        update={"init": masksem.init.model_copy(update={"recipe": None, "checkpoint": stage1})}
    )
    final = run_pretrain(stage2_recipe, args.runs, CPU)
    t2 = time.perf_counter()
    result: dict[str, Any] = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "torch_threads": torch.get_num_threads(),
        "mamp": stage_summary(args.runs / "stage1", t1 - start),
        "masksem": stage_summary(args.runs, t2 - t1),
        "total_minutes": round((t2 - start) / 60, 1),
    }
    shutil.copy(args.runs / "stage1" / "curves.png", RESULTS / "cpu_recipe_mamp.png")
    shutil.copy(args.runs / "curves.png", RESULTS / "cpu_recipe_masksem.png")
    if args.finetune:
        recipe = load_config("utd_finetune", ClassifyRecipe).model_copy(
            update={"pretrained": final}
        )
        t3 = time.perf_counter()
        metrics = run_classify(recipe, args.runs / "finetune", CPU)
        result["finetune"] = {"minutes": round((time.perf_counter() - t3) / 60, 1),
                              "top1": metrics["top1"], "top5": metrics["top5"]}  # fmt: skip
    (RESULTS / "cpu_recipe.json").write_text(json.dumps(result, indent=2) + "\n")
    section = markdown(result)
    write_section("cpu_recipe", section)
    print(section)


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "## The small CPU recipe on UTD-MHAD, end to end",
        "",
        f"`utd_masksem` (MAMP stage `utd_mamp`, then MaskSem) on the 431 training clips, labels "
        f"unused, {result['torch_threads']} torch threads, {result['date']}. "
        "Reproduce: `python -m benchmarks.cpu_recipe --finetune`.",
        "",
        "| stage | epochs | minutes | loss first -> last | CAM-salient share first -> last |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name in ("mamp", "masksem"):
        s = result[name]
        share = (
            f"{s['salient_share_first']:.2f} -> {s['salient_share_last']:.2f}"
            if "salient_share_last" in s
            else "-"
        )
        lines.append(
            f"| {name} | {s['epochs']} | {s['minutes']} | "
            f"{s['loss_first']:.3f} -> {s['loss_last']:.3f} | {share} |"
        )
    lines.append(f"\nTotal pre-training: {result['total_minutes']} minutes.")
    if "finetune" in result:
        ft = result["finetune"]
        lines.append(
            f"Fine-tuning (`utd_finetune`, the default model's recipe): {ft['minutes']} minutes, "
            f"test top-1 {ft['top1']:.3f}, top-5 {ft['top5']:.3f} (cross-subject, 430 clips)."
        )
    lines += ["", "![MAMP stage](results/cpu_recipe_mamp.png)",
              "![MaskSem stage](results/cpu_recipe_masksem.png)"]  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    main()
