"""The checkpoint files of training, typed: one schema each, versioned, read and written here.

- :class:`ClassifierCheckpoint` (``classifier.pt``): a finished classifier, the hand-over to
  evaluation and export. It carries the data source it was trained on in full (dataset, root,
  benchmark, options, layout, frame rate), so a model trained on your own folder evaluates and
  exports without being told where that folder is.
- :class:`EncoderCheckpoint` (``encoder.pt``): a pre-trained encoder alone, what fine-tuning
  and linear evaluation start from (``models/`` ships one). The training state a pre-training
  run keeps for resuming (``checkpoint.pt``) is accepted in its place.
- :class:`TrainingState` (``checkpoint.pt``): what the training loop needs to resume a run.

A file holds ``{"format": ..., "version": ..., "meta": <JSON-shaped dict>, "weights": ...}`` and
is read with ``torch.load(weights_only=True)``: nothing in it runs code. Classifier files
written before the format was versioned (a dict with ``kind: classifier``) still load; what they
lack is filled from their recipe.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, ValidationError
from torch import Tensor

from skeleton.clip import WindowSpec
from training.model.config import ModelConfig

CHECKPOINT_VERSION = 2
CLASSIFIER_FORMAT = "masksem.classifier"
ENCODER_FORMAT = "masksem.encoder"
TRAINING_STATE_KIND = "training_state"
#: Default frame rate of recordings whose dataset does not say (the Kinect sensors' 30 fps).
DEFAULT_FPS = 30.0

Weights = dict[str, Tensor]


class CheckpointError(ValueError):
    """A file that is not a usable checkpoint of the kind asked for; the message says what to do."""


class DataSource(BaseModel):
    """Where the clips a model saw came from, enough to load them again."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: str  # a registry name: utd-mhad | nw-ucla | sbu | ntu | pku-mmd | folder | ...
    root: str | None = None  # absolute; None: the dataset's folder under the data root
    benchmark: str | None = None
    options: dict[str, Any] = {}
    limit: int | None = None  # the first N clips of each split only (quick runs)
    validation_subjects: tuple[int, ...] = ()  # training subjects evaluated on, not the test split
    layout: str
    fps: float = DEFAULT_FPS
    name: str = ""  # the dataset's display name (a folder's is its directory name)


class HeadConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    dropout: float = 0.3
    hidden: int = 2048


class ClassifierCheckpoint(BaseModel):
    """A finished classifier: what rebuilds it, what it was trained on, how it scored."""

    model_config = ConfigDict(extra="forbid")

    head: Literal["linear", "finetune"]
    model: ModelConfig
    head_config: HeadConfig = HeadConfig()
    labels: list[str]
    window: dict[str, Any]  # skeleton.clip.WindowSpec as a dict
    source: DataSource
    recipe: dict[str, Any] = {}
    metrics: dict[str, Any] = {}  # top1 / top5 / clips on the test split after training
    pretrained_sha256: str | None = None
    # Continuous recognition: the label that means "no action", and the rule that turns
    # probabilities into a decision (copied into the model card by export).
    none_label: str | None = None
    decision: dict[str, Any] | None = None
    stream_window_s: float | None = None  # seconds a live stream classifies (stream training)

    @property
    def window_spec(self) -> WindowSpec:
        return WindowSpec.from_dict(self.window)

    @property
    def layout(self) -> str:
        return self.source.layout

    @property
    def fps(self) -> float:
        return self.source.fps

    def save(self, path: Path, weights: Mapping[str, Tensor]) -> None:
        _save(path, CLASSIFIER_FORMAT, self.model_dump(mode="json"), dict(weights))

    @classmethod
    def read(cls, path: Path) -> tuple[ClassifierCheckpoint, Weights]:
        """The checkpoint at ``path`` and its weights; :class:`CheckpointError` otherwise."""
        raw = _load(path)
        if raw.get("format") == CLASSIFIER_FORMAT:
            return _validated(cls, raw, path), raw["weights"]
        if raw.get("kind") == "classifier" and "format" not in raw:
            return _legacy_classifier(raw, path), raw["state_dict"]
        raise CheckpointError(f"{path}: {_describe(raw)}, not a classifier; {_CLASSIFIER_HOW}")


class EncoderCheckpoint(BaseModel):
    """A pre-trained encoder: its architecture, the joint layout it was trained on, and how."""

    model_config = ConfigDict(extra="forbid")

    model: ModelConfig
    layout: str
    source: DataSource | None = None  # None: read from a training state without one
    recipe: dict[str, Any] = {}
    epochs: int = 0

    def save(self, path: Path, weights: Mapping[str, Tensor]) -> None:
        _save(path, ENCODER_FORMAT, self.model_dump(mode="json"), dict(weights))

    @classmethod
    def read(cls, path: Path) -> tuple[EncoderCheckpoint, Weights]:
        """The encoder of an ``encoder.pt`` or of a pre-training run's ``checkpoint.pt``
        (weights named as in ``training.model.encoder.Encoder``)."""
        raw = _load(path)
        if raw.get("format") == ENCODER_FORMAT:
            return _validated(cls, raw, path), raw["weights"]
        if raw.get("kind") == TRAINING_STATE_KIND:
            state = TrainingState.from_dict(raw, path)
            config = state.config
            if config.get("kind") != "pretrain" or "model" not in config:
                raise CheckpointError(
                    f"{path}: the training state of a {config.get('kind', 'unknown')!r} run, not "
                    f"of pre-training; {_ENCODER_HOW}"
                )
            try:
                meta = cls(
                    model=ModelConfig.model_validate(config["model"]),
                    layout=str(config.get("layout") or state.meta.get("layout", "")),
                    source=state.meta.get("source"),
                    recipe={k: v for k, v in config.items() if k != "layout"},
                    epochs=state.epoch,
                )
            except ValidationError as err:
                raise CheckpointError(f"{path}: malformed pre-training config: {err}") from err
            prefix = "encoder."
            weights = {
                k.removeprefix(prefix): v for k, v in state.model.items() if k.startswith(prefix)
            }
            return meta, weights
        raise CheckpointError(
            f"{path}: {_describe(raw)}, not a pre-trained encoder; {_ENCODER_HOW}"
        )


