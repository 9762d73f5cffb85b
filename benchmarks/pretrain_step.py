"""Time one pre-training optimisation step (forward, backward, AdamW, teacher EMA) at the paper
configuration on the CPU, for MAMP and MaskSem: ours, the public releases' own step run from
their snapshots, a naive baseline of ours and ours under bf16 autocast, alternated in one process.

    python -m benchmarks.pretrain_step [--reference DIR] [--steps 5] [--warmup 2] [--threads 2]
                                       [--no-baseline] [--no-bf16]

``--reference DIR``: DIR holds extracted snapshots of the two public releases, outside this
repository (their code runs from there; nothing of it is copied in):

    fetch github:maoyunyao/MAMP and github:JayEason66/MaskSem (bare git mirrors), then
    mkdir -p DIR/MAMP DIR/MaskSem
    git --git-dir=<MAMP mirror> archive HEAD | tar -x -C DIR/MAMP
    git --git-dir=<MaskSem mirror> archive HEAD | tar -x -C DIR/MaskSem
    git --git-dir=<MAMP mirror> rev-parse HEAD > DIR/MAMP.commit
    git --git-dir=<MaskSem mirror> rev-parse HEAD > DIR/MaskSem.commit

(a clone of each into DIR/MAMP and DIR/MaskSem does as well). The .commit files are optional:
they are copied into the results to say which versions were timed.
benchmarks/release_reference.py builds their models, optimiser and loss scaler (the shims it
needs are listed there). Without ``--reference`` the releases are not timed and no ratio to
them is written.

Writes benchmarks/results/pretrain_step.json and the RESULTS.md section, and prints it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.profiler import ProfilerActivity

from benchmarks.release_reference import (
    ReleaseSnapshotError,
    check_snapshots,
    release_steps,
    snapshot_commits,
    snapshot_digests,
)
from benchmarks.report import publish
from skeleton.layouts import get_layout
from training.model.config import MaskingKind, ModelConfig, PretrainConfig
from training.model.heads import param_groups
from training.model.pretrainer import Pretrainer
from training.model.teacher import Teacher, cam_scores, part_pool
from training.model.tokens import person_patches

RESULTS = Path(__file__).parent / "results" / "pretrain_step.json"
BATCH = 8
LR = 1e-3 * BATCH / 128
METHODS: tuple[tuple[str, MaskingKind], ...] = (("mamp", "motion"), ("masksem", "semantic"))
SHOWN = (("mamp", "MAMP"), ("masksem", "MaskSem"))  # (method, name in the section)
# Figures printed before the releases were timed beside ours (kept as history only, never
# divided by): the releases on another 2-core AVX2 machine (method.md section 7), and the first
# side-by-side timing on a 2-core AVX-512 machine (issue 18).
HISTORY = (
    "Before this benchmark timed the releases itself, it divided by their times measured "
    "elsewhere (MAMP 7.9 s, MaskSem 16.2 s, 2-core AVX2); timed side by side on a 2-core "
    "AVX-512 machine they took 4.0 s and 7.85 s against our 2.50 s and 4.48 s then (1.6x, 1.75x)."
)


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
    """(8, 2, 120, 25, 3) smooth random-walk clips, the second person absent (all zeros) in half
    of them; in NTU-60, 49 of the 60 actions have one person. The cost of a step depends on these
    shapes and, for our MaskSem teacher, on how many persons are absent (they share one pass)."""
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
    # As training/loop.py builds it; the baseline keeps the for-loop update.
    groups = param_groups(pre, weight_decay=0.05)
    opt = torch.optim.AdamW(groups, lr=LR, betas=(0.9, 0.95), fused=not naive)
    pre.train()
    return pre, opt


def step_fn(
    pre: Pretrainer,
    opt: torch.optim.Optimizer,
    masking: MaskingKind,
    clips: Tensor,
    bf16: bool = False,
) -> Callable[[], None]:
    """One iteration of our training loop's body (training/loop.py) on ``clips``."""

    def step() -> None:
        with autocast_bf16() if bf16 else contextlib.nullcontext():
            out = pre(clips, masking)
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        opt.step()
        if masking == "semantic":
            pre.update_teacher()

    return step


