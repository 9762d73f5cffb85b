"""Untrimmed streams: the PKU-MMD stream reader on the real files, causal window labels, the
windows cut for training, the decision rule's calibration and the prepared-data cache."""

from __future__ import annotations

import lzma
import shutil
from pathlib import Path

import numpy as np
import pytest

from training.config_io import load_config
from training.data.cache import CACHE_ENV
from training.data.errors import MalformedLineError, NonNumericFieldError
from training.data.pku import load_pku_streams, read_pku_labels, read_pku_skeleton, read_pku_stream
from training.data.registry import data_root, load_streams
from training.data.streams import (
    Interval,
    Stream,
    background_starts,
    causal_labels,
    class_lookup,
    sample_window_ends,
    window_bounds,
)
from training.recipes.classify import ClassifyRecipe
from training.recipes.stream_data import (
    StreamTraining,
    StreamWindowFeeder,
    calibrate_per_minute,
    calibrate_threshold,
    false_alarm_runs,
    split_calibration,
    stream_lags,
    stream_windows,
)

PKU = data_root() / "pku-mmd"
needs_pku = pytest.mark.skipif(not (PKU / "skeleton").is_dir(), reason="no PKU-MMD data")


@pytest.fixture
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv(CACHE_ENV, str(cache))
    return cache


@needs_pku
def test_real_video_labels_line_up_with_frames_and_xz_equals_text(tmp_path: Path) -> None:
    xz = PKU / "skeleton" / "0005-L.txt.xz"
    text = tmp_path / "0005-L.txt"
    text.write_bytes(lzma.decompress(xz.read_bytes()))
    assert np.array_equal(read_pku_skeleton(xz), read_pku_skeleton(text))
    stream = read_pku_stream(xz, PKU / "label" / "0005-L.txt")
    lines = [line.split(",") for line in (PKU / "label" / "0005-L.txt").read_text().split()]
    assert stream.data.shape == (2, len(text.read_text().splitlines()), 25, 3)
    labels = stream.frame_labels()
    for label, start, end, _ in lines:
        assert (labels[int(start) : int(end)] == int(label)).all()  # 1-based class = frame label
    inside = np.zeros(stream.frames, bool)
    for _, start, end, _ in lines:
        inside[int(start) : int(end)] = True
    assert (labels[~inside] == 0).all() and len(stream.instances) == len(lines)
    # frame t of the stream is line t + 1 of the file: person 1, joint 1 x is its first value
    first_line = text.read_text().splitlines()[100].split()
    assert stream.data[0, 100, 0, 0] == np.float32(first_line[0])
    assert stream.data[1, 100, 0, 0] == np.float32(first_line[75])


@needs_pku
def test_real_streams_split_and_stats() -> None:
    xsub = load_streams("pku-mmd")
    stats = xsub.stats()
    assert (stats["videos"], stats["train_videos"], stats["test_videos"]) == (218, 193, 25)
    assert stats["frames"] == 401_946 and stats["instances"] == 1772
    assert 0.62 < stats["background_share"] < 0.65
    assert stats["instances_per_class"]["handshaking"] == 211
    xview = load_streams("pku-mmd", benchmark="xview")
    assert {s.name[-1] for s in xview.test} == {"M"}
    assert len(xview.train) == 146


@needs_pku
def test_second_read_comes_from_the_cache(private_cache: Path) -> None:
    root = PKU
    first = read_pku_skeleton(root / "skeleton" / "0005-L.txt.xz", cache=True)
    entries = list(private_cache.rglob("*.npy"))
    assert len(entries) == 1
    again = read_pku_skeleton(root / "skeleton" / "0005-L.txt.xz", cache=True)
    assert np.array_equal(first, again)
    entries[0].write_bytes(b"damaged")  # a damaged entry is parsed again, not trusted
    assert np.array_equal(read_pku_skeleton(root / "skeleton" / "0005-L.txt.xz", cache=True), first)


def copy_videos(tmp_path: Path, names: list[str]) -> Path:
    root = tmp_path / "pku"
    (root / "skeleton").mkdir(parents=True)
    (root / "label").mkdir()
    for name in names:
        shutil.copy(PKU / "skeleton" / f"{name}.txt.xz", root / "skeleton")
        shutil.copy(PKU / "label" / f"{name}.txt", root / "label")
    (root / "cross-subject.txt").write_text(f"Training videos: \n{names[0]}\n")
    return root