@dataclass
class TrainingState:
    """A run in progress: the loop writes one every ``checkpoint_every`` epochs and resumes from
    it. ``config`` is the recipe (compared on resume); ``meta`` says more without being compared
    (a pre-training run's data source)."""

    epoch: int
    step: int
    history: list[dict[str, float]]
    model: Weights
    optimizer: dict[str, Any]
    rng: dict[str, Any]
    config: dict[str, Any] = field(default_factory=dict)
    extra: Any = None
    meta: dict[str, Any] = field(default_factory=dict)

    def save(self, path: Path) -> None:
        body = {"kind": TRAINING_STATE_KIND, "version": CHECKPOINT_VERSION, **self.__dict__}
        _atomic(body, path)

    @classmethod
    def read(cls, path: Path, device: torch.device | str = "cpu") -> TrainingState:
        return cls.from_dict(_load(path, device), path)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], path: Path) -> TrainingState:
        if raw.get("kind") != TRAINING_STATE_KIND:
            raise CheckpointError(f"{path}: {_describe(raw)}, not a training state")
        try:
            return cls(
                epoch=int(raw["epoch"]),
                step=int(raw["step"]),
                history=list(raw["history"]),
                model=raw["model"],
                optimizer=raw["optimizer"],
                rng=raw["rng"],
                config=raw.get("config") or {},
                extra=raw.get("extra"),
                meta=raw.get("meta") or {},
            )
        except KeyError as err:
            raise CheckpointError(f"{path}: training state lacks field {err}") from err


# -- files ----------------------------------------------------------------------------------------
_CLASSIFIER_HOW = "give the classifier.pt that `masksem finetune` or `masksem linear` wrote"
_ENCODER_HOW = (
    "give an encoder.pt (models/ ships one) or the checkpoint.pt of a `masksem pretrain` run"
)


def _atomic(obj: Any, path: Path) -> None:
    """Write to a temporary file and rename: a crash never leaves a torn checkpoint."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _save(path: Path, fmt: str, meta: dict[str, Any], weights: Weights) -> None:
    weights = {k: v.detach().cpu().contiguous() for k, v in weights.items()}
    _atomic({"format": fmt, "version": CHECKPOINT_VERSION, "meta": meta, "weights": weights}, path)


def _load(path: Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        raw = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # torch raises pickle, zip and runtime errors alike
        raise CheckpointError(
            f"{path}: not a masksem checkpoint (torch.load refuses it: {type(err).__name__}); "
            "give a classifier.pt, encoder.pt or checkpoint.pt that masksem wrote"
        ) from err
    if not isinstance(raw, dict):
        raise CheckpointError(f"{path}: holds a {type(raw).__name__}, not a masksem checkpoint")
    version = raw.get("version")
    if version is not None and version > CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint version {version} is newer than this masksem reads "
            f"({CHECKPOINT_VERSION}); upgrade masksem"
        )
    return raw


def _describe(raw: dict[str, Any]) -> str:
    kind = raw.get("format") or raw.get("kind")
    return f"a {kind!r} checkpoint" if kind else "an unknown file"


def _validated(cls: type[Any], raw: dict[str, Any], path: Path) -> Any:
    try:
        return cls.model_validate(raw.get("meta"))
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()
        )
        raise CheckpointError(f"{path}: malformed checkpoint: {problems}") from None


def _legacy_classifier(raw: dict[str, Any], path: Path) -> ClassifierCheckpoint:
    """A classifier file of the unversioned format: the data source from its recipe."""
    try:
        recipe = raw.get("recipe") or {}
        data = recipe.get("data") or {}
        trained_on = raw.get("dataset") or {}
        dataset = data.get("dataset") or trained_on["name"]
        benchmark = trained_on.get("benchmark") if dataset != "folder" else data.get("benchmark")
        source = DataSource(
            dataset=dataset,
            root=data.get("root"),
            benchmark=benchmark or None,
            options=data.get("options") or {},
            limit=data.get("limit"),
            layout=raw["layout"],
            fps=float(raw.get("fps", DEFAULT_FPS)),
            name=trained_on.get("name", dataset),
        )
        return ClassifierCheckpoint(
            head=raw["head"],
            model=ModelConfig.model_validate(raw["model_config"]),
            head_config=HeadConfig.model_validate(raw.get("head_config") or {}),
            labels=[str(label) for label in raw["labels"]],
            window=dict(raw["window"]),
            source=source,
            recipe=recipe,
            metrics=raw.get("metrics") or {},
            none_label=raw.get("none_label"),
            decision=raw.get("decision"),
            stream_window_s=raw.get("stream_window_s"),
        )
    except (KeyError, TypeError, ValidationError) as err:
        raise CheckpointError(
            f"{path}: a classifier checkpoint of the old format that lacks {err}; train it again "
            "with `masksem finetune` (or `linear`) to write the current format"
        ) from None
