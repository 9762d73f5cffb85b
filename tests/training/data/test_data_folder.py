"""The bring-your-own format: a folder of .npy clips and manifest.csv."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from training.data.errors import DatasetError, MalformedLineError
from training.data.folder import load_folder, write_folder
from training.data.registry import load_dataset
from training.data.types import Sample, SkeletonDataset


def clip(rng: np.random.Generator, persons: int, frames: int, joints: int = 32) -> np.ndarray:
    return rng.normal(size=(persons, frames, joints, 3)).astype(np.float32)


def write_manifest(root: Path, rows: list[str]) -> None:
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")


def test_round_trip_keeps_clips_labels_subjects_views_and_split(
    tmp_path: Path, utd_dataset: SkeletonDataset
) -> None:
    small = SkeletonDataset(
        name="utd-part",
        layout="utd20",
        classes=utd_dataset.classes,
        train=utd_dataset.train[:3],
        test=[Sample(s.name, s.data, s.label, s.subject, view=4) for s in utd_dataset.test[:2]],
    )
    write_folder(small, tmp_path)
    loaded = load_folder(tmp_path, layout="utd20")
    # classes are the sorted names actually used, so labels are re-numbered by name
    for before, after in zip(small.samples, loaded.samples, strict=True):
        assert after.name == before.name and after.subject == before.subject
        assert loaded.classes[after.label] == small.classes[before.label]
        assert after.view == before.view
        np.testing.assert_array_equal(after.data, before.data)
    assert (len(loaded.train), len(loaded.test), loaded.benchmark) == (
        3,
        2,
        "manifest split column",
    )
    assert loaded.classes == sorted(loaded.classes)


def test_single_person_clips_and_test_subjects_rule(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    (tmp_path / "clips").mkdir()
    one = clip(rng, 1, 30)[0]  # (T, V, 3): one person
    np.save(tmp_path / "clips" / "wave_1.npy", one)
    np.save(tmp_path / "clips" / "wave_2.npy", clip(rng, 2, 25))
    np.save(tmp_path / "clips" / "bow_1.npy", clip(rng, 1, 40))
    write_manifest(
        tmp_path,
        ["path,label,subject,view", "clips/wave_1.npy,wave,1,2", "clips/wave_2.npy,wave,2,",
         "clips/bow_1.npy,bow,2,1"],
    )  # fmt: skip
    dataset = load_dataset("folder", tmp_path, layout="k4a32", test_subjects="2")
    assert dataset.classes == ["bow", "wave"]
    (train,) = dataset.train
    assert (train.name, train.label, train.subject, train.view) == ("wave_1", 1, 1, 2)
    np.testing.assert_array_equal(train.data, one[None])
    assert [(s.name, s.label, s.view) for s in dataset.test] == [
        ("wave_2", 1, None),
        ("bow_1", 0, 1),
    ]
    everything = load_folder(tmp_path, layout="k4a32")
    assert (len(everything.train), len(everything.test)) == (3, 0)


def test_bad_rows_are_skipped_and_reported(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    (tmp_path / "clips").mkdir()
    np.save(tmp_path / "clips" / "ok.npy", clip(rng, 1, 10))
    np.save(tmp_path / "clips" / "joints.npy", clip(rng, 1, 10, joints=25))
    bad = clip(rng, 1, 10)
    bad[0, 3, 7, 1] = np.nan
    np.save(tmp_path / "clips" / "nan.npy", bad)
    np.save(tmp_path / "clips" / "zeros.npy", np.zeros((1, 10, 32, 3), np.float32))
    names = ("ok", "joints", "nan", "zeros", "gone")
    write_manifest(tmp_path, ["path,label,subject"] + [f"clips/{n}.npy,a,1" for n in names])
    dataset = load_folder(tmp_path, layout="k4a32")
    assert [s.name for s in dataset.samples] == ["ok"]
    # each skipped row is named by its manifest line, with what is wrong with its clip
    reasons = {s.source.rsplit(" ", 1)[-1]: s.reason for s in dataset.skipped}
    assert sorted(reasons) == ["3", "4", "5", "6"]
    assert "25 joints, the layout has 32" in reasons["3"]
    assert "NaN or inf at person 1, frame 4, joint 8" in reasons["4"]
    assert "no non-zero frame" in reasons["5"]
    assert "does not exist" in reasons["6"] and "gone.npy" in reasons["6"]


def test_manifest_and_layout_errors(tmp_path: Path) -> None:
    write_manifest(tmp_path, ["file,label,subject", "a.npy,x,1"])
    with pytest.raises(MalformedLineError) as caught:
        load_folder(tmp_path, layout="ntu25")
    assert caught.value.line == 1 and "path,label,subject" in str(caught.value)
    write_manifest(tmp_path, ["path,label,subject,split", "a.npy,x,1,val"])
    with pytest.raises(MalformedLineError, match="split 'val'") as caught:
        load_folder(tmp_path, layout="ntu25")
    assert caught.value.line == 2
    write_manifest(tmp_path, ["path,label,subject", "a.npy,x,one"])
    with pytest.raises(ValueError, match="line 2 \\(subject\\)"):
        load_folder(tmp_path, layout="ntu25")
    with pytest.raises(DatasetError, match="k4a32"):
        load_folder(tmp_path, layout="kinect99")
    with pytest.raises(DatasetError, match="needs a layout"):
        load_folder(tmp_path)
