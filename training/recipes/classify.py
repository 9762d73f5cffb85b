"""Supervised protocols on a pre-trained (or fresh) encoder: linear evaluation with the encoder
frozen, fine-tuning (optionally on a labelled fraction: the semi-supervised protocol), and
training from scratch. Each run ends with a classifier checkpoint, metrics.json and plots."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from skeleton.card import sha256_of
from skeleton.clip import WindowSpec
from skeleton.layouts import can_map, joint_map
from training.checkpoints import (
    DEFAULT_FPS,
    ClassifierCheckpoint,
    EncoderCheckpoint,
    HeadConfig,
)
from training.data.types import Sample, SkeletonDataset
from training.distributed import DistContext
from training.loop import LoopConfig, TrainingLoop, seed_everything
from training.model.config import ModelConfig
from training.model.encoder import Encoder
from training.model.heads import Classifier, build_classifier, param_groups
from training.recipes.common import (
    DataConfig,
    data_source,
    fit_to_data,
    load_data,
    require_clips,
)
from training.recipes.evaluate import accuracy_report, evaluate_on, predict
from training.recipes.none_data import NoneSource, none_clips
from training.recipes.plots import plot_confusion, plot_history
from training.recipes.stream_data import (
    MIN_PRESENT_FRAMES,
    NONE,
    StreamTraining,
    StreamWindowFeeder,
    StreamWindows,
    calibrate_per_minute,
    calibrate_threshold,
    fixed_windows,
    instance_samples,
    stream_lags,
    stream_windows,
    window_ends,
    window_videos,
)

log = logging.getLogger(__name__)

CLASSIFIER_NAME = "classifier.pt"


class ClassifyRecipe(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["linear", "finetune"]
    name: str
    data: DataConfig
    model: ModelConfig = ModelConfig()
    # A pre-training checkpoint.pt; None trains from scratch (fine-tuning only).
    pretrained: Path | None = None
    label_fraction: float = 1.0  # semi-supervised: a class-stratified random share of labels
    fraction_seed: int = 0  # which random subset (a different one per seed)
    dropout: float = 0.3
    hidden: int = 2048
    label_smoothing: float = 0.0
    # Linear only. 0: the published protocol, a fresh augmented window through the frozen
    # encoder at every epoch. K > 0: the pooled features of K augmented windows of every
    # training clip are computed once and epoch e trains the head on view e mod K: the same
    # probe at a K/epochs share of the encoder passes (one process only).
    feature_views: int = Field(default=0, ge=0)
    layer_decay: float | None = None
    eval_every: int = 5
    # frame rate of the recordings, written into the exported card; None: the data's own
    # (a folder's manifest or option, else the dataset's), else 30
    fps: float | None = None
    # Train on untrimmed recordings with a "none" class (training/recipes/stream_data.py)
    stream: StreamTraining | None = None
    # A "none" class from other datasets (training/recipes/none_data.py): added to trimmed
    # clips, or to a stream recipe's none windows (its held-out videos still calibrate)
    none_data: list[NoneSource] = []
    false_alarm_rate: float = Field(0.05, gt=0.0, lt=1.0)  # none_data: calibration target
    loop: LoopConfig = LoopConfig()

    @model_validator(mode="after")
    def _consistent(self) -> ClassifyRecipe:
        if self.kind == "linear" and self.pretrained is None:
            raise ValueError("linear evaluation needs a pre-trained encoder (pretrained: ...)")
        if not 0.0 < self.label_fraction <= 1.0:
            raise ValueError(f"label_fraction must be in (0, 1], got {self.label_fraction}")
        if self.model.frames != self.data.frames or self.model.persons != self.data.persons:
            raise ValueError("model.frames/persons must equal data.frames/persons")
        if self.feature_views and self.kind != "linear":
            raise ValueError("feature_views needs the frozen encoder of linear evaluation")
        if self.stream is not None and (self.feature_views or self.label_fraction < 1.0):
            raise ValueError("stream training takes neither feature_views nor label_fraction")
        if self.stream is not None and self.data.validation_subjects:
            raise ValueError(
                "stream training evaluates on the test videos: data.validation_subjects holds "
                "out trimmed clips only"
            )
        return self


def load_encoder(checkpoint: Path, model: ModelConfig, layout: str) -> tuple[dict[str, Any], str]:
    """The encoder weights of a pre-trained encoder (``encoder.pt``, or a pre-training run's
    ``checkpoint.pt``) for ``model`` on ``layout``, and that file's sha256. Transfer across
    layouts: when the encoder was pre-trained on another layout whose joints map onto
    ``layout`` (utd20 <-> ucla20, ntu25 -> Kinect v1), the joint embedding is carried over
    joint by joint."""
    meta, weights = EncoderCheckpoint.read(checkpoint)
    ignore = {"joints", "persons", "drop_path"}
    if meta.model.model_dump(exclude=ignore) != model.model_dump(exclude=ignore):
        raise ValueError(
            f"{checkpoint} was pre-trained with model {meta.model.model_dump(exclude=ignore)}, "
            f"not {model.model_dump(exclude=ignore)}: set the recipe's model section to match"
        )
    source = meta.layout or layout
    if source != layout:
        if not can_map(source, layout):
            raise ValueError(
                f"{checkpoint} was pre-trained on {source} joints, which do not map onto {layout}"
            )
        remap = torch.tensor(joint_map(source, layout), dtype=torch.float32)
        weights["embed.pos.joint"] = remap @ weights["embed.pos.joint"]
    encoder_keys = set(Encoder(model).state_dict())
    return {k: v for k, v in weights.items() if k in encoder_keys}, sha256_of(checkpoint)


class ClassifyTask:
    def __init__(
        self,
        recipe: ClassifyRecipe,
        classifier: Classifier,
        test: Any,
        classes: list[str],
        ctx: DistContext,
    ) -> None:
        self.recipe, self.module, self.test, self.classes = recipe, classifier, test, classes
        self.labels = np.array([s.label for s in test.samples], dtype=np.int64)
        self.ctx = ctx
        self.frozen = recipe.kind == "linear"
        if self.frozen:
            classifier.encoder.requires_grad_(False)
        self.last_eval: dict[str, Any] = {}
        # with feature views the training batches are pooled features: only the head runs
        self.on_features = recipe.feature_views > 0
        # and the test clips' pooled features are computed once (the encoder is frozen)
        self.test_features: torch.Tensor | None = None
        if self.on_features and len(test):
            self.test_features = pooled_features(classifier.encoder, test, ctx.device)

    def param_groups(self) -> list[dict[str, Any]]:
        return param_groups(self.module, self.recipe.loop.weight_decay, self.recipe.layer_decay)

    def start_epoch(self, epoch: int) -> None:
        pass

    def loss(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, float]]:
        if self.frozen:
            self.module.encoder.eval()  # no drop path in a frozen encoder
        inputs, labels = (t.to(self.ctx.device, non_blocking=True) for t in batch)
        logits = self.module.head(inputs) if self.on_features else model(inputs)
        loss = F.cross_entropy(logits, labels, label_smoothing=self.recipe.label_smoothing)
        top1 = (logits.argmax(dim=1) == labels).float().mean()
        return loss, {"train_top1": float(top1)}

    def after_step(self) -> None:
        pass

    def evaluate(self, epoch: int) -> dict[str, float]:
        last = epoch + 1 == self.recipe.loop.epochs
        if not last and (epoch + 1) % self.recipe.eval_every:
            return {}
        if self.test_features is None:
            self.last_eval = accuracy_report(
                predict(self.module, self.test, self.ctx.device), self.labels, self.classes
            )
        else:
            self.module.head.eval()
            with torch.no_grad():
                logits = self.module.head(self.test_features.to(self.ctx.device)).float().cpu()
            self.last_eval = accuracy_report(logits.numpy(), self.labels, self.classes)
        return {"test_top1": self.last_eval["top1"], "test_top5": self.last_eval["top5"]}


@torch.no_grad()
def pooled_features(
    encoder: Encoder, feeder: Any, device: torch.device, batch: int = 64
) -> torch.Tensor:
    """The frozen encoder's features of every window of ``feeder``, in order, pooled over
    persons, time and joints as LinearHead does: (N, 1, 1, 1, C), which LinearHead takes."""
    encoder.eval()
    out = [
        encoder(clips.to(device)).mean(dim=(1, 2, 3)).float().cpu()
        for clips, _ in DataLoader(feeder, batch_size=batch, shuffle=False)
    ]
    return torch.cat(out)[:, None, None, None, :]


class FeatureViews(Dataset[tuple[torch.Tensor, int]]):
    """Pooled features of ``views`` augmented windows of every training clip, computed once;
    after ``set_epoch(e)`` items are ``(features of view e mod views, label)``."""

    def __init__(self, encoder: Encoder, feeder: Any, views: int, device: torch.device) -> None:
        self.labels = [s.label for s in feeder.samples]
        stacks = []
        for view in tqdm(range(views), desc="features of augmented views", leave=False):
            feeder.set_epoch(view)
            stacks.append(pooled_features(encoder, feeder, device))
        self.features = torch.stack(stacks)  # (views, N, 1, 1, 1, C)
        self.view = 0

    def set_epoch(self, epoch: int) -> None:
        self.view = epoch % self.features.shape[0]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.features[self.view, index], self.labels[index]


def classifier_checkpoint(
    recipe: ClassifyRecipe,
    data: SkeletonDataset,
    window: WindowSpec,
    metrics: dict[str, Any],
    pretrained_sha256: str | None = None,
    decision: dict[str, Any] | None = None,
) -> ClassifierCheckpoint:
    """The hand-over to evaluation and export: everything the model card needs."""
    stream = recipe.stream
    return ClassifierCheckpoint(
        head=recipe.kind,
        model=recipe.model,
        head_config=HeadConfig(dropout=recipe.dropout, hidden=recipe.hidden),
        labels=list(data.classes),
        window=dataclasses.asdict(window),
        source=data_source(recipe.data, data, fps=recipe.fps),
        recipe=recipe.model_dump(mode="json"),
        metrics={k: metrics[k] for k in ("top1", "top5", "clips") if k in metrics},
        pretrained_sha256=pretrained_sha256,
        none_label=NONE if stream is not None or recipe.none_data else None,
        decision=decision,
        stream_window_s=None if stream is None else stream.window_s,
    )


def load_streams_of(cfg: DataConfig) -> Any:
    from training.data.registry import load_streams

    return load_streams(cfg.dataset, cfg.root, cfg.benchmark, **cfg.options)


def calibrate_on(
    classifier: Classifier,
    samples: list[Sample],
    spec: WindowSpec,
    recipe: ClassifyRecipe,
    none: int,
    device: torch.device,
    windows: StreamWindows | None = None,
) -> dict[str, Any] | None:
    """The card's decision rule from ``samples`` (held out from training where the recipe can
    hold any out); None without samples. A stream recipe with ``false_alarms_per_min`` counts
    false alarms per background minute over its calibration videos' windows, in order. With
    the stream's ``windows`` (``samples`` are then its calibration videos' windows, named
    ``video@end``) the rule also carries the start and end lags it shows on those videos,
    which a stream's action events subtract (stream_data.stream_lags)."""
    from training.data.feeder import SkeletonFeeder

    if not samples:
        return None
    logits = predict(classifier, SkeletonFeeder(samples, spec, train=False), device)
    probs = torch.softmax(torch.from_numpy(logits), dim=1).numpy()
    labels = np.array([s.label for s in samples])
    stream = recipe.stream
    fps = recipe.fps or DEFAULT_FPS
    if stream is None or stream.false_alarms_per_min is None:
        rate = recipe.false_alarm_rate if stream is None else stream.false_alarm_rate
        decision = calibrate_threshold(probs, labels, none, rate)
    else:
        window_s = stream.calibration_stride / fps
        video = window_videos(samples)
        decision = calibrate_per_minute(
            probs, labels, video, none, stream.false_alarms_per_min, window_s
        )
    if windows is not None:
        decision |= stream_lags(probs, decision["threshold"], none, window_ends(samples),
                              windows.calibration_streams, windows.lookup, fps)  # fmt: skip
        decision["calibration_videos"] = [s.name for s in windows.calibration_streams]
    return decision


