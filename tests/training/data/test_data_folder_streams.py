"""The untrimmed bring-your-own format (``folder-streams``) on real recordings: four PKU-MMD
videos written as a folder of ``.npy`` recordings with named-interval label files read back
as the PKU-MMD reader reads them, its split rules, every bad-input case named by file, line and
field, and a stream recipe trained on it end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from masksem.cli_data import data_app
from training.data.errors import (
    CorruptSampleError,
    DatasetError,
    MalformedLineError,
    NonNumericFieldError,
)
from training.data.folder_streams import read_interval_labels
from training.data.pku import class_names, read_pku_stream
from training.data.registry import data_root, load_dataset, load_streams
from training.data.streams import Stream
from training.distributed import DistContext
from training.recipes.classify import (
    ClassifyRecipe,
    load_streams_of,
    run_classify,
    stream_none_clips,
)
from training.recipes.evaluate import load_classifier
from training.recipes.stream_data import StreamTraining, stream_windows

PKU = data_root() / "pku-mmd"
needs_pku = pytest.mark.skipif(not (PKU / "skeleton").is_dir(), reason="no PKU-MMD data")
pytestmark = needs_pku

# video: (subject, split); the PKU-MMD cross-subject split puts 0310 in its test set
VIDEOS = {"0036-L": (1, "train"), "0036-M": (1, "train"), "0206-R": (3, "train"),
          "0310-R": (2, "test")}  # fmt: skip


def pku_stream(name: str) -> Stream:
    return read_pku_stream(
        PKU / "skeleton" / f"{name}.txt.xz", PKU / "label" / f"{name}.txt", cache=True
    )


def write_streams_folder(
    root: Path, *, split: bool = True, seconds: bool = False, fps: float = 30.0
) -> Path:
    """The four videos in the documented format: one ``.npy`` per recording, one label file of
    named intervals each, and ``streams.csv``."""
    names = class_names(PKU)
    (root / "recordings").mkdir(parents=True)
    (root / "labels").mkdir()
    rows = ["path,labels,subject" + (",split" if split else "")]
    for video, (subject, part) in VIDEOS.items():
        stream = pku_stream(video)
        np.save(root / "recordings" / f"{video}.npy", stream.data)
        header = "label,start_s,end_s" if seconds else "label,start,end"
        lines = [header]
        for i in sorted(stream.instances, key=lambda i: i.line or 0):
            bounds = (i.start / fps, i.end / fps) if seconds else (i.start, i.end)
            lines.append(f'"{names[i.label]}",{bounds[0]},{bounds[1]}')
        (root / "labels" / f"{video}.csv").write_text("\n".join(lines) + "\n")
        row = f"recordings/{video}.npy,labels/{video}.csv,{subject}"
        rows.append(row + (f",{part}" if split else ""))
    (root / "streams.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_streams_folder(tmp_path_factory.mktemp("streams") / "mine")


def copy_folder(folder: Path, to: Path) -> Path:
    import shutil

    return Path(shutil.copytree(folder, to / "mine"))


def test_streams_read_back_as_the_pku_reader_reads_the_videos(folder: Path) -> None:
    data = load_streams("folder-streams", folder, layout="ntu25")
    pku_names = class_names(PKU)
    used = {pku_names[i.label] for v in VIDEOS for i in pku_stream(v).instances}
    assert data.classes == sorted(used)
    assert [s.name for s in data.train] == ["0036-L", "0036-M", "0206-R"]
    assert [s.name for s in data.test] == ["0310-R"]
    assert data.benchmark == "manifest split column" and data.skipped == []
    for stream in data.streams:
        expected = pku_stream(stream.name)
        assert np.array_equal(stream.data, expected.data)
        assert stream.subject == VIDEOS[stream.name][0]
        named = np.array(["none", *data.classes])[stream.frame_labels()]
        assert named.tolist() == np.array(["none", *pku_names])[expected.frame_labels()].tolist()
        assert [(i.start, i.end, i.line) for i in stream.instances] == [
            (i.start, i.end, (i.line or 0) + 1)  # the label file's header is line 1
            for i in expected.instances
        ]
    stats = data.stats()
    frames = sum(pku_stream(v).frames for v in VIDEOS)
    background = sum(int((pku_stream(v).frame_labels() == 0).sum()) for v in VIDEOS)
    assert (stats["videos"], stats["frames"], stats["persons"]) == (4, frames, 2)
    assert stats["background_share"] == round(background / frames, 4)
    assert stats["instances"] == sum(len(pku_stream(v).instances) for v in VIDEOS)


def test_load_dataset_gives_the_instances_as_trimmed_clips(folder: Path) -> None:
    streams = load_streams("folder-streams", folder, layout="ntu25")
    clips = load_dataset("folder-streams", folder, layout="ntu25")
    assert clips.classes == streams.classes and clips.fps == 30.0
    assert len(clips.test) == len(streams.test[0].instances)
    by_name = {s.name: s for s in streams.streams}
    for sample in clips.samples:
        video, index = sample.name.rsplit("_", 1)
        interval = sorted(by_name[video].instances, key=lambda i: i.line or 0)[int(index)]
        assert np.array_equal(sample.data, by_name[video].data[:, interval.start : interval.end])
        assert sample.label == interval.label and sample.subject == VIDEOS[video][0]


def test_an_instance_nobody_shows_in_is_skipped_from_the_clips_and_reported(
    folder: Path, tmp_path: Path
) -> None:
    """The tracker lost everyone during one action: the recording still streams (its frames
    are background-like zeros), but that instance gives no trimmed clip."""
    root = copy_folder(folder, tmp_path)
    recording = root / "recordings" / "0310-R.npy"
    data = np.load(recording)
    first = pku_stream("0310-R").instances[0]
    data[:, first.start : first.end] = 0.0
    np.save(recording, data)
    clips = load_dataset("folder-streams", root, layout="ntu25")
    assert len(clips.test) == len(pku_stream("0310-R").instances) - 1
    (skipped,) = clips.skipped
    assert skipped.source == "0310-R_0"
    assert f"all-zero instance (frames {first.start}-{first.end}" in skipped.reason
    assert "label line 2" in skipped.reason
    assert len(load_streams("folder-streams", root, layout="ntu25").test) == 1


def test_seconds_label_files_give_the_same_frames_at_the_folders_frame_rate(
    folder: Path, tmp_path: Path
) -> None:
    """Label times in seconds become frames at the folder's fps (here the fps option of a
    folder declared at 15 fps), and that frame rate reaches the windows and the model card."""
    in_seconds = write_streams_folder(tmp_path / "s", seconds=True, fps=15)
    by_frames = load_streams("folder-streams", folder, layout="ntu25")
    by_seconds = load_streams("folder-streams", in_seconds, layout="ntu25", fps="15")
    assert by_seconds.fps == 15.0
    for a, b in zip(by_frames.streams, by_seconds.streams, strict=True):
        assert np.array_equal(a.frame_labels(), b.frame_labels())
    windows = stream_windows(by_seconds, StreamTraining(window_s=2.0), seed=0)
    assert windows.window_frames == 30 and windows.dataset.fps == 15.0
    assert load_dataset("folder-streams", in_seconds, layout="ntu25", fps=15).fps == 15.0


def test_split_rules_test_subjects_or_everything_trains(tmp_path: Path) -> None:
    root = write_streams_folder(tmp_path / "nosplit", split=False)
    held = load_streams("folder-streams", root, layout="ntu25", test_subjects="1,2")
    assert [s.name for s in held.test] == ["0036-L", "0036-M", "0310-R"]
    assert [s.name for s in held.train] == ["0206-R"]
    assert held.benchmark == "test subjects 1,2"
    everything = load_streams("folder-streams", root, layout="ntu25")
    assert len(everything.train) == 4 and everything.test == []
    assert everything.benchmark == "all recordings train"


BAD_LINES = [
    # (line appended to 0036-M's label file, error type, field, message)
    ("handshaking,1300", MalformedLineError, "label line", "2 fields, expected label,start,end"),
    ("handshaking,12x,1300", NonNumericFieldError, "start", "'12x' is not an integer"),
    ("handshaking,1230,1900", MalformedLineError, "end", "past the video's end (1258 frames)"),
    ("handshaking,1190,1215", MalformedLineError, "start", "overlaps [1126, 1203) of line 8"),
    ("handshaking,1300,1250", MalformedLineError, "end", "not 0 <= start < end"),
    (",1300,1350", MalformedLineError, "label", "empty class name"),
    ("none,1230,1250", MalformedLineError, "label", "'none' names the frames in no interval"),
]


@pytest.mark.parametrize(("line", "error", "field", "message"), BAD_LINES)
def test_a_bad_label_line_names_file_line_and_field_and_the_video_is_skipped(
    folder: Path, tmp_path: Path, line: str, error: type[Exception], field: str, message: str
) -> None:
    root = copy_folder(folder, tmp_path)
    labels = root / "labels" / "0036-M.csv"
    labels.write_text(labels.read_text() + line + "\n")
    number = len(labels.read_text().splitlines())
    frames = int(np.load(root / "recordings" / "0036-M.npy", mmap_mode="r").shape[1])
    with pytest.raises(error) as caught:
        read_interval_labels(labels, frames=frames, fps=30.0)
    assert isinstance(caught.value, CorruptSampleError)
    assert (caught.value.line, caught.value.field) == (number, field)
    assert message in str(caught.value) and str(labels) in str(caught.value)
    data = load_streams("folder-streams", root, layout="ntu25")
    assert "0036-M" not in [s.name for s in data.streams] and len(data.streams) == 3
    (skipped,) = data.skipped
    assert skipped.source == f"{root / 'streams.csv'}, line 3"  # the video's row
    assert f"{labels}, line {number} ({field})" in skipped.reason and message in skipped.reason


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("wave,-0.5,2.0", "start -0.5 s and end 2.0 s are not 0 <= start < end"),
        ("wave,3.0,2.0", "start 3.0 s and end 2.0 s are not 0 <= start < end"),
        ("wave,1.0,1.01", "[1.0 s, 1.01 s) holds no frame at 30 fps"),
    ],
)
def test_second_intervals_are_checked_in_seconds_before_rounding(
    tmp_path: Path, line: str, message: str
) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_bytes(f"\ufefflabel,start_s,end_s\nwave,0.5,0.9\n{line}\n".encode())
    with pytest.raises(MalformedLineError) as caught:
        read_interval_labels(labels, frames=100, fps=30.0)
    assert (caught.value.line, caught.value.field) == (3, "end_s")
    assert message in str(caught.value)
    labels.write_bytes("\ufefflabel,start_s,end_s\nwave,0.5,0.9\n".encode())  # a spreadsheet's
    (interval,) = read_interval_labels(labels, frames=100, fps=30.0)
    assert (interval.name, interval.start, interval.end, interval.line) == ("wave", 15, 27, 2)


def test_a_label_file_without_its_header_is_refused_at_line_1(folder: Path, tmp_path: Path) -> None:
    root = copy_folder(folder, tmp_path)
    labels = root / "labels" / "0036-L.csv"
    labels.write_text("\n".join(labels.read_text().splitlines()[1:]) + "\n")
    with pytest.raises(MalformedLineError) as caught:
        read_interval_labels(labels, frames=5000, fps=30.0)
    assert (caught.value.line, caught.value.field) == (1, "header")
    assert "expected label,start,end (frames) or label,start_s,end_s" in str(caught.value)


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        ("garbage", "not a readable .npy array"),
        ("joints", "24 joints, the layout has 25"),
        ("no labels", "the label file does not exist"),
        ("no recording", "the clip file does not exist"),
    ],
)
def test_a_bad_recording_is_reported_and_skipped(
    folder: Path, tmp_path: Path, damage: str, reason: str
) -> None:
    root = copy_folder(folder, tmp_path)
    recording = root / "recordings" / "0206-R.npy"
    if damage == "garbage":
        recording.write_bytes(b"not an array")
    elif damage == "joints":
        np.save(recording, np.load(recording)[:, :, :24])
    elif damage == "no labels":
        (root / "labels" / "0206-R.csv").unlink()
    else:
        recording.unlink()
    data = load_streams("folder-streams", root, layout="ntu25")
    assert [s.name for s in data.train] == ["0036-L", "0036-M"] and len(data.test) == 1
    (skipped,) = data.skipped
    assert skipped.source == f"{root / 'streams.csv'}, line 4" and reason in skipped.reason
    assert "0206-R" in skipped.reason


@pytest.mark.parametrize(
    ("rows", "line", "field", "message"),
    [
        (["path,labels,subject,camera"], 1, "header", "unknown columns ['camera']"),
        (["path,labels,subject", "recordings/0036-L.npy,labels/0036-L.csv,one"], 2, "subject",
         "'one' is not an integer"),
        (["path,labels,subject", "recordings/0036-L.npy,,1"], 2, "labels", "empty labels"),
        (["path,labels,subject", "recordings/0036-L.npy,labels/0036-L.csv,1",
          "recordings/0036-L.npy,labels/0036-M.csv,2"], 3, "path", "listed already at line 2"),
    ],
)  # fmt: skip
def test_a_bad_manifest_row_refuses_the_folder_naming_its_line(
    folder: Path, tmp_path: Path, rows: list[str], line: int, field: str, message: str
) -> None:
    root = copy_folder(folder, tmp_path)
    (root / "streams.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(CorruptSampleError) as caught:
        load_streams("folder-streams", root, layout="ntu25")
    assert (caught.value.line, caught.value.field) == (line, field)
    assert str(root / "streams.csv") in str(caught.value) and message in str(caught.value)


def test_a_folder_with_no_readable_recording_is_refused_with_the_reasons(
    folder: Path, tmp_path: Path
) -> None:
    with pytest.raises(DatasetError, match="25 joints, the layout has 20"):
        load_streams("folder-streams", folder, layout="utd20")
    root = copy_folder(folder, tmp_path)
    for labels in (root / "labels").iterdir():
        labels.write_text("label,start,end\nwave,0,99999\n")
    with pytest.raises(DatasetError) as caught:
        load_streams("folder-streams", root, layout="ntu25")
    assert "holds no readable recording: all 4 skipped" in str(caught.value)
    assert "past the video's end" in str(caught.value)
    result = CliRunner().invoke(
        data_app, ["stats", "folder-streams", "--root", str(root), "--option", "layout=ntu25"]
    )
    assert result.exit_code == 2 and "holds no readable recording" in result.output


def test_data_stats_reports_videos_frames_background_and_instances(folder: Path) -> None:
    result = CliRunner().invoke(
        data_app,
        ["stats", "folder-streams", "--root", str(folder), "--option", "layout=ntu25", "--json"],
    )
    assert result.exit_code == 0, result.output
    stats = json.loads(result.output)
    expected = load_streams("folder-streams", folder, layout="ntu25").stats()
    assert stats == expected
    assert (stats["videos"], stats["train_videos"], stats["test_videos"]) == (4, 3, 1)
    assert 0.3 < stats["background_share"] < 0.8 and stats["instances_per_class"]["handshaking"]


def tiny_stream_recipe(folder: Path, **fields: object) -> ClassifyRecipe:
    """A stream recipe of two interactions plus none on the folder, small enough for a test."""
    return ClassifyRecipe.model_validate(
        {
            "kind": "finetune",
            "name": "tiny-folder-streams",
            "data": {
                "dataset": "folder-streams",
                "root": str(folder),
                "options": {"layout": "ntu25"},
                "frames": 16,
                "persons": 2,
                "min_crop_frames": 12,
                "normalise_scale": True,
            },
            "model": {
                "persons": 2,
                "frames": 16,
                "joints": 25,
                "width": 32,
                "depth": 1,
                "heads": 2,
                "decoder_width": 32,
                "decoder_depth": 1,
            },
            "stream": {
                "window_s": 1.0,
                "classes": ["handshaking", "hugging other person"],
                "windows_per_epoch": 64,
                "eval_stride": 60,
                "calibration_share": 0.34,
            },
            "hidden": 16,
            "loop": {
                "epochs": 1,
                "warmup_epochs": 0,
                "batch_size": 16,
                "lr": 1e-3,
                "lr_batch": 16,
                "min_lr": 1e-4,
                "checkpoint_every": 1,
                "threads": 1,
            },
            **fields,
        }  # fmt: skip
    )


# PKU-MMD training-video background (its layout is the folder's), and still poses made from it
BACKGROUND = {"dataset": "pku-mmd", "kind": "background", "clip_s": 1.0, "count": 6, "still": 2,
              "persons": 2}  # fmt: skip


def test_a_stream_recipe_trains_on_the_folder_end_to_end(folder: Path, tmp_path: Path) -> None:
    # none_data adds further none clips to the stream's own none windows
    recipe = tiny_stream_recipe(folder, none_data=[BACKGROUND])
    cpu = DistContext(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    metrics = run_classify(recipe, tmp_path / "run", cpu)
    frames = pku_stream("0310-R").frames
    assert metrics["clips"] == len(range(7, frames, 60))  # windows of the test recording
    assert 0.0 <= metrics["top1"] <= 1.0
    _, meta = load_classifier(tmp_path / "run" / "classifier.pt")
    assert meta.labels == ["handshaking", "hugging other person", "none"]
    assert meta.none_label == "none" and meta.stream_window_s == 1.0
    assert meta.decision is not None
    assert meta.decision["calibration_videos"][0] in {"0036-L", "0036-M", "0206-R"}
    assert meta.source.dataset == "folder-streams" and meta.source.root == str(folder.resolve())
    assert meta.decision["target_false_alarm_rate"] == 0.05
    # the start lag is measured on every instance of the two classes in the held-out videos
    wanted = {class_names(PKU).index(c) for c in ("handshaking", "hugging other person")}
    held = [pku_stream(v) for v in meta.decision["calibration_videos"]]
    count = sum(i.label in wanted for video in held for i in video.instances)
    assert count and meta.decision["start_lag_instances"] == count
    assert meta.decision["start_lag_s"] >= 0.0
    assert 0.0 <= meta.decision["start_lag_missed_share"] <= 1.0
    # a new false-alarm target recalibrates the finished run when it is run again: no training
    per_minute = recipe.model_copy(
        update={"stream": recipe.stream.model_copy(update={"false_alarms_per_min": 0.5})}
    )
    again = run_classify(per_minute, tmp_path / "run", cpu)
    assert again["epochs_run"] == 1 and again["top1"] == metrics["top1"]
    _, recalibrated = load_classifier(tmp_path / "run" / "classifier.pt")
    rule = recalibrated.decision
    assert rule is not None and rule["target_false_alarms_per_min"] == 0.5
    assert rule["background_false_alarms_per_min"] <= 0.5
    held_out = pku_stream(rule["calibration_videos"][0]).frames
    assert rule["calibration_windows"] <= len(range(7, held_out, 4))  # every 4 frames


def test_none_data_of_a_stream_recipe_are_none_clips_on_its_layout(folder: Path) -> None:
    recipe = tiny_stream_recipe(folder, none_data=[BACKGROUND])
    assert recipe.stream is not None
    windows = stream_windows(load_streams_of(recipe.data), recipe.stream, seed=0)
    clips = stream_none_clips(windows.dataset, recipe.model_copy(update={"fps": 30.0}))
    assert len(clips) == 6 + 2
    none = windows.dataset.classes.index("none")
    assert {c.label for c in clips} == {none}
    assert {c.data.shape[0] for c in clips} == {2} and {c.data.shape[2] for c in clips} == {25}
    assert {c.data.shape[1] for c in clips} == {30}  # 1 s at 30 fps
    # only cross-subject training videos of PKU-MMD give background (0310 is a test video)
    videos = {c.name.split("/")[1].split("@")[0] for c in clips}
    test = {s.name for s in load_streams("pku-mmd", None, "xsub").test}
    assert videos and not videos & test
    stills = [c for c in clips if "#still" in c.name]
    assert len(stills) == 2 and all((c.data == c.data[:, :1]).all() for c in stills)