def autocast_bf16() -> contextlib.AbstractContextManager[Any]:
    return torch.autocast(device_type="cpu", dtype=torch.bfloat16)


def alternated_times(
    sides: dict[str, Callable[[], None]], steps: int, warmup: int
) -> dict[str, dict[str, list[float]]]:
    """Wall and CPU seconds (user + sys of this process) of every timed call of each side, the
    sides run in turn (a, b, c, a, b, c, ...) so that load from other work on the machine falls
    on all of them alike. CPU time counts the work done, not the time spent waiting for a core
    that another job holds. Also the kernel's share: system seconds and minor page faults (a
    step that allocates large tensors afresh pays the kernel to map and zero their pages)."""
    for _ in range(warmup):
        for step in sides.values():
            step()
    keys = ("wall", "cpu", "sys", "page_faults")
    times: dict[str, dict[str, list[float]]] = {name: {k: [] for k in keys} for name in sides}
    for _ in range(steps):
        for name, step in sides.items():
            usage, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
            step()
            times[name]["wall"].append(time.perf_counter() - wall)
            after = resource.getrusage(resource.RUSAGE_SELF)
            sys_s = after.ru_stime - usage.ru_stime
            times[name]["cpu"].append(after.ru_utime - usage.ru_utime + sys_s)
            times[name]["sys"].append(sys_s)
            times[name]["page_faults"].append(after.ru_minflt - usage.ru_minflt)
    return times


def attention_flops(model: ModelConfig, pretrain: PretrainConfig, batch: int) -> float:
    """Floating-point operations of the attention products of one MAMP step: per layer over L
    tokens, 2 B H L^2 d for each of 7 products (forward Q K^T and P V; the CPU flash kernel's
    backward recomputes Q K^T, then dV, dP, dQ and dK); the encoder sees the visible tokens,
    the decoder all of them."""
    sequences = batch * model.persons

    def per_layer(length: int, width: int) -> float:
        return 7 * 2 * sequences * model.heads * length**2 * (width // model.heads)

    visible = pretrain.visible_tokens(model.tokens)
    return model.depth * per_layer(visible, model.width) + model.decoder_depth * per_layer(
        model.tokens, model.decoder_width
    )


def time_breakdown(
    step: Callable[[], None], attention_gflop: float, steps: int = 2
) -> dict[str, float]:
    """Where one step's time goes (torch.profiler, self CPU time per step): the linear layers'
    matrix products and their GFLOP/s (the profiler's count), the attention kernels (SDPA
    forward and backward) and their GFLOP/s (``attention_gflop`` per step), everything else."""
    with torch.profiler.profile(activities=[ProfilerActivity.CPU], with_flops=True) as prof:
        for _ in range(steps):
            step()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events) / 1e6 / steps
    matmul = [e for e in events if e.key in ("aten::mm", "aten::addmm", "aten::bmm")]
    matmul_s = sum(e.self_cpu_time_total for e in matmul) / 1e6 / steps
    matmul_gflop = sum(e.flops for e in matmul) / 1e9 / steps
    attention_s = (
        sum(e.self_cpu_time_total for e in events if "scaled_dot_product" in e.key) / 1e6 / steps
    )
    return {
        "profiled_s": total,
        "linear_matmul_s": matmul_s,
        "linear_matmul_gflops": matmul_gflop / matmul_s,
        "attention_s": attention_s,
        "attention_gflops": attention_gflop / attention_s,
        "other_s": total - matmul_s - attention_s,
    }


