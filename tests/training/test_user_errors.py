"""What a user sees when something is wrong: one line naming what, where and what to do, exit
status 2 (the traceback with --debug); data problems refused before any training; a joint
order that does not fit the declared layout named at load."""

from __future__ import annotations

import logging
import lzma
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from skeleton.layouts import get_layout
from training.checkpoints import CheckpointError, ClassifierCheckpoint, EncoderCheckpoint
from training.data.folder import write_folder
from training.data.layout_check import check_layout
from training.data.registry import load_dataset
from training.data.types import Sample, SkeletonDataset
from training.recipes.plots import plot_history

# MSR Action3D's own joint order, as the user declared it: ucla20 (wrongly).
MSR_ORDER = ("ShoulderLeft", "ShoulderRight", "ShoulderCenter", "Spine", "HipLeft", "HipRight",
             "HipCenter", "ElbowLeft", "ElbowRight", "WristLeft", "WristRight", "HandLeft",
             "HandRight", "KneeLeft", "KneeRight", "AnkleLeft", "AnkleRight", "FootLeft",
             "FootRight", "Head")  # fmt: skip


def masksem(*args: str, debug: bool = False) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "masksem.cli", *(["--debug"] if debug else []), *args]
    env = {k: v for k, v in os.environ.items() if k != "MASKSEM_DEBUG"}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)


def test_a_misspelt_set_key_is_one_line_and_exit_2_and_debug_shows_the_traceback(
    tmp_path: Path,
) -> None:
    args = ("finetune", "-c", "utd_finetune", "--set", "model.widht=64", "-o", str(tmp_path))
    plain = masksem(*args)
    assert plain.returncode == 2
    lines = plain.stderr.strip().splitlines()
    assert len(lines) == 1, plain.stderr
    assert "model.widht" in lines[0] and "utd_finetune" in lines[0]
    debug = masksem(*args, debug=True)
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_a_missing_checkpoint_is_one_line(tmp_path: Path) -> None:
    result = masksem("evaluate", "--checkpoint", str(tmp_path / "nope.pt"))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"masksem evaluate: error: {tmp_path / 'nope.pt'}: no such checkpoint file "
        "(--debug shows where)"
    )


def test_wrong_kinds_of_checkpoint_are_refused_saying_what_to_give(tmp_path: Path) -> None:
    encoder = tmp_path / "encoder.pt"
    EncoderCheckpoint.model_validate(
        {"model": {"frames": 16, "width": 32, "heads": 2}, "layout": "utd20"}
    ).save(encoder, {})
    with pytest.raises(CheckpointError, match="not a classifier; give the classifier.pt"):
        ClassifierCheckpoint.read(encoder)
    old = tmp_path / "old.pt"
    torch.save({"kind": "classifier", "head": "finetune", "state_dict": {}}, old)
    with pytest.raises(CheckpointError, match="old format that lacks .*train it again"):
        ClassifierCheckpoint.read(old)
    with pytest.raises(CheckpointError, match="not a pre-trained encoder; give an encoder.pt"):
        EncoderCheckpoint.read(old)


def small_folder(root: Path, utd: SkeletonDataset, *, split: bool) -> Path:
    data = SkeletonDataset("mine", "utd20", utd.classes, utd.train[:6] + utd.test[:2], [])
    write_folder(data, root)
    if not split:  # the README allows a manifest without a split column
        lines = (root / "manifest.csv").read_text().splitlines()
        cut = [",".join(line.split(",")[:4]) for line in lines]
        (root / "manifest.csv").write_text("\n".join(cut) + "\n")
    return root


