"""What every recipe shares: the data section of a recipe file and how it becomes datasets."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, model_validator

from skeleton.clip import WindowSpec
from skeleton.layouts import LayoutError, convert, get_layout, joint_map
from training.checkpoints import DEFAULT_FPS, DataSource
from training.data.errors import DatasetError
from training.data.streams import StreamDataset
from training.data.types import Sample, SkeletonDataset, narrow
from training.model.config import ModelConfig
from training.recipes.stream_data import StreamPretraining


class SourceConfig(BaseModel):
    """Which dataset and split to read."""

    model_config = ConfigDict(extra="forbid")

    dataset: str  # utd-mhad | nw-ucla | sbu | ntu | pku-mmd | folder | folder-streams
    root: Path | None = None  # default: $MASKSEM_DATA_ROOT/<dataset folder>
    benchmark: str | None = None  # the dataset's default split when None
    options: dict[str, Any] = {}
    limit: int | None = None  # keep only the first N clips of each split (quick checks)
    # these training subjects become the evaluation split and the test split is not read:
    # choose a recipe's settings without looking at the test clips (trimmed datasets)
    validation_subjects: tuple[int, ...] = ()


class ExtraSource(SourceConfig):
    """Another dataset's clips added to pre-training, labels unused, mapped onto the main
    dataset's joint layout and camera axes (skeleton.layouts.convert). Its test split may be
    used too: the evaluation is on the main dataset's test split."""

    splits: tuple[Literal["train", "test"], ...] = ("train",)
    # the dataset's untrimmed recordings in place of its trimmed clips: windows cut from its
    # training videos (training/recipes/pretrain_data.py)
    streams: StreamPretraining | None = None

    @model_validator(mode="after")
    def _streams_train_only(self) -> ExtraSource:
        if self.streams is not None and tuple(self.splits) != ("train",):
            raise ValueError(
                f"extra_data {self.dataset!r}: windows are cut from the training recordings only; "
                "drop splits"
            )
        return self


class DataConfig(SourceConfig):
    """Which dataset and split, and how clips become windows (method.md section 1): the
    window fields are skeleton.clip.WindowSpec's, with switches in place of joint indices."""

    frames: int = 120
    persons: int = 2
    test_crop: float = 0.95
    train_crop: tuple[float, float] = (0.5, 1.0)
    min_crop_frames: int = 64
    max_rotation: float = 0.3
    max_shear: float = 0.0  # random shear of body proportions (skeleton.clip.random_shear)
    centre: bool = True  # move the layout's root joint (first frame) to the origin
    # divide by the mean torso length (skeleton.clip.normalise_scale): off in the papers' NTU
    # and PKU-MMD recipes, on in the small ones (cross-subject generalisation on few people)
    normalise_scale: bool = False
    # turn each clip about the vertical axis so the body faces the sensor (skeleton.clip.
    # face_forward): removes the camera's angle to the person (NW-UCLA's cross-view split)
    face_forward: bool = False

    def window(self, layout: str) -> WindowSpec:
        """The window of this section on ``layout``: the shared fields as they are, the
        layout-free switches turned into that layout's joints."""
        joints = get_layout(layout)
        return WindowSpec(
            **self.model_dump(include={f.name for f in dataclasses.fields(WindowSpec)}),
            centre_joint=joints.root if self.centre else None,
            scale_bone=joints.torso if self.normalise_scale else None,
            face_pairs=joints.across if self.face_forward else None,
        )


def load_data(cfg: SourceConfig) -> SkeletonDataset:
    from training.data.registry import load_dataset

    data = load_dataset(cfg.dataset, cfg.root, cfg.benchmark, **cfg.options)
    return narrow(data, validation_subjects=cfg.validation_subjects, limit=cfg.limit)