@needs_pku
@pytest.mark.parametrize(
    ("line", "field", "message"),
    [
        ("14,1400,1600,1", "end", "past the video's end (1507 frames)"),
        ("14,200,250,1", "start", "overlaps [217, 295) of line 1"),
        ("14,300,250,1", "end", "not 0 <= start < end"),
        ("14,a,250,1", "start", "not an integer"),
    ],
)
def test_bad_label_line_names_file_and_line_and_the_video_is_skipped(
    tmp_path: Path, line: str, field: str, message: str
) -> None:
    root = copy_videos(tmp_path, ["0005-L", "0005-M"])
    labels = root / "label" / "0005-M.txt"
    labels.write_text(labels.read_text() + line + "\n")
    count = len(labels.read_text().split())
    with pytest.raises((MalformedLineError, NonNumericFieldError)) as caught:
        read_pku_labels(labels, 1507)
    assert (caught.value.line, caught.value.field) == (count, field)
    assert message in str(caught.value) and str(labels) in str(caught.value)
    data = load_pku_streams(root, 1, "xsub")
    assert [s.name for s in data.train] == ["0005-L"] and data.test == []
    (skipped,) = data.skipped
    assert skipped.source == str(labels) and message in skipped.reason


@needs_pku
def test_corrupt_skeleton_line_skips_the_video(tmp_path: Path) -> None:
    root = copy_videos(tmp_path, ["0005-L", "0005-M"])
    path = root / "skeleton" / "0005-M.txt.xz"
    lines = lzma.decompress(path.read_bytes()).decode().splitlines()
    lines[41] = lines[41].replace(lines[41].split()[7], "nan?", 1)
    path.write_bytes(lzma.compress(("\n".join(lines) + "\n").encode()))
    data = load_pku_streams(root, 1, "xsub")
    assert data.test == []
    assert data.skipped[0].reason.startswith("line 42 (person 1 joint 3 y)")


def test_causal_labels_take_the_newest_frames() -> None:
    frames = np.array([0, 0, 3, 3, 3, 0, 0, 5, 5, 0])
    assert causal_labels(frames, 1).tolist() == frames.tolist()
    # majority of the last 3 frames; a tie goes to the newest frame's label
    assert causal_labels(frames, 3).tolist() == [0, 0, 0, 3, 3, 3, 0, 0, 5, 5]
    assert causal_labels(frames, 4).tolist() == [0, 0, 0, 3, 3, 3, 0, 0, 5, 0]
    assert window_bounds(2, 5) == (0, 3) and window_bounds(9, 5) == (5, 10)


def toy_stream(name: str, frames: int, instances: tuple[Interval, ...]) -> Stream:
    data = np.ones((2, frames, 25, 3), np.float32)
    return Stream(name, data, instances)


def test_window_ends_stay_inside_streams_and_follow_the_background_share() -> None:
    streams = [
        toy_stream("a", 100, (Interval(2, 40, 70),)),
        toy_stream("b", 30, (Interval(1, 0, 10),)),
    ]
    ends = sample_window_ends(
        streams, 4000, np.random.default_rng(0), min_frames=8, length=20, background_share=0.25
    )
    for stream_index, end in ends:
        assert 7 <= end < streams[stream_index].frames
    labels = [causal_labels(s.frame_labels(), 1) for s in streams]
    background = np.mean([labels[s][t] == 0 for s, t in ends])
    assert abs(background - 0.25) < 0.03


def test_class_lookup_makes_other_classes_none() -> None:
    labels, table = class_lookup(["a", "b", "c"], ["c", "a"])
    assert labels == ["c", "a", "none"]
    assert table.tolist() == [2, 1, 2, 0]  # frame label 0 (background) and class b -> none


