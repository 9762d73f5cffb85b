"""Which false-alarm target should a stream recipe calibrate its decision rule to?

    python -m benchmarks.stream_decision --run runs/pku_interactions [--targets 1 1.5 2 3]

A stream recipe's card shows an action when its top probability reaches the lowest threshold at
which the windows of its held-out training videos, taken one by one (no smoothing), show at
most ``stream.false_alarms_per_min`` false alarms per background minute. A stream's smoothing
and hysteresis merge many of those one-window alarms, so that count is pessimistic for the
labels a client is shown and more so for its action events. This benchmark takes one finished
run of the recipe (``--run``), recalibrates it at each target (a copy of the run resumed at its
last epoch: nothing is trained; the card's start and end lags are measured again at the new
threshold), exports each, replays the run's held-out training videos through
``service.stream.StreamCore`` as benchmarks/stream_labelling.py does and scores them as
benchmarks/streaming.py scores test videos. The choice uses these training-split videos only:
the target whose action events score the best mAP@0.5 while the labels shown stay at most
``--tolerated`` false alarms per background minute. Writes
benchmarks/results/stream_decision.json and a RESULTS.md section.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.report import provenance, publish
from benchmarks.stream_labelling import EVENTS_MIN_S, held_out_of
from benchmarks.streaming import STREAM
from benchmarks.study import read_back_or_run
from training.recipes.classify import ClassifyRecipe

RESULTS = Path(__file__).parent / "results"
KEYS = ("map_iou50", "f1_iou50", "frame_macro_f1", "latency_median_s", "missed_share",
        "false_alarms_per_min")  # fmt: skip


def run_recipe(run: Path, threads: int) -> ClassifyRecipe:
    """The recipe the finished ``run`` trained with, at ``threads`` threads."""
    metrics = json.loads((run / "metrics.json").read_text())
    recipe = ClassifyRecipe.model_validate(metrics["config"])
    if recipe.stream is None:
        raise SystemExit(f"{run}: not a stream recipe's run (its recipe has no stream section)")
    loop = recipe.loop.model_copy(update={"threads": threads})
    return recipe.model_copy(update={"loop": loop})


def target_row(
    run: Path, recipe: ClassifyRecipe, target: float, args: argparse.Namespace
) -> dict[str, Any]:
    """``run`` recalibrated to ``target`` false alarms per background minute (a copy of it,
    read back once done) and its held-out scores."""
    assert recipe.stream is not None  # run_recipe checked
    stream = recipe.stream.model_copy(update={"false_alarms_per_min": target})
    dest = args.runs / f"{run.name}-fa{target:g}"
    if not (dest / "checkpoint.pt").exists():
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy2(run / "checkpoint.pt", dest / "checkpoint.pt")
    metrics = read_back_or_run(recipe.model_copy(update={"stream": stream}), dest)
    decision = metrics["decision"]
    held_out = held_out_of(dest, decision["calibration_videos"], args.threads)
    row = {
        "target_false_alarms_per_min": target,
        "decision": {k: v for k, v in decision.items() if k != "calibration_videos"},
        "held_out": held_out,
    }
    print(json.dumps(row), file=sys.stderr)
    return row


def chosen(rows: list[dict[str, Any]], tolerated: float) -> float | None:
    """The target whose events score the best held-out mAP@0.5 (then the lower target) while
    the shown labels stay within ``tolerated`` false alarms per minute; None if none does."""
    within = [r for r in rows if r["held_out"]["shown"]["false_alarms_per_min"] <= tolerated]
    if not within:
        return None
    best = max(within, key=lambda r: (r["held_out"]["events"]["map_iou50"],
                                      -r["target_false_alarms_per_min"]))  # fmt: skip
    return float(best["target_false_alarms_per_min"])


def markdown(result: dict[str, Any]) -> str:
    rows = result["rows"]
    body = ""
    for r in rows:
        d, shown, events = r["decision"], r["held_out"]["shown"], r["held_out"]["events"]
        body += (
            f"| {r['target_false_alarms_per_min']:g} | {d['threshold']:.2f} "
            f"| {d['background_false_alarms_per_min']:.2f} | {d['start_lag_s']:.2f} "
            f"| {d.get('end_lag_s', 0.0):.2f} | {events['map_iou50']:.3f} "
            f"| {events['f1_iou50']:.3f} | {events['frame_macro_f1']:.3f} "
            f"| {events['latency_median_s']:.2f} | {events['missed_share']:.3f} "
            f"| {events['false_alarms_per_min']:.2f} | {shown['frame_macro_f1']:.3f} "
            f"| {shown['false_alarms_per_min']:.2f} |\n"
        )
    pick = result["chosen"]
    verdict = (
        f"Chosen: **{pick:g}** false alarms per minute of unsmoothed windows (best held-out events "
        f"mAP@0.5 with the shown labels within {result['tolerated']:g} false alarms per "
        "background minute)."
        if pick is not None
        else f"No target keeps the shown labels within {result['tolerated']:g} false alarms "
        "per background minute."
    )
    return (
        "## Choosing the decision rule's false-alarm target\n\n"
        f"`{result['command']}` ({result['machine']}, {result['date']}). The finished run "
        f"`{result['run']}` recalibrated at each target (nothing trained): the lowest threshold "
        "at which its held-out training videos' windows, one by one, show at most that many "
        "false alarms per background minute, and the start and end lags measured at it. Each "
        f"export replayed over those {rows[0]['held_out']['videos']} held-out videos through "
        f"`StreamCore` ({STREAM}), scored as the streaming benchmark scores test videos; "
        f"events: `event_min_s` {EVENTS_MIN_S} s with the card's lags. Training-split videos "
        "only; the test split is not looked at.\n\n"
        "| target / min | threshold | windows' alarms / min | start lag (s) | end lag (s) "
        "| events mAP@0.5 | events F1 | events frame macro F1 | events latency (s) "
        "| events missed | events alarms / bg min | shown frame macro F1 "
        "| shown alarms / bg min |\n"
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n"
        + body
        + "\n"
        + verdict
        + "\n"
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="a finished stream recipe's run")
    parser.add_argument("--targets", type=float, nargs="+", default=[1.0, 1.5, 2.0, 3.0])
    parser.add_argument(
        "--tolerated", type=float, default=2.0, help="shown false alarms per background minute"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=Path, default=Path("runs/stream_decision"))
    parser.add_argument("--results", type=Path, default=RESULTS / "stream_decision.json")
    given = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(given)
    if not (args.run / "metrics.json").exists() or not (args.run / "checkpoint.pt").exists():
        parser.error(f"--run {args.run}: no finished run there (metrics.json, checkpoint.pt)")
    recipe = run_recipe(args.run, args.threads)
    rows = [target_row(args.run, recipe, target, args) for target in sorted(args.targets)]
    result = {
        **provenance("benchmarks.stream_decision", given, args.threads),
        "run": str(args.run),
        "tolerated": args.tolerated,
        "rows": rows,
        "chosen": chosen(rows, args.tolerated),
    }
    publish("stream_decision", result, args.results, markdown(result))


if __name__ == "__main__":
    main()