def load_stream_source(cfg: SourceConfig) -> StreamDataset:
    """The untrimmed recordings of ``cfg``'s dataset; ``limit`` keeps the first N videos of
    each split."""
    from training.data.registry import load_streams

    data = load_streams(cfg.dataset, cfg.root, cfg.benchmark, **cfg.options)
    if cfg.limit is not None:
        data.train, data.test = data.train[: cfg.limit], data.test[: cfg.limit]
    return data


def require_clips(data: SkeletonDataset, *, test: bool) -> None:
    """Refuse, before any training, a dataset without training clips (or, when ``test``, without
    test clips to evaluate on), saying why."""
    where = f"{data.name} ({data.benchmark or 'default split'})"
    skipped = f"; {len(data.skipped)} clips were skipped as unreadable" if data.skipped else ""
    if not data.train:
        raise DatasetError(f"{where} has no training clips{skipped}")
    if test and not data.test:
        raise DatasetError(
            f"{where} has no test clips to evaluate on{skipped}: give a folder's manifest a "
            "split column, or hold out subjects with the option test_subjects (e.g. "
            "--set data.options.test_subjects=3,4)"
        )


def fit_to_data(
    model: ModelConfig, data_cfg: DataConfig, data: SkeletonDataset
) -> tuple[ModelConfig, DataConfig]:
    """``model.joints`` follows the data's layout and the persons per window follow the most
    persons of any clip, unless the recipe sets them (``persons`` in ``data`` or ``model``)."""
    joints = get_layout(data.layout).num_joints
    model_update: dict[str, Any] = {}
    data_update: dict[str, Any] = {}
    if "joints" not in model.model_fields_set:
        model_update["joints"] = joints
    elif model.joints != joints:
        raise ValueError(
            f"model.joints is {model.joints} but {data.name} uses {data.layout} with {joints} "
            "joints: drop the setting (it follows the data) or fix it"
        )
    if "persons" not in model.model_fields_set and "persons" not in data_cfg.model_fields_set:
        persons = max((s.data.shape[0] for s in data.samples), default=data_cfg.persons)
        model_update["persons"] = data_update["persons"] = persons
    if model_update:
        model = ModelConfig.model_validate({**model.model_dump(), **model_update})
    if data_update:
        data_cfg = data_cfg.model_copy(update=data_update)
    return model, data_cfg


def data_source(cfg: SourceConfig, data: SkeletonDataset, *, fps: float | None) -> DataSource:
    """Where ``data`` (loaded from ``cfg``) came from, to load it again at evaluation and
    export: roots absolute, the split resolved, the frame rate the recipe's, else the data's."""
    from training.data.registry import DATASETS

    entry = DATASETS.get(cfg.dataset)
    named_splits = entry is not None and bool(entry.benchmarks)
    return DataSource(
        dataset=cfg.dataset,
        root=None if cfg.root is None else str(Path(cfg.root).resolve()),
        benchmark=data.benchmark if named_splits else cfg.benchmark,
        options=dict(cfg.options),
        limit=cfg.limit,
        validation_subjects=cfg.validation_subjects,
        layout=data.layout,
        fps=fps or data.fps or DEFAULT_FPS,
        name=data.name,
    )


def extra_clips(sources: list[ExtraSource], layout: str) -> list[Sample]:
    """The clips of ``sources`` on ``layout``, named ``<dataset>/<clip>``, with label -1 (they
    belong to no class of the main dataset). A dataset whose joints do not map is refused."""
    clips: list[Sample] = []
    for source in sources:
        if source.streams is not None:
            raise ValueError(f"extra_data {source.dataset!r} gives windows of streams, not clips")
        data = load_data(source)
        try:
            joint_map(data.layout, layout)
        except LayoutError as err:
            raise ValueError(
                f"extra_data {source.dataset!r} cannot join pre-training: {err}"
            ) from err
        for split in source.splits:
            for s in getattr(data, split):
                mapped = convert(s.data, data.layout, layout)
                clips.append(Sample(f"{source.dataset}/{s.name}", mapped, -1, s.subject, s.view))
    return clips