@needs_pku
def test_training_windows_come_from_training_videos_only_and_calibration_is_held_out() -> None:
    data = load_streams("pku-mmd")
    cfg = StreamTraining(windows_per_epoch=64, classes=["handshaking", "hugging other person"])
    windows = stream_windows(data, cfg, seed=3)
    test_names = {s.name for s in data.test}
    train_names = {s.name for s in windows.train_streams}
    held = {s.name for s in windows.calibration_streams}
    assert not train_names & test_names and not held & test_names and not held & train_names
    assert train_names | held == {s.name for s in data.train}
    assert len(held) == round(0.1 * len(data.train))
    assert {s.name.split("@")[0] for s in windows.dataset.test} <= test_names
    assert windows.dataset.classes == ["handshaking", "hugging other person", "none"]
    from skeleton.clip import WindowSpec

    feeder = StreamWindowFeeder(windows, cfg, WindowSpec(frames=24, min_crop_frames=20), seed=1)
    window, label = feeder.window(5)
    assert window.shape == (2, 24, 25, 3) and 0 <= label <= 2
    feeder.set_epoch(1)
    again, _ = feeder.window(5)
    feeder.set_epoch(0)
    assert np.array_equal(feeder.window(5)[0], window)  # a function of (seed, epoch, index)
    assert not np.array_equal(again, window)
    train, held_out = split_calibration(data.train, 0.1, seed=3)
    assert [s.name for s in held_out] == [s.name for s in windows.calibration_streams]


def test_calibration_keeps_false_alarms_under_the_target() -> None:
    rng = np.random.default_rng(0)
    none = 2
    labels = np.array([none] * 200 + [0] * 50 + [1] * 50)
    probs = rng.dirichlet(np.ones(3), size=300)
    probs[200:250, 0] += 2.0  # action windows are confident
    probs[250:, 1] += 2.0
    probs /= probs.sum(axis=1, keepdims=True)
    rule = calibrate_threshold(probs, labels, none, 0.05)
    top, confidence = probs.argmax(axis=1), probs.max(axis=1)
    shown = (top != none) & (confidence >= rule["threshold"])
    assert shown[:200].mean() <= 0.05 == rule["target_false_alarm_rate"]
    lower = (top != none) & (confidence >= rule["threshold"] - 0.01)
    assert lower[:200].mean() > 0.05  # the lowest threshold that meets the target
    assert rule["action_window_recall"] == pytest.approx(shown[200:].mean())


def test_false_alarms_are_runs_of_one_action_over_no_window_of_it() -> None:
    none = 2
    labels = np.array([2, 2, 2, 2, 0, 0, 2, 2, 2, 2])
    shown = np.array([1, 1, 2, 1, 0, 0, 0, 0, 0, 1])
    video = np.array([0, 0, 0, 0, 0, 0, 0, 0, 1, 1])
    # runs: [1, 1] alarm; [1] alarm; [0, 0, 0, 0] overlaps its action; then, in the next
    # video, [0] alarm and [1] alarm
    assert false_alarm_runs(shown, labels, video, none) == 4
    # in one video the last [0] joins the run over the action's windows
    assert false_alarm_runs(shown, labels, np.zeros(10, dtype=int), none) == 3


def test_per_minute_calibration_takes_the_lowest_threshold_under_the_target() -> None:
    """Hand-worked: one minute of background windows (60 at 1 s) with four flickers of action
    1, three at probability 0.6 and one at 0.9, then 20 windows of action 0 at 0.95."""
    none, probs = 2, np.tile([0.05, 0.05, 0.9], (80, 1))
    labels = np.array([none] * 60 + [0] * 20)
    for start, p in ((5, 0.6), (20, 0.6), (35, 0.6), (50, 0.9)):
        probs[start : start + 2] = [0.0, p, 1.0 - p]
    probs[60:] = [0.95, 0.0, 0.05]
    video = np.zeros(80, dtype=int)
    rule = calibrate_per_minute(probs, labels, video, none, 1.0, window_s=1.0)
    assert rule["threshold"] == 0.61 and rule["background_false_alarms_per_min"] == 1.0
    assert rule["action_window_recall"] == 1.0 and rule["calibration_background_minutes"] == 1.0
    assert calibrate_per_minute(probs, labels, video, none, 4.0, 1.0)["threshold"] == 0.0
    strict = calibrate_per_minute(probs, labels, video, none, 0.5, 1.0)
    assert strict["threshold"] == 0.91 and strict["background_false_alarms_per_min"] == 0.0
    # at 2 s a window the same windows hold 2 minutes of background: 4 alarms are 2 a minute
    assert calibrate_per_minute(probs, labels, video, none, 2.0, 2.0)["threshold"] == 0.0
    assert calibrate_per_minute(probs, labels, video, none, 1.5, 2.0)["threshold"] == 0.61


