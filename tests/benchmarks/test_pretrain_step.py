"""The pre-training step benchmark: its own path without the releases (what it writes, and that it
claims no ratio), the one-line refusal of a --reference DIR without the snapshots, and, where
MASKSEM_RELEASE_SNAPSHOTS points at extracted snapshots, that the releases' steps run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from benchmarks.pretrain_step import attention_flops, markdown_section, paper_batch, run
from benchmarks.release_reference import ReleaseSnapshotError, check_snapshots, release_steps
from skeleton.layouts import get_layout
from training.model.config import ModelConfig, PretrainConfig
from training.model.pretrainer import Pretrainer

REPO = Path(__file__).resolve().parents[2]


def test_without_reference_ours_is_timed_and_no_ratio_is_claimed() -> None:
    results = run(steps=1, warmup=0, threads=1, baseline=False, bf16=False, reference=None)
    assert results["mamp_step_s"] > 0 and results["masksem_step_s"] > 0
    assert results["reference"].startswith("not timed")
    assert not any(k.startswith("reference_") or "speedup" in k or "ratio" in k for k in results)
    text = markdown_section(results)
    assert "not timed" in text and "release / ours" in text
    mamp_row = next(line for line in text.splitlines() if line.startswith("| MAMP |"))
    assert mamp_row.split("|")[3].strip() == "-"  # no release time, so no ratio either
    assert mamp_row.split("|")[4].strip() == "-"
    split = results["time_breakdown_mamp"]
    parts = split["linear_matmul_s"] + split["attention_s"] + split["other_s"]
    assert split["linear_matmul_s"] > 0 and split["attention_s"] > 0 and split["other_s"] >= 0
    assert parts == pytest.approx(split["profiled_s"])
    assert "Where our MAMP step's time goes" in text


def test_the_attention_count_matches_the_profilers_count_of_its_forward_products() -> None:
    """attention_flops (the GFLOP/s of the breakdown) counts 7 products per layer, 2 of them in
    the forward: with explicit attention the profiler counts those 2 itself (aten::bmm)."""
    model = ModelConfig(frames=16, width=32, depth=2, heads=4, decoder_width=32,
                        decoder_depth=1, fused_attention=False)  # fmt: skip
    pretrain = PretrainConfig()
    pre = Pretrainer(model, pretrain, get_layout("ntu25").parts)
    clips = torch.randn(3, model.persons, model.frames, model.joints, 3)
    with torch.no_grad(), profile(activities=[ProfilerActivity.CPU], with_flops=True) as prof:
        pre(clips, "motion")
    counted = sum(e.flops for e in prof.key_averages() if e.key == "aten::bmm")
    assert counted == pytest.approx(attention_flops(model, pretrain, batch=3) * 2 / 7)


def test_a_reference_dir_without_the_snapshots_is_refused_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(ReleaseSnapshotError, match="MAMP"):
        check_snapshots(tmp_path)
    # MAMP present, MaskSem missing: the error names what is missing there.
    for rel in ("model_mamp/transformer.py", "util/misc.py"):
        (tmp_path / "MAMP" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "MAMP" / rel).write_text("")
    with pytest.raises(ReleaseSnapshotError, match=r"MaskSem.model.transformer\.py"):
        check_snapshots(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.pretrain_step", "--reference", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --reference")
    assert "github:JayEason66/MaskSem" in lines[0]
    assert proc.stdout == ""


@pytest.mark.skipif(
    "MASKSEM_RELEASE_SNAPSHOTS" not in os.environ,
    reason="set MASKSEM_RELEASE_SNAPSHOTS to a DIR of extracted release snapshots",
)
def test_the_releases_steps_run_from_their_snapshots() -> None:
    root = Path(os.environ["MASKSEM_RELEASE_SNAPSHOTS"])
    clips = paper_batch()[:2]
    steps = release_steps(root, clips, lr=1e-3)
    for method, release in steps.items():
        trained = [p for p in release.model.parameters() if p.requires_grad]
        before = [p.detach().clone() for p in trained]
        release.step()
        assert any(not torch.equal(a, b) for a, b in zip(trained, before, strict=True)), method
        assert torch.isfinite(release.loss()), method
    # their packages were taken off sys.path and out of sys.modules again
    assert str(root / "MAMP") not in sys.path and "model_mamp" not in sys.modules
    assert "util" not in sys.modules or "MaskSem" not in str(sys.modules["util"])
