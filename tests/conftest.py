"""Shared fixtures: the real datasets in MASKSEM_DATA_ROOT, each loaded once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.data.registry import data_root as configured_data_root
from training.data.registry import load_dataset
from training.data.types import SkeletonDataset


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = configured_data_root()
    if not root.is_dir():
        pytest.skip(f"real datasets not found at {root} (set MASKSEM_DATA_ROOT)")
    return root


def _load(root: Path, name: str, folder: str) -> SkeletonDataset:
    if not (root / folder).is_dir():
        pytest.skip(f"{name} not found at {root / folder}")
    return load_dataset(name, root / folder)


@pytest.fixture(scope="session")
def utd_dataset(data_root: Path) -> SkeletonDataset:
    """UTD-MHAD, cross-subject."""
    return _load(data_root, "utd-mhad", "utd-mhad")


@pytest.fixture(scope="session")
def ucla_dataset(data_root: Path) -> SkeletonDataset:
    """NW-UCLA, cross-view."""
    return _load(data_root, "nw-ucla", "nw-ucla")


@pytest.fixture(scope="session")
def sbu_dataset(data_root: Path) -> SkeletonDataset:
    """SBU Kinect Interaction, fold 1 held out."""
    return _load(data_root, "sbu", "sbu-kinect")