def test_the_lags_are_the_median_delays_of_the_first_windows_showing_and_not_showing() -> None:
    """Hand-worked, at 30 fps: model classes 0 and 1, none 2; frame label 3 (another dataset
    class) is none. Windows end every 2 frames. Instance A (class 0, frames 10-19) is first
    shown by the window ending at 15 (a window ending at 21, after it, shows class 0 too);
    B (class 1, 22-29) only at 0.5, under the 0.6 threshold: missed; C (class 0, 32-39) at 33.
    The start lags are 5 and 1 frames: median 3 frames, 0.1 s; one of three instances missed.
    A stops being shown at the window ending at 23, 3 frames after its last (19) + 1; C is
    not shown by windows 37 and 39, but no window ends after it: no end lag."""
    none, lookup = 2, np.array([2, 0, 1, 2])
    instances = (Interval(2, 0, 5), Interval(0, 10, 20), Interval(1, 22, 30), Interval(0, 32, 40))
    stream = Stream("v", np.ones((1, 40, 25, 3), np.float32), instances)
    ends = list(range(1, 40, 2))
    probs = np.tile([0.1, 0.1, 0.8], (len(ends), 1))
    for end in (15, 17, 19, 21, 33, 35):
        probs[ends.index(end)] = [0.9, 0.05, 0.05]
    for end in (23, 25, 27):
        probs[ends.index(end)] = [0.2, 0.5, 0.3]
    windows = [("v", e) for e in ends]
    assert stream_lags(probs, 0.6, none, windows, [stream], lookup, 30.0) == {
        "start_lag_s": 0.1, "start_lag_instances": 3, "start_lag_missed_share": 1 / 3,
        "end_lag_s": 0.1, "end_lag_instances": 1,
    }  # fmt: skip
    # at a threshold of 0.5, B is shown from its first window on (frame 23: 1 frame late) and
    # stops being shown by the window ending at 29, inside it: -1 frame; median of 3 and -1
    assert stream_lags(probs, 0.5, none, windows, [stream], lookup, 30.0) == {
        "start_lag_s": round(1 / 30, 3), "start_lag_instances": 3, "start_lag_missed_share": 0.0,
        "end_lag_s": round(1 / 30, 3), "end_lag_instances": 2,
    }  # fmt: skip
    # an action that always stops being shown before it ends moves no end earlier
    probs[ends.index(21)] = [0.1, 0.1, 0.8]
    probs[ends.index(19)] = [0.1, 0.1, 0.8]
    early = stream_lags(probs, 0.6, none, windows, [stream], lookup, 30.0)
    assert early["end_lag_s"] == 0.0 and early["end_lag_instances"] == 1


# the eight interactions of the shipped interaction model's recipe
INTERACTIONS = list(load_config("pku_interactions", ClassifyRecipe).stream.classes)


@needs_pku
def test_the_classes_option_keeps_the_eight_interactions_relabelled_in_its_order() -> None:
    from training.data.errors import DatasetError
    from training.data.registry import load_dataset

    every = load_dataset("pku-mmd")
    data = load_dataset("pku-mmd", classes=INTERACTIONS)
    assert data.classes == INTERACTIONS
    assert (len(data.train), len(data.test)) == (1510, 195)  # the data README's counts
    original = {s.name: every.classes[s.label] for s in every.samples}
    assert all(original[s.name] == INTERACTIONS[s.label] for s in data.samples)
    others = [s for s in every.samples if every.classes[s.label] not in INTERACTIONS]
    assert len(data.samples) + len(others) == len(every.samples) and others
    with pytest.raises(DatasetError, match=r"unknown: \['flying'\]"):
        load_dataset("pku-mmd", classes=["flying"])
    with pytest.raises(DatasetError, match="stream.classes"):
        load_streams("pku-mmd", classes=INTERACTIONS)


def test_background_pieces_are_cut_greedily_from_every_run_outside_instances() -> None:
    """Hand-worked: 20 frames, an instance over frames 5-7, the person absent at frame 15. Free
    runs are 0-4, 8-14 and 16-19; pieces of 3 frames start at 0, 8 and 11 (the run's first
    frame, then every 3), and 16."""
    data = np.ones((1, 20, 25, 3), dtype=np.float32)
    data[0, 15] = 0.0
    stream = Stream("hand", data, (Interval(0, 5, 8),))
    assert background_starts(stream, 3) == [0, 8, 11, 16]
    assert background_starts(stream, 5) == [0, 8]
    assert background_starts(stream, 8) == []