def stream_calibration(windows: StreamWindows, cfg: StreamTraining) -> list[Sample]:
    """Windows of the held-out training videos, every ``calibration_stride`` frames."""
    return fixed_windows(
        windows.calibration_streams, windows.lookup, windows.window_frames, cfg.tail_frames,
        cfg.calibration_stride, min_frames=min(MIN_PRESENT_FRAMES, windows.window_frames),
    )  # fmt: skip


def with_none_class(
    data: SkeletonDataset, recipe: ClassifyRecipe, persons: int
) -> tuple[SkeletonDataset, list[Sample]]:
    """``data`` with a last class "none" trained on ``recipe.none_data``, and the clips the
    decision rule is calibrated on: the held-out none clips and the training clips."""
    fps = recipe.fps or data.fps or 30.0
    none = none_clips(
        recipe.none_data, data.layout, persons, fps, len(data.classes), recipe.loop.seed
    )
    log.info("none class: %d training clips, %d held out for calibration", len(none.train),
             len(none.calibration))  # fmt: skip
    extended = dataclasses.replace(
        data, classes=[*data.classes, NONE], train=[*data.train, *none.train]
    )
    return extended, [*none.calibration, *data.train]


def stream_none_clips(data: SkeletonDataset, recipe: ClassifyRecipe) -> list[Sample]:
    """A stream recipe's ``none_data`` clips, labelled with its none class, to train beside
    its windows. Their held-out clips are not used: the held-out training videos calibrate."""
    fps = recipe.fps or DEFAULT_FPS  # resolved from the data by run_classify
    none = none_clips(recipe.none_data, data.layout, recipe.data.persons, fps,
                      data.classes.index(NONE), recipe.loop.seed).train  # fmt: skip
    log.info("none class: %d further training clips from none_data", len(none))
    return none


