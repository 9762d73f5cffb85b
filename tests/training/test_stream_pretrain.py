"""Pre-training on untrimmed recordings: windows cut at random frames of the training videos
(labels unused), never across a video's end, pooled with trimmed clips, on real PKU-MMD."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from skeleton.clip import WindowSpec
from training.checkpoints import TrainingState
from training.config_io import load_config
from training.data.registry import data_root, load_streams
from training.data.streams import Interval, Stream, usable_ends
from training.distributed import DistContext
from training.model.config import ModelConfig
from training.recipes.classify import load_encoder
from training.recipes.common import ExtraSource
from training.recipes.pretrain import PretrainRecipe, run_pretrain
from training.recipes.pretrain_data import pretrain_dataset, recordings_as_dataset
from training.recipes.stream_data import RandomStreamWindows, StreamPretraining

CPU = DistContext(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
PKU = data_root() / "pku-mmd"
needs_pku = pytest.mark.skipif(not (PKU / "skeleton").is_dir(), reason="no PKU-MMD data")
SPEC = WindowSpec(frames=16, persons=2, min_crop_frames=8)


def test_windows_of_short_and_long_streams_stay_inside_their_own_video() -> None:
    """Videos shorter than a window give windows that start at their first frame; no window
    reaches past a video's last frame or into the next video; absent stretches are skipped."""
    data = np.ones((2, 200, 25, 3), np.float32)
    data[0, 50:120] = 0.0  # the first person leaves for 70 frames
    streams = [
        Stream("short", np.ones((2, 30, 25, 3), np.float32), ()),
        Stream("long", data, (Interval(0, 10, 20),)),
    ]
    feeder = RandomStreamWindows(streams, 60, SPEC, count=500, min_present=30, seed=4)
    seen = set()
    for epoch in range(3):
        feeder.set_epoch(epoch)
        for index in range(len(feeder)):
            which, start, stop = feeder.bounds(index)
            assert 0 <= start < stop <= streams[which].frames and stop - start <= 60
            present = (streams[which].data[0, start:stop] != 0).any(axis=(1, 2)).sum()
            assert present >= 30
            seen.add((which, stop - 1))
    assert {s for s, _ in seen} == {0, 1}
    ends = [t for s, t in seen if s == 1]
    # a window shows 30 frames of the first person up to the end 79 and from the end 149 on
    assert max(ends) == 199 and not [t for t in ends if 80 <= t < 149]
    assert 79 in ends and 149 in ends
    window, label = feeder[0]
    assert window.shape == (2, 16, 25, 3) and label == -1


@needs_pku
def test_pku_windows_cover_every_frame_of_the_training_videos_and_no_test_video() -> None:
    recordings = load_streams("pku-mmd", benchmark="xsub")
    cfg = StreamPretraining(window_s=3.0, windows_per_epoch=4096)
    data = recordings_as_dataset(recordings)
    dataset = pretrain_dataset(data, (recordings, cfg), [], SPEC, seed=0)
    (feeder,) = dataset.datasets
    assert isinstance(feeder, RandomStreamWindows)
    length, least = cfg.window_frames(30.0), cfg.min_present(30.0)
    assert (length, least) == (90, 45) and len(dataset) == 4096

    train, test = {s.name for s in recordings.train}, {s.name for s in recordings.test}
    assert len(train) == 193 and len(test) == 25 and not train & test
    assert [s.name for s in feeder.streams] == [s.name for s in recordings.train]
    # the pool of ends is every frame of every training video whose window shows the first
    # person in half its frames: nothing else, nothing left out
    for index, stream in enumerate(feeder.streams):
        pooled = feeder.ends.pool[feeder.ends.pool[:, 0] == index, 1]
        usable = np.flatnonzero(usable_ends(stream, length, least))
        np.testing.assert_array_equal(pooled, usable[usable >= least - 1])
    assert feeder.ends.pool.shape[0] > 0.9 * sum(s.frames for s in recordings.train)

    first = [feeder.bounds(i) for i in range(len(feeder))]
    dataset.set_epoch(1)
    second = [feeder.bounds(i) for i in range(len(feeder))]
    assert len(set(first) & set(second)) < 0.05 * len(first)  # drawn afresh each epoch
    for which, start, stop in first + second:
        assert start >= 0 and stop <= feeder.streams[which].frames and stop - start <= length
    window, label = dataset[7]
    assert window.shape == (2, 16, 25, 3) and label == -1


@needs_pku
def test_pku_streams_recipe_runs_a_tiny_epoch_and_its_encoder_fine_tunes_on_utd20(
    tmp_path: Path,
) -> None:
    recipe = load_config(
        "pku_streams_masksem",
        PretrainRecipe,
        ["init={}", "streams.windows_per_epoch=16", "loop.epochs=1", "loop.batch_size=8",
         "loop.warmup_epochs=0", "loop.threads=1"],
    )  # fmt: skip
    assert recipe.masking == "semantic" and recipe.model.persons == 2
    checkpoint = run_pretrain(recipe, tmp_path / "run", CPU)
    state = TrainingState.read(checkpoint)
    assert state.step == 2 and state.config["layout"] == "ntu25"
    (row,) = state.history
    assert np.isfinite(row["loss"]) and 0.0 < row["salient_share"] <= 1.0
    assert 0.0 < row["salient_segments"] <= 1.0  # logged to metrics.csv and TensorBoard
    assert "salient_segments" in (tmp_path / "run" / "metrics.csv").read_text()
    utd = ModelConfig.model_validate(
        {**recipe.model.model_dump(), "persons": 1, "joints": 20, "drop_path": 0.1}
    )
    weights, _ = load_encoder(checkpoint, utd, "utd20")
    assert weights["embed.pos.joint"].shape == (20, utd.width)