def bf16_effect(masking: MaskingKind, clips: Tensor) -> dict[str, float]:
    """Loss and gradient of the same model on the same batch and masking draw, fp32 against
    bf16 autocast: what bf16 changes in one step (at initialisation)."""
    pre, _ = build(naive=False)
    losses: list[float] = []
    grads: list[Tensor] = []
    for bf16 in (False, True):
        pre.zero_grad(set_to_none=True)
        torch.manual_seed(1)  # the same Gumbel draw for both
        with autocast_bf16() if bf16 else contextlib.nullcontext():
            out = pre(clips, masking)
        out["loss"].backward()
        losses.append(out["loss"].item())
        grad = [p.grad.flatten() for p in pre.parameters() if p.grad is not None]
        grads.append(torch.cat(grad).double())  # float64: a cosine of 8.8 M terms
    return {
        "loss_fp32": losses[0],
        "loss_bf16": losses[1],
        "loss_rel_diff": abs(losses[1] - losses[0]) / abs(losses[0]),
        "grad_cosine": float(F.cosine_similarity(grads[0], grads[1], dim=0)),
    }


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


def load_average() -> str:
    """The 1, 5 and 15 minute load averages (runnable processes; 2 means both cores busy)."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def copy_bandwidth_gbs(mib: int = 256, repeats: int = 5) -> float:
    """Memory bandwidth as torch sees it: bytes read plus written per second by a copy of a
    ``mib`` MiB float32 tensor (median of ``repeats``), recorded beside the times because the
    releases' explicit attention reads and writes whole (B, H, L, L) matrices."""
    src = torch.ones(mib * 2**18)
    dst = torch.empty_like(src)
    dst.copy_(src)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        dst.copy_(src)
        times.append(time.perf_counter() - start)
    return 2 * src.numel() * 4 / statistics.median(times) / 1e9


