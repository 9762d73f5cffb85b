"""The real UTD-MHAD, NW-UCLA and SBU files in MASKSEM_DATA_ROOT, and corrupt files in their
formats: counts, splits, coordinates and the skip-and-report behaviour."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from scipy.io import loadmat, savemat
from typer.testing import CliRunner

from masksem.cli_data import data_app
from skeleton.clip import WindowSpec, inference_window, training_window
from skeleton.layouts import get_layout
from training.data.errors import (
    EmptySequenceError,
    NonNumericFieldError,
    WrongJointCountError,
)
from training.data.sbu import FOLDS, load_sbu, read_sbu_clip
from training.data.types import SkeletonDataset
from training.data.ucla import load_nw_ucla, read_ucla_sample
from training.data.utd import load_utd_mhad, read_utd_clip

# --- UTD-MHAD --------------------------------------------------------------------------------


def test_utd_mhad_counts_and_cross_subject_split(utd_dataset: SkeletonDataset) -> None:
    stats = utd_dataset.stats()
    assert (stats["sequences"], stats["classes"], stats["subjects"]) == (861, 27, 8)
    assert (stats["train"], stats["test"], stats["skipped"], stats["joints"]) == (431, 430, 0, 20)
    assert {s.subject for s in utd_dataset.train} == {1, 3, 5, 7}
    assert {s.subject for s in utd_dataset.test} == {2, 4, 6, 8}
    assert (stats["frames"]["min"], stats["frames"]["max"]) == (41, 125)
    assert utd_dataset.classes[26] == "squat (two arms stretch out)"


def test_utd_mhad_coordinates_are_d_skel_transposed(
    utd_dataset: SkeletonDataset, data_root: Path
) -> None:
    sample = next(s for s in utd_dataset.samples if s.name == "a27_s8_t3_skeleton")
    d_skel = loadmat(data_root / "utd-mhad" / "a27_s8_t3_skeleton.mat")["d_skel"]
    assert sample.label == 26 and sample.subject == 8
    assert sample.data.shape == (1, d_skel.shape[2], 20, 3)
    for t in (0, d_skel.shape[2] - 1):
        np.testing.assert_array_equal(sample.data[0, t], d_skel[:, :, t].astype(np.float32))


def test_utd_mhad_bad_files_are_skipped_and_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rng = np.random.default_rng(0)
    savemat(tmp_path / "a1_s1_t1_skeleton.mat", {"d_skel": rng.normal(size=(20, 3, 30))})
    savemat(tmp_path / "a2_s2_t1_skeleton.mat", {"d_skel": rng.normal(size=(20, 3, 12))})
    savemat(tmp_path / "a3_s1_t1_skeleton.mat", {"d_skel": rng.normal(size=(19, 3, 30))})
    savemat(tmp_path / "a4_s1_t1_skeleton.mat", {"skeleton": rng.normal(size=(20, 3, 30))})
    with pytest.raises(WrongJointCountError, match="19 joints"):
        read_utd_clip(tmp_path / "a3_s1_t1_skeleton.mat")
    dataset = load_utd_mhad(tmp_path)
    assert [s.name for s in dataset.train] == ["a1_s1_t1_skeleton"]
    assert [s.name for s in dataset.test] == ["a2_s2_t1_skeleton"]
    assert sorted(Path(s.source).name for s in dataset.skipped) == [
        "a3_s1_t1_skeleton.mat",
        "a4_s1_t1_skeleton.mat",
    ]
    assert "a4_s1_t1_skeleton.mat: (d_skel): no variable 'd_skel'" in caplog.text


# --- NW-UCLA ---------------------------------------------------------------------------------


def test_nw_ucla_counts_and_cross_view_split(ucla_dataset: SkeletonDataset) -> None:
    stats = ucla_dataset.stats()
    assert (stats["sequences"], stats["classes"], stats["subjects"]) == (1484, 10, 10)
    assert (stats["train"], stats["test"], stats["skipped"], stats["joints"]) == (1020, 464, 0, 20)
    assert {s.view for s in ucla_dataset.train} == {1, 2}
    assert {s.view for s in ucla_dataset.test} == {3}
    # file action ids skip a07 and a10: a08 is label 7 (donning), a12 label 10 (carry)
    action_of = {int(re.match(r"a(\d+)", s.name)[1]): s.label for s in ucla_dataset.samples}  # type: ignore[index]
    assert action_of == {1: 0, 2: 1, 3: 2, 4: 3, 5: 4, 6: 5, 8: 6, 9: 7, 11: 8, 12: 9}
    assert ucla_dataset.classes[6] == "donning"


def test_nw_ucla_one_frame_clip_goes_through_both_windows(ucla_dataset: SkeletonDataset) -> None:
    ones = [s for s in ucla_dataset.samples if s.data.shape[1] == 1]
    assert [s.name for s in ones] == ["a02_s09_e04_v02", "a02_s09_e04_v03"]
    spec = WindowSpec(frames=120, persons=2)
    for one in ones:
        window = inference_window(one.data, spec)
        assert window.shape == (2, 120, 20, 3)
        np.testing.assert_allclose(window[0], np.repeat(one.data[0], 120, axis=0), rtol=1e-6)
        assert not window[1].any()
        augmented = training_window(one.data, spec, np.random.default_rng(0))
        assert augmented.shape == (2, 120, 20, 3) and np.isfinite(augmented).all()


def test_facing_forward_brings_the_views_of_one_take_closer(ucla_dataset: SkeletonDataset) -> None:
    """NW-UCLA filmed each take from three cameras at once: turning every clip to face the
    sensor makes the opening pose seen by camera 1 nearer the one seen by camera 3."""
    layout = get_layout("ucla20")
    clips = {s.name: s.data for s in ucla_dataset.samples}
    takes = sorted({n[:-4] for n in clips if n.endswith("_v01") and n[:-4] + "_v03" in clips})
    assert len(takes) > 400

    def opening_pose(name: str, face: bool) -> np.ndarray:
        spec = WindowSpec(
            frames=32, persons=1, centre_joint=layout.root, scale_bone=layout.torso,
            face_pairs=layout.across if face else None,
        )  # fmt: skip
        return inference_window(clips[name], spec)[0, :8].mean(axis=0)

    def median_gap(face: bool) -> float:
        gaps = [
            np.linalg.norm(opening_pose(t + "_v01", face) - opening_pose(t + "_v03", face), axis=-1)
            for t in takes
        ]
        return float(np.median(np.mean(gaps, axis=-1)))

    assert median_gap(face=True) < 0.95 * median_gap(face=False)


def test_nw_ucla_cross_subject_is_odd_subjects(data_root: Path) -> None:
    dataset = load_nw_ucla(data_root / "nw-ucla", "xsub")
    assert {s.subject for s in dataset.train} == {1, 3, 5, 7, 9}
    assert (len(dataset.train), len(dataset.test)) == (724, 760)


def test_nw_ucla_bad_json_names_the_field(tmp_path: Path) -> None:
    frame = [[0.1, 0.2, 3.0]] * 20
    bad_joints = tmp_path / "a01_s01_e00_v01.json"
    bad_joints.write_text(json.dumps({"label": 1, "skeletons": [frame, frame[:19]]}))
    with pytest.raises(WrongJointCountError) as caught:
        read_ucla_sample(bad_joints)
    assert caught.value.field == "skeletons[1]" and "19 joints" in str(caught.value)
    bad_value = tmp_path / "a01_s01_e00_v02.json"
    bad_value.write_text(
        json.dumps({"label": 1, "skeletons": [frame, [*frame[:5], [0, "x", 1]] + frame[6:]]})
    )
    with pytest.raises(NonNumericFieldError) as caught_value:
        read_ucla_sample(bad_value)
    assert caught_value.value.field == "skeletons[1][5]"
    empty = tmp_path / "a01_s01_e00_v03.json"
    empty.write_text(json.dumps({"label": 1, "skeletons": []}))
    with pytest.raises(EmptySequenceError):
        read_ucla_sample(empty)
    dataset = load_nw_ucla(tmp_path)
    assert dataset.samples == [] and len(dataset.skipped) == 3


# --- SBU -------------------------------------------------------------------------------------


def test_sbu_counts_and_five_folds_partition_the_pairs(
    sbu_dataset: SkeletonDataset, data_root: Path
) -> None:
    stats = sbu_dataset.stats()
    assert (stats["sequences"], stats["classes"], stats["subjects"]) == (282, 8, 21)
    assert (stats["persons"], stats["joints"], stats["skipped"]) == (2, 15, 0)
    assert sbu_dataset.benchmark == "fold1"
    tests = [{s.name for s in load_sbu(data_root / "sbu-kinect", fold).test} for fold in FOLDS]
    assert sum(len(t) for t in tests) == 282 and set().union(*tests) == {
        s.name for s in sbu_dataset.samples
    }
    assert {s.name[:6] for s in sbu_dataset.test} == set(FOLDS["fold1"])


def test_sbu_coordinates_are_converted_to_metres(data_root: Path) -> None:
    path = data_root / "sbu-kinect" / "s01s02" / "01" / "001" / "skeleton_pos.txt"
    first = [float(v) for v in path.read_text().splitlines()[0].split(",")]
    x, y, z = first[1:4]  # person 1, head, frame 1
    expected = [(1280 - 2560 * x) / 1000, (960 - 1920 * y) / 1000, 10000 * z / 7.8125 / 1000]
    clip = read_sbu_clip(path)
    np.testing.assert_allclose(clip[0, 0, 0], expected, rtol=1e-6)
    x2, y2, z2 = first[46:49]  # person 2, head
    np.testing.assert_allclose(
        clip[1, 0, 0], [(1280 - 2560 * x2) / 1000, (960 - 1920 * y2) / 1000, z2 * 1.28], rtol=1e-6
    )


def test_sbu_bad_line_is_skipped_and_reported(tmp_path: Path) -> None:
    good = tmp_path / "s01s02" / "03" / "001" / "skeleton_pos.txt"
    bad = tmp_path / "s03s04" / "02" / "001" / "skeleton_pos.txt"
    for path in (good, bad):
        path.parent.mkdir(parents=True)
    row = ",".join(["0.5"] * 90)
    good.write_text(f"1,{row}\n2,{row}\n")
    bad.write_text(f"1,{row}\n2,{','.join(['0.5'] * 60)}\n")
    with pytest.raises(WrongJointCountError) as caught:
        read_sbu_clip(bad)
    assert caught.value.line == 2
    dataset = load_sbu(tmp_path)
    # s01s02 is in fold 1, the default held-out fold
    assert [(s.name, s.label, s.subject) for s in dataset.test] == [("s01s02_03_001", 2, 102)]
    assert len(dataset.skipped) == 1 and "line 2" in dataset.skipped[0].reason


# --- the stats command -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "folder", "expected"),
    [
        ("utd-mhad", "utd-mhad", {"sequences": 861, "classes": 27, "subjects": 8, "train": 431}),
        ("nw-ucla", "nw-ucla", {"sequences": 1484, "classes": 10, "train": 1020, "test": 464}),
        ("sbu", "sbu-kinect", {"sequences": 282, "classes": 8, "joints": 15}),
    ],
)  # fmt: skip
def test_stats_command_prints_json(
    data_root: Path, name: str, folder: str, expected: dict[str, int]
) -> None:
    result = CliRunner().invoke(
        data_app, ["stats", name, "--root", str(data_root / folder), "--json"]
    )
    assert result.exit_code == 0, result.output
    stats = json.loads(result.output)
    assert {k: stats[k] for k in expected} == expected
    assert {"sequences", "classes", "subjects", "joints", "train", "test", "skipped"} <= set(stats)