@needs_pku
def test_extra_stream_windows_are_mapped_onto_the_main_layout_beside_its_clips() -> None:
    """UTD-MHAD's clips plus windows of PKU-MMD's training videos (ntu25 -> utd20, first
    person), as the Kinect v1 transfer recipe pools them."""
    recipe = load_config("utd_pku_streams_mamp", PretrainRecipe)
    source = recipe.extra_data[0].model_copy(
        update={"limit": 4, "streams": StreamPretraining(windows_per_epoch=64)}
    )
    from training.recipes.common import load_data

    utd = load_data(recipe.data.model_copy(update={"limit": 10}))
    dataset = pretrain_dataset(utd, None, [source], recipe.data.window(utd.layout), seed=0)
    clips, windows = dataset.datasets
    assert len(clips) == 10 and len(windows) == 64 and len(dataset) == 74
    assert isinstance(windows, RandomStreamWindows)
    original = load_streams("pku-mmd", benchmark="xsub").train[:4]
    assert [s.name for s in windows.streams] == [s.name for s in original]
    assert windows.streams[0].data.shape[2] == 20  # utd20 joints
    head = 3  # ntu25 Head -> utd20 head (index 0)
    np.testing.assert_array_equal(
        windows.streams[0].data[..., 0, :], original[0].data[..., head, :]
    )
    window, label = dataset[10]
    assert window.shape == (1, 64, 20, 3) and label == -1


def test_stream_sources_take_training_videos_only() -> None:
    with pytest.raises(ValueError, match="training recordings only"):
        ExtraSource.model_validate(
            {"dataset": "pku-mmd", "splits": ["train", "test"], "streams": {}}
        )


@needs_pku
def test_a_folder_of_own_recordings_pre_trains_on_its_training_recordings_only(
    tmp_path: Path,
) -> None:
    """The bring-your-own untrimmed format: three training recordings and one test recording
    (real PKU-MMD videos written as .npy files); windows come from the three only."""
    from tests.training.data.test_data_folder_streams import VIDEOS, write_streams_folder

    root = write_streams_folder(tmp_path / "mine")
    recipe = PretrainRecipe.model_validate({
        "name": "own-streams", "masking": "motion",
        "data": {"dataset": "folder-streams", "root": str(root), "options": {"layout": "ntu25"},
                 "frames": 16, "min_crop_frames": 8},
        "streams": {"window_s": 1.0, "windows_per_epoch": 24},
        "model": {"frames": 16, "width": 32, "depth": 1, "heads": 2, "decoder_width": 32,
                  "decoder_depth": 1},
        "loop": {"epochs": 1, "warmup_epochs": 0, "batch_size": 8, "threads": 1},
    })  # fmt: skip
    recordings = load_streams("folder-streams", root, layout="ntu25")
    train = {n for n, (_, split) in VIDEOS.items() if split == "train"}
    assert {s.name for s in recordings.train} == train
    dataset = pretrain_dataset(
        recordings_as_dataset(recordings), (recordings, recipe.streams), [],
        recipe.data.window("ntu25"), seed=0,
    )  # fmt: skip
    (feeder,) = dataset.datasets
    assert isinstance(feeder, RandomStreamWindows)
    assert {feeder.streams[which].name for which, _, _ in map(feeder.bounds, range(24))} <= train
    state = TrainingState.read(run_pretrain(recipe, tmp_path / "run", CPU))
    assert state.step == 3 and np.isfinite(state.history[0]["loss"])


def test_streams_of_a_dataset_of_trimmed_clips_are_refused_by_name(tmp_path: Path) -> None:
    from training.data.errors import DatasetError

    recipe = PretrainRecipe.model_validate({
        "name": "no-streams", "data": {"dataset": "utd-mhad", "frames": 16, "persons": 1},
        "streams": {}, "model": {"frames": 16, "persons": 1, "width": 32, "depth": 1,
                                 "heads": 2, "decoder_width": 32, "decoder_depth": 1},
    })  # fmt: skip
    with pytest.raises(DatasetError, match="utd-mhad holds trimmed clips only"):
        run_pretrain(recipe, tmp_path / "run", CPU)


@pytest.mark.parametrize(
    "name",
    ["pku_streams_mamp", "pku_streams_masksem", "utd_pku_streams_mamp", "utd_pku_streams_masksem"],
)
def test_the_stream_recipes_load_and_share_the_small_utd_architecture(name: str) -> None:
    recipe = load_config(name, PretrainRecipe)
    utd = load_config("utd_mamp", PretrainRecipe)
    same = {"joints", "persons"}  # carried across layouts by classify.load_encoder
    assert recipe.model.model_dump(exclude=same) == utd.model.model_dump(exclude=same)
    sources = [recipe.streams, *(s.streams for s in recipe.extra_data)]
    assert any(s is not None for s in sources)
