"""PKU-MMD: skeleton, label and split files written here in the published formats."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from training.data.errors import (
    EmptySequenceError,
    MalformedLineError,
    NonNumericFieldError,
    WrongJointCountError,
)
from training.data.pku import load_pku_mmd, read_pku_labels, read_pku_skeleton
from training.data.registry import load_dataset


def video(rng: np.random.Generator, frames: int, *, second_from: int | None) -> np.ndarray:
    """(frames, 150) with 3 decimals; person 2 present only from frame ``second_from`` on."""
    values = np.round(rng.uniform(-1.0, 3.0, (frames, 150)), 3)
    if second_from is None:
        values[:, 75:] = 0.0
    else:
        values[:second_from, 75:] = 0.0
    return values


def write_video(root: Path, name: str, values: np.ndarray, labels: list[str]) -> None:
    (root / "skeleton").mkdir(parents=True, exist_ok=True)
    (root / "label").mkdir(parents=True, exist_ok=True)
    lines = [" ".join(f"{v:.3f}" for v in row) for row in values]
    (root / "skeleton" / f"{name}.txt").write_text("\n".join(lines) + "\n")
    (root / "label" / f"{name}.txt").write_text("\n".join(labels) + "\n")


def clip(values: np.ndarray, start: int, end: int) -> np.ndarray:
    """The public pipeline by hand: frames [start, end), zero-padded or cut to 300 frames,
    150 = 2 persons x 25 joints x xyz, as (persons, frames, joints, xyz)."""
    out = np.zeros((300, 150), np.float32)
    part = values[start:end][:300].astype(np.float32)
    out[: len(part)] = part
    return out.reshape(300, 2, 25, 3).transpose(1, 0, 2, 3)


@pytest.fixture
def phase1(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    root = tmp_path / "pku_v1"
    first = video(rng, 480, second_from=None)
    first[100:140] = 0.0  # nobody tracked: the instance on these frames is all zeros
    second = video(rng, 60, second_from=30)
    write_video(root, "0002-L", first, ["3,10,50,1", "41,100,140,2", "51,150,470,1"])
    write_video(root, "0002-M", second, ["7,0,60,1"])
    write_video(root, "0003-R", second * 2, ["12,5,25,1"])
    (root / "cross-subject.txt").write_text(
        "Training videos: \n0002-L, 0003-R\nValidataion videos: \n0002-M\n"
    )
    (root / "cross-view.txt").write_text("Training videos: \n0002-M, 0003-R\n")
    return root, {"0002-L": first, "0002-M": second, "0003-R": second * 2}


def test_instances_are_cut_by_the_label_files_and_padded(
    phase1: tuple[Path, dict[str, np.ndarray]],
) -> None:
    root, videos = phase1
    dataset = load_pku_mmd(root, phase=1, benchmark="xsub")
    assert [s.name for s in dataset.train] == ["0002-L_0", "0002-L_2", "0003-R_0"]
    assert [s.name for s in dataset.test] == ["0002-M_0"]
    by_name = {s.name: s for s in dataset.samples}
    expected = {
        "0002-L_0": (2, clip(videos["0002-L"], 10, 50)),
        "0002-L_2": (50, clip(videos["0002-L"], 150, 470)),  # 320 frames, cut to 300
        "0003-R_0": (11, clip(videos["0003-R"], 5, 25)),
        "0002-M_0": (6, clip(videos["0002-M"], 0, 60)),  # person 2 from frame 30
    }
    for name, (label, data) in expected.items():
        assert by_name[name].label == label
        np.testing.assert_array_equal(by_name[name].data, data)
    assert by_name["0002-M_0"].view == 2 and by_name["0003-R_0"].view == 3
    assert not by_name["0002-M_0"].data[1, :30].any() and by_name["0002-M_0"].data[1, 30].any()
    # the all-zero instance is skipped and counted, not kept as a clip of zeros
    assert [(s.source, s.reason.split(" (")[0]) for s in dataset.skipped] == [
        ("0002-L_1", "all-zero instance")
    ]
    stats = dataset.stats()
    assert (stats["classes"], stats["joints"], stats["skipped"]) == (51, 25, 1)
    assert stats["frames"]["max"] == 300


def test_cross_view_split_and_registry(phase1: tuple[Path, dict[str, np.ndarray]]) -> None:
    root, _ = phase1
    dataset = load_dataset("pku-mmd", root, "xview", phase="1")
    assert sorted({s.name.split("_")[0] for s in dataset.train}) == ["0002-M", "0003-R"]
    assert sorted({s.name.split("_")[0] for s in dataset.test}) == ["0002-L"]


def test_phase_two_reads_its_own_split_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    root = tmp_path / "pku_v2"
    write_video(root, "A01N01-L", video(rng, 40, second_from=None), ["51,0,40,1"])
    write_video(root, "A01N02-R", video(rng, 40, second_from=10), ["1,5,20,1"])
    (root / "cross_subject_v2.txt").write_text("Training videos: \nA01N01-L\n")
    (root / "cross_view_v2.txt").write_text("Training videos: \nA01N02-R\n")
    dataset = load_pku_mmd(root, phase=2)
    assert [(s.name, s.label) for s in dataset.train] == [("A01N01-L_0", 50)]
    assert [(s.name, s.label) for s in dataset.test] == [("A01N02-R_0", 0)]
    assert len(dataset.classes) == 51  # one-hot width is 51 in both phases


def test_corrupt_video_is_skipped_and_reported(
    phase1: tuple[Path, dict[str, np.ndarray]], caplog: pytest.LogCaptureFixture
) -> None:
    root, _ = phase1
    path = root / "skeleton" / "0002-M.txt"
    lines = path.read_text().splitlines()
    lines[6] = " ".join(lines[6].split()[:149])
    path.write_text("\n".join(lines) + "\n")
    dataset = load_pku_mmd(root, phase=1, benchmark="xsub")
    assert dataset.test == []
    (bad,) = [s for s in dataset.skipped if s.source.endswith("0002-M.txt")]
    assert bad.reason.startswith("line 7 (frame): 149 values")
    assert "0002-M.txt: line 7 (frame)" in caplog.text


def test_skeleton_line_with_wrong_value_count(tmp_path: Path) -> None:
    path = tmp_path / "0005-L.txt"
    path.write_text(" ".join(["0.5"] * 150) + "\n" + " ".join(["0.5"] * 75) + "\n")
    with pytest.raises(WrongJointCountError) as caught:
        read_pku_skeleton(path)
    assert caught.value.line == 2 and "75 values, expected 150" in str(caught.value)


def test_skeleton_non_numeric_value_names_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "0005-L.txt"
    values = ["0.5"] * 150
    values[4] = "n/a"
    path.write_text(" ".join(["0.5"] * 150) + "\n" + " ".join(values) + "\n")
    with pytest.raises(NonNumericFieldError) as caught:
        read_pku_skeleton(path)
    assert (caught.value.line, caught.value.field) == (2, "person 1 joint 2 y")


def test_empty_skeleton_file(tmp_path: Path) -> None:
    path = tmp_path / "0005-L.txt"
    path.write_text("\n")
    with pytest.raises(EmptySequenceError):
        read_pku_skeleton(path)


@pytest.mark.parametrize(
    ("line", "field"),
    [("3,10,x,1", "end"), ("52,0,10,1", "class"), ("3,10,5,1", "end"), ("3,10,20", "label line")],
)
def test_bad_label_lines(tmp_path: Path, line: str, field: str) -> None:
    path = tmp_path / "0005-L.txt"
    path.write_text(f"1,0,10,1\n{line}\n")
    with pytest.raises((MalformedLineError, NonNumericFieldError)) as caught:
        read_pku_labels(path)
    assert (caught.value.line, caught.value.field) == (2, field)
    assert str(path) in str(caught.value)
