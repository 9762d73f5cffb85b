"""Pre-training and evaluation recipes end to end on a handful of real UTD-MHAD clips with a tiny
model: resume after a kill, the two-stage and single-run MaskSem, frozen linear evaluation."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from skeleton.layouts import convert, get_layout
from training.checkpoints import TrainingState
from training.config_io import load_config
from training.data.errors import DatasetError
from training.data.feeder import SkeletonFeeder
from training.distributed import DistContext
from training.loop import recipe_changes
from training.model.config import ModelConfig
from training.recipes.classify import (
    ClassifyRecipe,
    FeatureViews,
    load_encoder,
    run_classify,
)
from training.recipes.common import DataConfig, ExtraSource, extra_clips, load_data
from training.recipes.evaluate import evaluate_checkpoint, evaluate_on, load_classifier
from training.recipes.pretrain import PretrainRecipe, run_pretrain

CPU = DistContext(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
DATA = {"dataset": "utd-mhad", "frames": 16, "persons": 1, "min_crop_frames": 8, "limit": 24}
MODEL = {"persons": 1, "frames": 16, "joints": 20, "width": 32, "depth": 2, "heads": 2,
         "decoder_width": 32, "decoder_depth": 1}  # fmt: skip
LOOP = {"epochs": 3, "warmup_epochs": 1, "batch_size": 8, "lr": 1e-3, "lr_batch": 8,
        "min_lr": 1e-4, "checkpoint_every": 1, "threads": 1}  # fmt: skip


@pytest.fixture(autouse=True)
def _real_data(data_root: Path) -> None:
    """Every test here reads real clips."""


def write_recipe(path: Path, **fields: object) -> Path:
    path.write_text(yaml.safe_dump(fields))
    return path


def pretrain_recipe(tmp_path: Path, **changes: object) -> Path:
    fields = {"name": "tiny-mamp", "data": DATA, "model": MODEL, "masking": "motion",
              "loop": LOOP, **changes}  # fmt: skip
    return write_recipe(tmp_path / f"{fields['name']}.yaml", **fields)


def weights(path: Path) -> dict[str, torch.Tensor]:
    return TrainingState.read(path).model


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_killed_run_resumes_to_the_same_weights_as_an_uninterrupted_one(tmp_path: Path) -> None:
    recipe_path = pretrain_recipe(
        tmp_path, name="tiny-switch", masking="semantic", switch_epoch=1, loop={**LOOP, "epochs": 4}
    )
    recipe = load_config(recipe_path, PretrainRecipe)
    straight = run_pretrain(recipe, tmp_path / "straight", CPU)

    resumed_dir = tmp_path / "killed"
    cmd = [sys.executable, "-m", "masksem.cli", "pretrain", "-c", str(recipe_path),
           "--out", str(resumed_dir), "--device", "cpu"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (resumed_dir / "checkpoint.pt").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    # The kill must land mid-run: a run that had already finished would "resume" to nothing
    # and pass without testing resumption.
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    state = TrainingState.read(resumed_dir / "checkpoint.pt")
    assert 1 <= state.epoch < 4, "the kill landed after the last epoch"
    subprocess.run(cmd, check=True, capture_output=True, env={**os.environ})
    assert_same_weights(weights(straight), weights(resumed_dir / "checkpoint.pt"))
    history = json.loads((resumed_dir / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2, 3, 4]


def test_a_run_does_not_resume_from_a_checkpoint_of_another_recipe(tmp_path: Path) -> None:
    """Same --out, changed recipe: refused, naming the field; thread counts may change."""
    first = load_config(pretrain_recipe(tmp_path, loop={**LOOP, "epochs": 1}), PretrainRecipe)
    run_pretrain(first, tmp_path / "run", CPU)
    more_threads = first.model_copy(update={"loop": first.loop.model_copy(update={"threads": 2})})
    run_pretrain(more_threads, tmp_path / "run", CPU)  # resumes: nothing left to do
    masked_less = first.model_copy(
        update={"pretrain": first.pretrain.model_copy(update={"mask_ratio": 0.5})}
    )
    with pytest.raises(ValueError, match=r"different recipe \(pretrain.mask_ratio changed\)"):
        run_pretrain(masked_less, tmp_path / "run", CPU)
    run_pretrain(masked_less, tmp_path / "run", CPU, fresh=True)


def test_a_switch_added_since_the_checkpoint_counts_only_when_turned_on() -> None:
    """Checkpoints written before data.face_forward existed resume while it stays off."""
    saved = {"data": {"frames": 32, "normalise_scale": True}, "loop": {"threads": 1}}
    off = {"data": {"frames": 32, "normalise_scale": True, "face_forward": False}}
    assert recipe_changes(saved, {**off, "loop": {"threads": 2}}) == []
    on = {"data": {"frames": 32, "normalise_scale": True, "face_forward": True}}
    assert recipe_changes(saved, on) == ["data.face_forward"]
    assert recipe_changes(saved, {"data": {"frames": 64}}) == ["data.frames"]


def test_single_run_switches_to_semantic_masking_and_the_loss_falls(tmp_path: Path) -> None:
    recipe = load_config(
        pretrain_recipe(tmp_path, masking="semantic", switch_epoch=2, loop={**LOOP, "epochs": 4}),
        PretrainRecipe,
    )
    run_pretrain(recipe, tmp_path / "run", CPU)
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert ["salient_share" in row for row in history] == [False, False, True, True]
    assert all(0.0 < row["salient_share"] < 1.0 for row in history[2:])
    assert history[-1]["loss_velocity"] < history[0]["loss_velocity"]
    assert (tmp_path / "run" / "metrics.csv").read_text().startswith("epoch,")
    assert (tmp_path / "run" / "curves.png").stat().st_size > 0
    assert any((tmp_path / "run" / "tensorboard").iterdir())


def test_two_stage_recipe_runs_mamp_first_and_starts_masksem_from_it(tmp_path: Path) -> None:
    pretrain_recipe(tmp_path, name="stage-one", loop={**LOOP, "epochs": 1})
    masksem = load_config(
        pretrain_recipe(
            tmp_path, name="tiny-masksem", masking="semantic",
            init={"recipe": str(tmp_path / "stage-one.yaml")}, loop={**LOOP, "epochs": 1},
        ),
        PretrainRecipe,
    )  # fmt: skip
    final = run_pretrain(masksem, tmp_path / "run", CPU)
    stage1 = weights(tmp_path / "run" / "stage1" / "checkpoint.pt")
    stage2 = weights(final)
    # the MaskSem stage trained on from the MAMP weights; its teacher started as their copy
    assert not torch.equal(stage1["encoder.blocks.0.attn.qkv.weight"],
                           stage2["encoder.blocks.0.attn.qkv.weight"])  # fmt: skip
    drift = (stage2["teacher.encoder.norm.weight"] - stage1["encoder.norm.weight"]).abs().max()
    assert drift < 0.05
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert "salient_share" in history[0] and "loss_acceleration" in history[0]


@pytest.mark.parametrize("views", [0, 3])
def test_linear_evaluation_keeps_the_encoder_frozen_and_scores_the_test_split(
    tmp_path: Path, views: int
) -> None:
    """Also with feature views (the head trained on cached features of augmented windows):
    the saved classifier, run on the raw test clips, scores what the run reported."""
    pretrained = run_pretrain(
        load_config(pretrain_recipe(tmp_path, loop={**LOOP, "epochs": 1}), PretrainRecipe),
        tmp_path / "pre",
        CPU,
    )
    linear = ClassifyRecipe.model_validate(
        {
            "kind": "linear",
            "name": "tiny-linear",
            "data": DATA,
            "model": MODEL,
            "pretrained": str(pretrained),
            "eval_every": 1,
            "feature_views": views,
            "loop": {
                **LOOP,
                "epochs": 4,
                "optimizer": "sgd",
                "lr": 0.1,
                "min_lr": 0.0,
                "weight_decay": 0.0,
            },
        }  # fmt: skip
    )
    metrics = run_classify(linear, tmp_path / "linear", CPU)
    classifier, saved_meta = load_classifier(tmp_path / "linear" / "classifier.pt")
    before = weights(pretrained)
    for key, value in classifier.encoder.state_dict().items():
        assert torch.equal(value, before[f"encoder.{key}"]), key
    assert metrics["clips"] == 24  # the (limited) test split, not the training clips
    assert metrics["labelled_clips"] == 24
    saved = json.loads((tmp_path / "linear" / "metrics.json").read_text())
    assert saved["top1"] == metrics["top1"] and saved["pretrained_sha256"]
    assert 0.0 <= saved["top1"] <= saved["top5"] <= 1.0
    assert saved_meta.labels[0] == "right arm swipe to the left"
    assert (tmp_path / "linear" / "confusion.png").stat().st_size > 0
    data = load_data(linear.data)
    again = evaluate_on(classifier, data, linear.data.window(data.layout))
    assert again["top1"] == metrics["top1"] and again["per_class"] == metrics["per_class"]


def test_feature_views_are_different_augmentations_cycled_by_epoch(tmp_path: Path) -> None:
    from training.model.encoder import Encoder

    data = load_data(DataConfig.model_validate(DATA))
    feeder = SkeletonFeeder(data.train, DataConfig.model_validate(DATA).window("utd20"), train=True)
    views = FeatureViews(Encoder(ModelConfig.model_validate(MODEL)), feeder, 2, CPU.device)
    first, _ = views[0]
    views.set_epoch(3)
    second, label = views[0]
    assert first.shape == second.shape == (1, 1, 1, MODEL["width"])
    assert not torch.equal(first, second) and label == data.train[0].label
    views.set_epoch(4)
    assert torch.equal(views[0][0], first)


def test_semi_supervised_finetuning_trains_on_a_seeded_share_of_the_labels(
    tmp_path: Path,
) -> None:
    base = {"kind": "finetune", "name": "tiny-ft", "data": {**DATA, "limit": 40},
            "model": MODEL, "label_fraction": 0.5, "hidden": 16,
            "loop": {**LOOP, "epochs": 1}}  # fmt: skip
    runs = {}
    for seed in (1, 2):
        recipe = ClassifyRecipe.model_validate({**base, "fraction_seed": seed})
        runs[seed] = run_classify(recipe, tmp_path / f"seed{seed}", CPU)
    assert runs[1]["labelled_clips"] == runs[2]["labelled_clips"] < 40
    assert runs[1]["from_scratch"] and runs[1]["clips"] == 40


def test_validation_subjects_train_and_evaluate_without_the_test_split(tmp_path: Path) -> None:
    """A recipe's settings chosen on held-out training subjects: the run never reads a test
    clip, and evaluating its checkpoint later scores the same held-out clips again."""
    data = {**DATA, "validation_subjects": [7]}
    recipe = ClassifyRecipe.model_validate(
        {
            "kind": "finetune",
            "name": "tiny-val",
            "data": data,
            "model": MODEL,
            "hidden": 16,
            "loop": {**LOOP, "epochs": 1},
        }  # fmt: skip
    )
    clips = load_data(recipe.data)
    assert {s.subject for s in clips.train} == {1, 3, 5}
    assert {s.subject for s in clips.test} == {7}
    metrics = run_classify(recipe, tmp_path / "run", CPU)
    assert metrics["clips"] == len(clips.test)
    again = evaluate_checkpoint(tmp_path / "run" / "classifier.pt")
    assert again["clips"] == metrics["clips"] and again["top1"] == metrics["top1"]
    with pytest.raises(DatasetError, match="training split"):
        load_data(recipe.data.model_copy(update={"validation_subjects": (2,)}))


def test_transfer_carries_joint_embeddings_across_kinect_v1_orders(tmp_path: Path) -> None:
    pretrained = run_pretrain(
        load_config(pretrain_recipe(tmp_path, loop={**LOOP, "epochs": 1}), PretrainRecipe),
        tmp_path / "utd",
        CPU,
    )
    source = weights(pretrained)["encoder.embed.pos.joint"]
    moved, _ = load_encoder(pretrained, ModelConfig.model_validate(MODEL), "ucla20")
    utd, ucla = get_layout("utd20"), get_layout("ucla20")
    for name_utd, name_ucla in (("head", "Head"), ("hip_center", "HipCenter"),
                                ("spine", "Spine"), ("right_hand", "HandRight")):  # fmt: skip
        assert torch.equal(moved["embed.pos.joint"][ucla.index(name_ucla)],
                           source[utd.index(name_utd)])  # fmt: skip
    transfer = ClassifyRecipe.model_validate(
        {
            "kind": "finetune",
            "name": "utd-to-ucla",
            "hidden": 16,
            "pretrained": str(pretrained),
            "data": {**DATA, "dataset": "nw-ucla"},
            "model": MODEL,
            "loop": {**LOOP, "epochs": 1},
        }  # fmt: skip
    )
    metrics = run_classify(transfer, tmp_path / "ucla", CPU)
    assert metrics["dataset"]["name"] == "nw-ucla" and metrics["clips"] == 24
    with pytest.raises(ValueError, match="utd20 joints, which do not map onto ntu25"):
        load_encoder(pretrained, ModelConfig.model_validate({**MODEL, "joints": 25}), "ntu25")


def test_extra_data_adds_another_datasets_clips_on_the_main_layout(tmp_path: Path) -> None:
    """NW-UCLA's clips (train and test, labels unused) join UTD-MHAD's pre-training, mapped
    onto UTD-MHAD's joint order; the loop then takes more steps per epoch."""
    source = {"dataset": "nw-ucla", "splits": ["train", "test"], "limit": 8}
    clips = extra_clips([ExtraSource.model_validate(source)], "utd20")
    originals = load_data(ExtraSource.model_validate(source))
    assert len(clips) == 16 and {c.label for c in clips} == {-1}
    assert clips[0].name == f"nw-ucla/{originals.train[0].name}"
    assert clips[8].name == f"nw-ucla/{originals.test[0].name}"
    np.testing.assert_array_equal(
        clips[0].data, convert(originals.train[0].data, "ucla20", "utd20")
    )
    head_utd, head_ucla = get_layout("utd20").index("head"), get_layout("ucla20").index("Head")
    np.testing.assert_array_equal(
        clips[3].data[..., head_utd, :], originals.train[3].data[..., head_ucla, :]
    )

    loop = {**LOOP, "epochs": 1}
    alone = load_config(pretrain_recipe(tmp_path, loop=loop), PretrainRecipe)
    pooled = load_config(
        pretrain_recipe(tmp_path, name="pooled", loop=loop, extra_data=[source]), PretrainRecipe
    )
    steps = [
        TrainingState.read(run_pretrain(recipe, tmp_path / recipe.name, CPU)).step
        for recipe in (alone, pooled)
    ]
    assert steps == [24 // 8, (24 + 16) // 8]


def test_extra_data_whose_joints_do_not_map_is_refused(tmp_path: Path) -> None:
    recipe = load_config(
        pretrain_recipe(tmp_path, extra_data=[{"dataset": "sbu", "limit": 2}]), PretrainRecipe
    )
    with pytest.raises(ValueError, match="extra_data 'sbu' cannot join pre-training: no map"):
        run_pretrain(recipe, tmp_path / "run", CPU)
