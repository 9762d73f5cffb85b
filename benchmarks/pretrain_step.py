"""Time one pre-training optimisation step (forward, backward, AdamW, teacher EMA) at the paper
configuration on the CPU, for MAMP and MaskSem, against a naive baseline run in the same process.

    python -m benchmarks.pretrain_step [--steps 5] [--warmup 2] [--threads 2] [--no-baseline]

Writes benchmarks/results/pretrain_step.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from benchmarks.report import publish
from skeleton.layouts import get_layout
from training.model.config import MaskingKind, ModelConfig, PretrainConfig
from training.model.heads import param_groups
from training.model.pretrainer import Pretrainer
from training.model.teacher import Teacher, cam_scores, part_pool
from training.model.tokens import person_patches

RESULTS = Path(__file__).parent / "results" / "pretrain_step.json"
# The public implementations on a 2-core AVX2 CPU (method.md section 7) and the targets.
REFERENCE_S = {"mamp": 7.9, "masksem": 16.2}
TARGET_S = {"mamp": 3.9, "masksem": 8.1}
BATCH = 8


class AutogradTeacher(Teacher):
    """Baseline Grad-CAM the obvious way: the anchor in a pass of its own, and the teacher's
    forward recorded by autograd so that torch.autograd.grad reaches its final tokens."""

    def forward(self, clips: Tensor) -> Tensor:
        cfg = self.encoder.cfg
        n = clips.shape[0]
        self.encoder.requires_grad_(True)
        try:
            with torch.enable_grad():
                y = self.encoder.forward_tokens(person_patches(clips, cfg.patch))
                y = y.view(n, cfg.persons, cfg.time_tokens, cfg.joints, cfg.width)
                mean_clip = clips.mean(dim=0, keepdim=True)
                anchor = self.encoder.forward_tokens(person_patches(mean_clip, cfg.patch))
                z = y.mean(dim=(2, 3)).mean(dim=1)
                a = anchor.mean(dim=(0, 1))
                score = (F.normalize(z, dim=-1) * F.normalize(a, dim=-1)).sum(-1).mean()
                (grad,) = torch.autograd.grad(1 - score, y)
        finally:
            self.encoder.requires_grad_(False)
        weights = grad.mean(dim=(2, 3), keepdim=True)
        cam = F.relu((weights * y.detach()).mean(dim=-1)).flatten(0, 1)
        return cam_scores(part_pool(cam, self.part_average), self.mode)


def paper_batch(seed: int = 0) -> Tensor:
    """(8, 2, 120, 25, 3) smooth random-walk clips, the second person absent in half of them.
    The step's cost does not depend on the values, only on these shapes."""
    g = torch.Generator().manual_seed(seed)
    x = torch.cumsum(0.02 * torch.randn(BATCH, 2, 120, 25, 3, generator=g), dim=2)
    x[::2, 1] = 0.0
    return x


def build(naive: bool) -> tuple[Pretrainer, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = ModelConfig(fused_attention=not naive)  # paper defaults: 8 x 256 encoder, 3 blocks
    parts = get_layout("ntu25").parts
    pre = Pretrainer(model, PretrainConfig(), parts)
    if naive:
        pre.teacher = AutogradTeacher(pre.encoder, parts)
    lr = 1e-3 * BATCH / 128
    opt = torch.optim.AdamW(param_groups(pre, weight_decay=0.05), lr=lr, betas=(0.9, 0.95))
    return pre, opt


def step_fn(
    pre: Pretrainer, opt: torch.optim.Optimizer, masking: MaskingKind
) -> Callable[[], None]:
    clips = paper_batch()

    def step() -> None:
        out = pre(clips, masking)
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        opt.step()
        if masking == "semantic":
            pre.update_teacher()

    return step


def median_step_s(step: Callable[[], None], steps: int, warmup: int) -> float:
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run(steps: int, warmup: int, threads: int, baseline: bool) -> dict[str, Any]:
    torch.set_num_threads(threads)
    results: dict[str, Any] = {}
    for naive in (False, True) if baseline else (False,):
        prefix = "baseline_" if naive else ""
        methods: tuple[tuple[str, MaskingKind], ...] = (("mamp", "motion"), ("masksem", "semantic"))
        for method, masking in methods:
            pre, opt = build(naive)
            pre.train()
            results[f"{prefix}{method}_step_s"] = median_step_s(
                step_fn(pre, opt, masking), steps, warmup
            )
            del pre, opt
        # ru_maxrss only grows, so read ours before the memory-hungry baseline runs.
        results[f"{prefix}peak_rss_mb"] = peak_rss_mb()
    results.update(
        {
            "config": "batch 8 x 2 persons x 120 frames x 25 joints, encoder 8 x 256, "
            "decoder 3 x 256, fp32, AdamW",
            "steps": steps,
            "warmup": warmup,
            "threads": threads,
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "reference_s": REFERENCE_S,
            "target_s": TARGET_S,
        }
    )
    return results


def markdown_section(results: dict[str, Any]) -> str:
    """The RESULTS.md section for these results."""
    rows = [
        "## Pre-training step on the CPU",
        "",
        "One optimisation step (forward, backward, AdamW; plus the teacher EMA for MaskSem) "
        f"at the paper configuration ({results['config']}), median of {results['steps']} steps "
        f"after {results['warmup']} warm-up steps, {results['threads']} threads, "
        f"{results['cpu']}, torch {results['torch']}, {results['date']}. "
        "Baseline: the same step with explicit softmax(QK^T)V attention and, for MaskSem, a "
        "teacher forward recorded by autograd with a separate anchor pass. Reference: the "
        "public implementations (method.md section 7). "
        "Reproduce: `python -m benchmarks.pretrain_step`.",
        "",
        "| method | ours (s) | baseline (s) | speed-up | reference (s) | target (s) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for method, name in (("mamp", "MAMP"), ("masksem", "MaskSem")):
        ours = results[f"{method}_step_s"]
        base = results.get(f"baseline_{method}_step_s")
        base_s = f"{base:.2f}" if base is not None else "-"
        speed = f"{base / ours:.1f}x" if base is not None else "-"
        rows.append(
            f"| {name} | {ours:.2f} | {base_s} | {speed} | {REFERENCE_S[method]:.1f} "
            f"| {TARGET_S[method]:.1f} |"
        )
    rows.append("")
    peak = f"Peak resident memory: {results['peak_rss_mb']:.0f} MB"
    if "baseline_peak_rss_mb" in results:
        peak += f" (with the baseline also run: {results['baseline_peak_rss_mb']:.0f} MB)"
    rows.append(peak + ".")
    return "\n".join(rows) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    results = run(args.steps, args.warmup, args.threads, not args.no_baseline)
    publish("pretrain_step", results, args.out, markdown_section(results))


if __name__ == "__main__":
    main()
