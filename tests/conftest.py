"""Shared fixtures: the real datasets in MASKSEM_DATA_ROOT, each loaded once per session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from training.data.registry import data_root as configured_data_root
from training.data.registry import load_dataset
from training.data.types import SkeletonDataset


@pytest.fixture(scope="session", autouse=True)
def prepared_data_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Parsed-data cache of the whole session in a temporary folder: the user's own cache is
    never touched, and a dataset parsed by one test is read from the cache by the next."""
    from training.data.cache import CACHE_ENV

    cache = tmp_path_factory.mktemp("masksem-cache")
    previous = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(cache)
    yield cache
    if previous is None:
        os.environ.pop(CACHE_ENV, None)
    else:
        os.environ[CACHE_ENV] = previous


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