def test_a_folder_without_a_test_split_is_refused_before_training(
    utd_dataset: SkeletonDataset, tmp_path: Path
) -> None:
    folder = small_folder(tmp_path / "mine", utd_dataset, split=False)
    result = masksem(
        "finetune", "-c", "utd_finetune", "--from-scratch", "-o", str(tmp_path / "run"),
        "--set", "data.dataset=folder", "--set", f"data.root={folder}",
        "--set", "data.options={layout: utd20}", "--set", "data.benchmark=null",
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert "mine (all clips train) has no test clips to evaluate on" in line
    assert "test_subjects" in line
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_data_stats_of_an_empty_folder_exits_2(tmp_path: Path) -> None:
    (tmp_path / "manifest.csv").write_text("path,label,subject\nclips/gone.npy,wave,1\n")
    result = masksem("data", "stats", "folder", "--root", str(tmp_path), "--option", "layout=utd20")
    assert result.returncode == 2
    assert "holds no readable sequence; 1 skipped" in result.stderr


def test_the_wrong_joint_order_is_named_for_a_real_clip(ucla_dataset: SkeletonDataset) -> None:
    layout = get_layout("ucla20")
    as_msr = [layout.joints.index(name) for name in MSR_ORDER]
    clip = ucla_dataset.test[0].data[:, :, as_msr]  # MSR's order, declared as ucla20
    finding = check_layout([clip], "ucla20")
    assert not finding.ok
    assert {"ElbowLeft", "ElbowRight"} & set(finding.suspect_joints)
    assert "suspect joints" in finding.message("my-folder")
    assert check_layout([ucla_dataset.test[0].data], "ucla20").ok


@pytest.mark.parametrize("name", ["utd-mhad", "nw-ucla", "sbu"])
def test_the_real_datasets_pass_the_layout_check(data_root: Path, name: str) -> None:
    data = load_dataset(name)
    assert check_layout([s.data for s in data.samples], data.layout).ok


def test_pku_mmd_streams_pass_the_layout_check(data_root: Path) -> None:
    files = sorted((data_root / "pku-mmd" / "skeleton").glob("*.txt.xz"))[::40]
    clips = []
    for path in files:
        with lzma.open(path, "rt") as fh:
            frames = np.loadtxt(fh, dtype=np.float32)
        people = frames.reshape(len(frames), 2, 25, 3).transpose(1, 0, 2, 3)
        clips += [people[:, start : start + 300] for start in range(0, len(frames), 900)]
    assert check_layout(clips, "ntu25").ok


def test_curves_show_test_accuracy_logged_every_few_epochs(tmp_path: Path) -> None:
    history = [{"epoch": e, "loss": 1.0 / e} for e in range(1, 11)]
    history[4]["test_top1"] = 0.4
    history[9]["test_top1"] = 0.6
    panels = plot_history(history, tmp_path / "curves.png", title="t")
    assert panels == ["loss", "test_top1"]


def test_loading_a_folder_in_the_wrong_order_warns_naming_joints(
    ucla_dataset: SkeletonDataset, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    layout = get_layout("ucla20")
    as_msr = [layout.joints.index(name) for name in MSR_ORDER]
    clips = ucla_dataset.train[:6] + ucla_dataset.test[:2]
    permuted = [Sample(s.name, s.data[:, :, as_msr].copy(), s.label, s.subject) for s in clips]
    mine = SkeletonDataset("msr", "ucla20", ucla_dataset.classes, permuted[:6], permuted[6:])
    write_folder(mine, tmp_path / "msr")
    with caplog.at_level(logging.WARNING, logger="training.data.layout_check"):
        load_dataset("folder", tmp_path / "msr", layout="ucla20")
    warning = " ".join(r.getMessage() for r in caplog.records)
    assert "do not look like ucla20" in warning and "suspect joints" in warning
    assert "Elbow" in warning or "Wrist" in warning
    caplog.clear()
    right = SkeletonDataset("ucla", "ucla20", ucla_dataset.classes, clips[:6], clips[6:])
    write_folder(right, tmp_path / "ucla")
    with caplog.at_level(logging.WARNING, logger="training.data.layout_check"):
        load_dataset("folder", tmp_path / "ucla", layout="ucla20")
    assert not caplog.records