def labelled(samples: list[Sample], recipe: ClassifyRecipe) -> list[Sample]:
    if recipe.label_fraction >= 1.0:
        return samples
    from training.data.feeder import labelled_subset

    return labelled_subset(samples, recipe.label_fraction, recipe.fraction_seed)


def run_classify(
    recipe: ClassifyRecipe,
    out_dir: Path,
    ctx: DistContext,
    *,
    fresh: bool = False,
    stop_after_epochs: int | None = None,
) -> dict[str, Any]:
    """Train (or resume) a classifier and evaluate it on the test split; returns metrics."""
    from training.data.feeder import PooledFeeder, SkeletonFeeder

    seed_everything(recipe.loop.seed + ctx.rank)
    windows = None
    if recipe.stream is not None:
        windows = stream_windows(load_streams_of(recipe.data), recipe.stream, seed=recipe.loop.seed)
        data = windows.dataset
    else:
        data = load_data(recipe.data)
    require_clips(data, test=True)
    model, data_cfg = fit_to_data(recipe.model, recipe.data, data)
    # resolved here, so the run's config (compared on resume) and the card say the rate used
    fps = recipe.fps or data.fps or DEFAULT_FPS
    recipe = recipe.model_copy(update={"model": model, "data": data_cfg, "fps": fps})
    calibration: list[Sample] = []
    if windows is not None and recipe.stream is not None:
        calibration = stream_calibration(windows, recipe.stream)
    elif recipe.none_data:
        data, calibration = with_none_class(data, recipe, recipe.data.persons)
    window = recipe.data.window(data.layout)
    train_samples = labelled(data.train, recipe)
    train: Dataset[Any] = SkeletonFeeder(train_samples, window, train=True, seed=recipe.loop.seed)
    if windows is not None and recipe.stream is not None:
        parts: list[Dataset[Any]] = [
            StreamWindowFeeder(windows, recipe.stream, window, seed=recipe.loop.seed)
        ]
        if recipe.stream.instance_clips:
            clips = instance_samples(windows)
            parts.append(SkeletonFeeder(clips, window, train=True, seed=recipe.loop.seed + 1))
        if recipe.none_data:
            others = stream_none_clips(data, recipe)
            parts.append(SkeletonFeeder(others, window, train=True, seed=recipe.loop.seed + 2))
        train = parts[0] if len(parts) == 1 else PooledFeeder(parts)
    test = SkeletonFeeder(data.test, window, train=False)
    classifier = build_classifier(
        recipe.model, recipe.kind, len(data.classes), dropout=recipe.dropout, hidden=recipe.hidden
    )
    source_hash = None
    if recipe.pretrained is not None:
        weights, source_hash = load_encoder(recipe.pretrained, recipe.model, data.layout)
        classifier.encoder.load_state_dict(weights)
    if recipe.feature_views and ctx.distributed:
        raise ValueError("feature_views runs in one process: drop it or run without torchrun")
    task = ClassifyTask(recipe, classifier, test, data.classes, ctx)
    dataset: Dataset[Any] = train
    if recipe.feature_views:
        dataset = FeatureViews(classifier.encoder, train, recipe.feature_views, ctx.device)
    loop = TrainingLoop(
        task, dataset, recipe.loop, out_dir, ctx,
        run_config=recipe.model_dump(mode="json"), desc=f"{recipe.kind}[{recipe.name}]",
    )  # fmt: skip
    if not fresh:
        loop.resume()
    history = loop.run(stop_after_epochs=stop_after_epochs)
    loop.close()
    report = task.last_eval or evaluate_on(classifier, data, window, ctx.device)
    decision = None
    if calibration:
        none = len(data.classes) - 1
        decision = calibrate_on(classifier, calibration, window, recipe, none, ctx.device,
                                windows)  # fmt: skip
        log.info("decision rule calibrated on training-split data: %s", decision)
    metrics = {
        **{k: v for k, v in report.items() if k != "confusion"},
        "protocol": recipe.kind,
        "label_fraction": recipe.label_fraction,
        "labelled_clips": len(train_samples),
        "from_scratch": recipe.pretrained is None,
        "pretrained_sha256": source_hash,
        "dataset": {"name": data.name, "benchmark": data.benchmark, "skipped": len(data.skipped)},
        "config": recipe.model_dump(mode="json"),
        "epochs_run": loop.state.epoch,
        "decision": decision,
    }
    if ctx.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, default=str))
        confusion = np.array(report["confusion"])
        title = f"{recipe.name}: top-1 {report['top1']:.3f}"
        plot_confusion(confusion, data.classes, out_dir / "confusion.png", title=title)
        if history:
            plot_history(history, out_dir / "curves.png", title=f"{recipe.kind}: {recipe.name}")
        checkpoint = classifier_checkpoint(recipe, data, window, report, source_hash, decision)
        checkpoint.save(out_dir / CLASSIFIER_NAME, classifier.state_dict())
    return metrics
