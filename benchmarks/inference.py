"""Per-window inference latency on the CPU: PyTorch eager, onnxruntime fp32 and int8, for a
single-person and a two-person window at batch 1 and 8, on the paper configuration (encoder
8 x 256, 120 frames, 25 joints) and on the default model in models/ (when there is one).

    python -m benchmarks.inference [--threads 2] [--repeats 5] [--models paper default]

Each figure is set against the machine's measured fp32 matrix-multiply peak: the model's
FLOPs per window divided by the time give the achieved rate, and ``peak_fraction`` how much
of the peak that is. Writes benchmarks/results/inference.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from numpy.typing import NDArray

from benchmarks.report import publish
from skeleton.card import INPUT_NAME, OUTPUT_NAME, load_card, sha256_of
from training.export import (
    AbsentPersonGraph,
    build_classifier_from_checkpoint,
    export_graph,
    to_variant,
)
from training.model.config import ModelConfig
from training.model.heads import Classifier
from training.recipes.classify import build_classifier

RESULTS = Path(__file__).parent / "results" / "inference.json"
DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "models" / "default.onnx"
PAPER = ModelConfig()  # the published encoder: 8 blocks x 256, 120 frames, 25 joints, 2 persons
PAPER_CLASSES = 60
REFERENCE_TWO_PERSON_S = 0.78  # the public encoder, one two-person window, 2 cores (method.md)
TARGET_SINGLE_PERSON_S = 0.2  # issue 5: ONNX fp32, one single-person window


def encoder_flops(cfg: ModelConfig, persons: int) -> float:
    """Multiply-adds x 2 of the encoder for one window of ``persons`` present persons."""
    tokens, width = cfg.tokens, cfg.width
    hidden = int(width * cfg.mlp_ratio)
    per_block = tokens * width * (3 * width + width + 2 * hidden) + 2 * tokens * tokens * width
    embed = tokens * cfg.patch_dim * width
    return 2.0 * persons * (cfg.depth * per_block + embed)


def matmul_peak_gflops(threads: int, size: int = 2048, repeats: int = 10) -> dict[str, float]:
    """The best fp32 GEMM rate of numpy and PyTorch on this machine (after a warm-up: the
    first large GEMMs of a process run well below the sustained rate)."""
    a = np.random.default_rng(0).standard_normal((size, size), dtype=np.float32)
    ta = torch.from_numpy(a)
    rates = {}
    for name, fn in (("numpy", lambda: a @ a), ("torch", lambda: ta @ ta)):
        for _ in range(3):
            fn()
        best = min(_time_once(fn) for _ in range(repeats))
        rates[name] = 2 * size**3 / best / 1e9
    rates["peak"] = max(rates.values())
    return rates


def _time_once(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def median_seconds(fn: Callable[[], object], repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    return statistics.median(_time_once(fn) for _ in range(repeats))


def session(model: onnx.ModelProto | Path, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    source = str(model) if isinstance(model, Path) else model.SerializeToString()
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def window_batch(batch: int, persons: int, frames: int, joints: int) -> NDArray[np.float32]:
    rng = np.random.default_rng(0)
    return rng.normal(0, 0.3, size=(batch, persons, frames, joints, 3)).astype(np.float32)


def paper_classifier() -> Classifier:
    torch.manual_seed(0)
    return build_classifier(PAPER, "finetune", PAPER_CLASSES).eval()


def bench_model(
    name: str,
    cfg: ModelConfig,
    runners: dict[str, Callable[[NDArray[np.float32]], object]],
    persons_options: tuple[int, ...],
    repeats: int,
    peak: float,
) -> list[dict[str, Any]]:
    rows = []
    for variant, run in runners.items():
        for persons in persons_options:
            for batch in (1, 8):
                x = window_batch(batch, persons, cfg.frames, cfg.joints)
                seconds = median_seconds(lambda x=x, run=run: run(x), repeats)  # type: ignore[misc]
                ms = 1000 * seconds / batch
                gflops = encoder_flops(cfg, persons) / 1e9
                rate = gflops / (ms / 1000)
                rows.append(
                    {
                        "model": name,
                        "variant": variant,
                        "persons": persons,
                        "batch": batch,
                        "ms_per_window": round(ms, 2),
                        "windows_per_s": round(1000 / ms, 2),
                        "gflop_per_window": round(gflops, 2),
                        "achieved_gflops": round(rate, 1),
                        "peak_fraction": round(rate / peak, 3),
                        "ms_at_peak": round(1000 * gflops / peak, 2),
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
    return rows


def torch_runner(module: torch.nn.Module) -> Callable[[NDArray[np.float32]], object]:
    def run(x: NDArray[np.float32]) -> object:
        with torch.inference_mode():
            return module(torch.from_numpy(x))

    return run


def ort_runner(sess: ort.InferenceSession) -> Callable[[NDArray[np.float32]], object]:
    return lambda x: sess.run([OUTPUT_NAME], {INPUT_NAME: x})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--models", nargs="+", default=["paper", "default"])
    parser.add_argument("--default-model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument(
        "--default-checkpoint",
        type=Path,
        default=None,
        help="the default model's classifier.pt, for its PyTorch eager rows",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]  # other work on the machine skews every figure
    peak = matmul_peak_gflops(args.threads)
    print(f"fp32 matmul peak: {peak['peak']:.1f} GFLOP/s ({args.threads} threads)", flush=True)
    rows: list[dict[str, Any]] = []
    notes: list[str] = [
        "peak_fraction is against the fp32 matmul peak for every variant, int8 included",
        "torch: PyTorch eager on the exported module (single-person windows skip the absent "
        "person there too)",
    ]
    if "paper" in args.models:
        classifier = paper_classifier()
        graph = export_graph(classifier)
        runners = {
            # the exported module itself: P = 1 windows take the absent-person shortcut too
            "torch": torch_runner(AbsentPersonGraph(classifier).eval()),
            "fp32": ort_runner(session(graph, args.threads)),
            "int8": ort_runner(session(to_variant(graph, "int8"), args.threads)),
        }
        rows += bench_model("paper", PAPER, runners, (1, 2), args.repeats, peak["peak"])
    if "default" in args.models:
        if args.default_model.is_file():
            rows += bench_default(
                args.default_model,
                args.default_checkpoint,
                args.threads,
                args.repeats,
                peak["peak"],
            )
            if args.default_checkpoint is None:
                notes.append("default: no --default-checkpoint, so no PyTorch eager rows")
        else:
            notes.append(f"default: skipped, no model at {args.default_model}")
            print(notes[-1])
    result = {
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "threads": args.threads,
            "matmul_peak_gflops": round(peak["peak"], 1),
            "matmul_gflops": {k: round(v, 1) for k, v in peak.items() if k != "peak"},
            "torch": torch.__version__,
            "onnxruntime": ort.__version__,
            "load_average_1min": {"before": load_before, "after": os.getloadavg()[0]},
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        },
        "reference": {
            "public_encoder_two_person_window_s": REFERENCE_TWO_PERSON_S,
            "target_onnx_fp32_single_person_s": TARGET_SINGLE_PERSON_S,
        },
        "notes": notes,
        "rows": rows,
    }
    publish("inference", result, args.out, markdown_table(result))


def bench_default(
    path: Path, checkpoint: Path | None, threads: int, repeats: int, peak: float
) -> list[dict[str, Any]]:
    card = load_card(path)
    cfg_raw = card.training.get("model_config", {})
    cfg = ModelConfig.model_validate(cfg_raw) if cfg_raw else None
    if cfg is None:
        raise SystemExit(f"{path}: the card does not record the model configuration")
    graph = onnx.load(path)
    int8_path = path.with_name(path.stem + ".int8.onnx")
    int8 = onnx.load(int8_path) if int8_path.is_file() else to_variant(graph, "int8")
    runners = {}
    if checkpoint is not None:
        if sha256_of(checkpoint) != card.training.get("checkpoint_sha256"):
            raise SystemExit(f"{checkpoint} is not the checkpoint {path} was exported from")
        classifier, _ = build_classifier_from_checkpoint(checkpoint)
        module = AbsentPersonGraph(classifier) if cfg.persons > 1 else classifier
        runners["torch"] = torch_runner(module.eval())
    runners["fp32"] = ort_runner(session(path, threads))
    runners["int8"] = ort_runner(session(int8, threads))
    persons = (1, 2) if cfg.persons > 1 else (1,)
    return bench_model("default", cfg, runners, persons, repeats, peak)


def markdown_table(result: dict[str, Any]) -> str:
    machine = result["machine"]
    peak = machine["matmul_peak_gflops"]
    eager = {
        (r["model"], r["persons"], r["batch"]): r["ms_per_window"]
        for r in result["rows"]
        if r["variant"] == "torch"
    }
    lines = [
        "## Inference latency per window (CPU)",
        "",
        f"{machine['cores']} cores, {machine['threads']} threads, torch {machine['torch']}, "
        f"onnxruntime {machine['onnxruntime']}, {machine['date']}; median of several runs. "
        f"Measured fp32 matrix-multiply peak: {peak} GFLOP/s ('of peak' = the model's FLOPs per "
        "window / time / peak). 'vs eager': PyTorch eager time / this time, same process. "
        "Reference: the public encoder takes 780 ms for one two-person window; target for the "
        "ONNX fp32 single-person window: at most 200 ms. "
        "Reproduce: `python -m benchmarks.inference --threads 2`.",
        "",
        "| model | variant | persons | batch | ms / window | windows / s | GFLOP/s | of peak "
        "| vs eager |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in result["rows"]:
        base = eager.get((r["model"], r["persons"], r["batch"]))
        ratio = f"{base / r['ms_per_window']:.2f}x" if base else "-"
        lines.append(
            f"| {r['model']} | {r['variant']} | {r['persons']} | {r['batch']} | "
            f"{r['ms_per_window']:.1f} | {r['windows_per_s']:.1f} | {r['achieved_gflops']:.0f} | "
            f"{100 * r['peak_fraction']:.0f} % | {ratio} |"
        )
    lines += [f"- {note}" for note in result["notes"]]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
