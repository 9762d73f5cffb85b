"""Pre-training under torchrun: two CPU processes (gloo), one DistributedSampler shard each,
gradients averaged by DDP, and only rank 0 writes the run folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from subprocess import PIPE, CompletedProcess

import pytest
import yaml

from tests.training.test_recipes import DATA, LOOP, MODEL
from training.checkpoints import TrainingState


def run_torchrun(cmd: list[str], env: dict[str, str], timeout: float) -> CompletedProcess[str]:
    """``subprocess.run`` that stops torchrun's workers too when it gives up.

    torchrun starts each worker in a session of its own, so the SIGKILL that ``subprocess.run``
    sends on a timeout ends torchrun alone and leaves both workers running, each holding a core
    of a 2-core machine for the tests that follow. SIGTERM lets torchrun stop them first."""
    proc = subprocess.Popen(cmd, stdout=PIPE, stderr=PIPE, text=True, env=env)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.terminate()
        try:
            out, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        pytest.fail(f"torchrun did not finish in {timeout:.0f} s; its stderr ends:\n{err[-3000:]}")
    return CompletedProcess(cmd, proc.returncode, out, err)


def test_torchrun_two_processes_train_one_model_and_only_rank_zero_writes(
    tmp_path: Path, data_root: Path
) -> None:
    recipe = tmp_path / "ddp.yaml"
    recipe.write_text(yaml.safe_dump({
        "name": "tiny-ddp", "data": DATA, "model": MODEL, "masking": "semantic",
        "loop": {**LOOP, "epochs": 2},
    }))  # fmt: skip
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "masksem.cli", "pretrain", "-c", str(recipe), "--out", str(out),
           "--device", "cpu"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = run_torchrun(cmd, env, timeout=300.0)
    if "gloo" in done.stderr and "not available" in done.stderr:
        pytest.skip("this torch build has no gloo backend")
    assert done.returncode == 0, done.stderr[-3000:]
    history = json.loads((out / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2]
    assert 0.0 < history[-1]["salient_share"] < 1.0
    assert len(list((out / "tensorboard").iterdir())) == 1  # one writer: rank 0
    state = TrainingState.read(out / "checkpoint.pt")
    assert state.epoch == 2 and state.step == 2  # 24 clips / (2 ranks x batch 8)
