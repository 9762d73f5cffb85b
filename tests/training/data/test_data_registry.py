"""load_dataset: names, default roots, benchmarks and options."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.data.errors import DatasetError
from training.data.registry import DATASETS, data_root, load_dataset


def test_unknown_dataset_lists_the_known_names() -> None:
    with pytest.raises(DatasetError) as caught:
        load_dataset("kinetics", Path("."))
    names = {"utd-mhad", "nw-ucla", "sbu", "ntu", "pku-mmd", "folder", "folder-streams", "spliced"}
    for name in names:
        assert name in str(caught.value)
    assert set(DATASETS) == names


def test_default_root_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MASKSEM_DATA_ROOT", str(tmp_path))
    assert data_root() == tmp_path
    with pytest.raises(DatasetError, match=str(tmp_path / "sbu-kinect")):
        load_dataset("sbu")
    with pytest.raises(DatasetError, match=str(tmp_path / "ntu" / "xview.npz")):
        load_dataset("ntu", benchmark="xview")
    monkeypatch.delenv("MASKSEM_DATA_ROOT")
    assert data_root() == Path(__file__).resolve().parents[3].parent / "shared" / "data"


def test_benchmark_and_option_errors(data_root: Path) -> None:
    with pytest.raises(DatasetError, match="fold1, fold2"):
        load_dataset("sbu", benchmark="xsub")
    with pytest.raises(DatasetError, match="does not take option"):
        load_dataset("utd-mhad", layout="utd20")
    with pytest.raises(DatasetError, match="give its root"):
        load_dataset("folder", layout="ntu25")


def test_default_benchmarks(data_root: Path) -> None:
    assert load_dataset("sbu").benchmark == "fold1"
    assert load_dataset("sbu", benchmark="fold3").benchmark == "fold3"