def cpu_bf16_flags() -> list[str]:
    """The CPU's bf16 instruction flags (avx512_bf16, amx_bf16); empty where it has none."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return sorted(f for f in line.split(":", 1)[1].split() if "bf16" in f)
    except OSError:
        pass
    return []


def run(
    steps: int,
    warmup: int,
    threads: int,
    baseline: bool,
    bf16: bool,
    reference: Path | None,
) -> dict[str, Any]:
    torch.set_num_threads(threads)
    clips = paper_batch()
    results: dict[str, Any] = {}
    ours = {}
    for method, masking in METHODS:
        pre, opt = build(naive=False)
        ours[method] = step_fn(pre, opt, masking, clips)
        ours[method]()
    # ru_maxrss only grows: read ours before anything else is built.
    results["peak_rss_mb"] = peak_rss_mb()
    releases = release_steps(reference, clips, LR) if reference is not None else {}
    bf16_flags = cpu_bf16_flags()
    bf16 = bf16 and bool(bf16_flags)
    for method, masking in METHODS:
        sides = {f"{method}_step_s": ours[method]}
        if method in releases:
            sides[f"reference_{method}_step_s"] = releases[method].step
        if bf16:
            pre, opt = build(naive=False)
            sides[f"{method}_bf16_step_s"] = step_fn(pre, opt, masking, clips, bf16=True)
        if baseline:
            pre, opt = build(naive=True)
            sides[f"baseline_{method}_step_s"] = step_fn(pre, opt, masking, clips)
        for key, measured in alternated_times(sides, steps, warmup).items():
            results[key] = statistics.median(measured["wall"])
            results[key.replace("_step_s", "_step_cpu_s")] = statistics.median(measured["cpu"])
            results.setdefault("times_s", {})[key] = measured
        del sides
    attention_gflop = attention_flops(ModelConfig(), PretrainConfig(), BATCH) / 1e9
    results["time_breakdown_mamp"] = time_breakdown(ours["mamp"], attention_gflop)
    results["peak_rss_all_mb"] = peak_rss_mb()
    results["load_average"] = load_average()
    results["copy_bandwidth_gbs"] = copy_bandwidth_gbs()
    if releases:
        results["speedup_vs_reference"] = {
            m: results[f"reference_{m}_step_s"] / results[f"{m}_step_s"] for m, _ in METHODS
        }
        results["cpu_time_ratio_vs_reference"] = {
            m: results[f"reference_{m}_step_cpu_s"] / results[f"{m}_step_cpu_s"] for m, _ in METHODS
        }
        results["reference"] = {
            "dir": str(reference),
            "commits": snapshot_commits(reference),  # type: ignore[arg-type]
            "files_sha256": snapshot_digests(reference),  # type: ignore[arg-type]
        }
    else:
        results["reference"] = "not timed (run with --reference DIR)"
    if bf16:
        results["bf16_effect"] = {m: bf16_effect(k, clips) for m, k in METHODS}
    results.update(
        {
            "config": "batch 8 x 2 persons x 120 frames x 25 joints, encoder 8 x 256, "
            "decoder 3 x 256, fp32, AdamW",
            "steps": steps,
            "warmup": warmup,
            "threads": threads,
            "cpu": cpu_model(),
            "cpu_bf16_flags": bf16_flags,
            "cores": os.cpu_count(),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "command": "python -m benchmarks.pretrain_step " + " ".join(sys.argv[1:]),
        }
    )
    return results


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _x(num: float | None, den: float | None) -> str:
    return "-" if num is None or den is None else f"{num / den:.2f}x"


def kernel_share(results: dict[str, Any], key: str) -> str:
    """Median system seconds and minor page faults per step of one side."""
    times = results["times_s"][key]
    sys_s, faults = statistics.median(times["sys"]), statistics.median(times["page_faults"])
    return f"{sys_s:.2f} s, {faults:.0f} faults"


def user_seconds(results: dict[str, Any], key: str) -> float:
    """Median user CPU seconds per step of one side: its arithmetic, without the kernel's
    share (which varies with the host: mapping and zeroing fresh pages)."""
    times = results["times_s"][key]
    return statistics.median(c - s for c, s in zip(times["cpu"], times["sys"], strict=True))


def markdown_section(results: dict[str, Any]) -> str:
    """The RESULTS.md section for these results."""
    timed = isinstance(results["reference"], dict)
    commits = ""
    if timed:
        commits = (
            " (commits "
            + ", ".join(
                f"{name} {commit[:12]}" for name, commit in results["reference"]["commits"].items()
            )
            + ")"
        )
    rows = [
        "## Pre-training step on the CPU",
        "",
        "One optimisation step (forward, backward, AdamW; plus the teacher EMA for MaskSem) "
        f"at the paper configuration ({results['config']}), median of {results['steps']} steps "
        f"after {results['warmup']} warm-up steps, {results['threads']} threads, "
        f"{results['cpu']} ({results['cores']} cores), torch {results['torch']}, "
        f"{results['date']}. All columns of a row come from the same run, their steps "
        "alternated (ours, release, bf16, baseline, ours, ...), on a machine shared with other "
        "work (each side saw the same load, but absolute times vary between runs). "
        "Release: the public code's own model, loss, optimiser and loss scaler "
        "(github:maoyunyao/MAMP, github:JayEason66/MaskSem), fp32, run from snapshots "
        "outside this repository: `--reference DIR` where DIR/MAMP and DIR/MaskSem hold "
        "`git archive HEAD` of each repository (steps in the docstring of "
        f"benchmarks/pretrain_step.py){commits}; shims applied at run time, their files "
        "untouched, are listed in benchmarks/release_reference.py. "
        "Baseline: our step with explicit softmax(QK^T)V "
        "attention, for MaskSem a teacher forward recorded by autograd with a separate anchor "
        "pass, and the for-loop AdamW. bf16: our step under CPU bf16 autocast. "
        f"Reproduce: `{results['command']}`.",
        "",
        "| method | ours fp32 (s) | release fp32 (s) | release / ours | ours bf16 (s) "
        "| baseline (s) | baseline / ours |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for method, name in SHOWN:
        ours = results[f"{method}_step_s"]
        ref = results.get(f"reference_{method}_step_s")
        base = results.get(f"baseline_{method}_step_s")
        rows.append(
            f"| {name} | {ours:.2f} | {_s(ref)} | {_x(ref, ours)} "
            f"| {_s(results.get(f'{method}_bf16_step_s'))} | {_s(base)} | {_x(base, ours)} |"
        )
    rows.append("")
    if timed:
        rows.append(
            "CPU seconds per step (user + sys of the process, median; the work done, less "
            "sensitive to other jobs holding the cores): "
            + "; ".join(
                f"{n} ours {results[f'{m}_step_cpu_s']:.2f}, release "
                f"{results[f'reference_{m}_step_cpu_s']:.2f}, "
                f"{results['cpu_time_ratio_vs_reference'][m]:.2f}x"
                for m, n in SHOWN
            )
            + ". Of these, system seconds (the kernel) and minor page faults per step (median): "
            + "; ".join(
                f"{n} ours {kernel_share(results, f'{m}_step_s')}, "
                f"release {kernel_share(results, f'reference_{m}_step_s')}"
                for m, n in SHOWN
            )
            + ". Without the kernel's share (user seconds per step, median: the arithmetic "
            "itself): "
            + "; ".join(
                f"{n} ours {user_seconds(results, f'{m}_step_s'):.2f}, release "
                f"{user_seconds(results, f'reference_{m}_step_s'):.2f}, "
                + _x(
                    user_seconds(results, f"reference_{m}_step_s"),
                    user_seconds(results, f"{m}_step_s"),
                )  # fmt: skip
                for m, n in SHOWN
            )
            + f". Load average at the end of the run: {results['load_average']}; memory "
            f"bandwidth of a 256 MiB copy then {results['copy_bandwidth_gbs']:.1f} GB/s."
        )
        rows.append("")
    if not timed:
        rows.append("The releases were not timed in this run (no `--reference DIR`): no ratio.")
        rows.append("")
    effect = results.get("bf16_effect")
    if effect:
        rows.append(
            f"bf16 (CPU flags {', '.join(results['cpu_bf16_flags'])}): on the same batch and "
            "masking draw at initialisation, the loss under bf16 autocast differs from fp32 by "
            + "; ".join(
                f"{n} {effect[m]['loss_rel_diff'] * 100:.2f} % "
                f"({effect[m]['loss_fp32']:.4f} vs {effect[m]['loss_bf16']:.4f}), gradient "
                f"cosine {effect[m]['grad_cosine']:.4f}"
                for m, n in SHOWN
            )
            + "."
        )
        rows.append("")
    split = results.get("time_breakdown_mamp")
    if split:
        rows.append(
            "Where our MAMP step's time goes (torch.profiler, self CPU time per step, "
            f"{split['profiled_s']:.2f} s profiled): the linear layers' matrix products "
            f"{split['linear_matmul_s']:.2f} s at {split['linear_matmul_gflops']:.0f} GFLOP/s; "
            f"attention (PyTorch's CPU flash kernel, forward and backward) "
            f"{split['attention_s']:.2f} s at {split['attention_gflops']:.0f} GFLOP/s (its "
            "products counted in benchmarks/pretrain_step.py: attention_flops); everything "
            f"else {split['other_s']:.2f} s. The releases compute the same products."
        )
        rows.append("")
    rows.append(
        f"Peak resident memory of our two steps: {results['peak_rss_mb']:.0f} MB "
        f"(whole run, every side built: {results['peak_rss_all_mb']:.0f} MB)."
    )
    rows.append("")
    rows.append(HISTORY)
    return "\n".join(rows) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, default=None, metavar="DIR")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--no-bf16", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.reference is not None:
        try:
            check_snapshots(args.reference)
        except ReleaseSnapshotError as exc:
            parser.exit(2, f"error: {exc}\n")
    results = run(
        args.steps,
        args.warmup,
        args.threads,
        not args.no_baseline,
        not args.no_bf16,
        args.reference,
    )
    publish("pretrain_step", results, args.out, markdown_section(results))


if __name__ == "__main__":
    main()
