"""Self-supervised pre-training: MAMP (motion-aware masking, velocity target) and MaskSem
(semantic-guided masking, hybrid target), as two stages or one run that switches masking."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, model_validator
from torch import nn

from skeleton.layouts import get_layout
from training.checkpoints import EncoderCheckpoint, TrainingState
from training.config_io import load_config
from training.distributed import DistContext
from training.loop import CHECKPOINT_NAME, LoopConfig, TrainingLoop, seed_everything
from training.model.config import MaskingKind, ModelConfig, PretrainConfig
from training.model.heads import param_groups
from training.model.pretrainer import Pretrainer
from training.recipes.common import (
    DataConfig,
    ExtraSource,
    data_source,
    fit_to_data,
    load_data,
    load_stream_source,
    require_clips,
)
from training.recipes.plots import plot_history
from training.recipes.stream_data import StreamPretraining

log = logging.getLogger(__name__)

ENCODER_NAME = "encoder.pt"


class InitConfig(BaseModel):
    """Where the weights of a later stage come from (the teacher starts as their copy)."""

    model_config = ConfigDict(extra="forbid")

    checkpoint: Path | None = None  # a finished pre-training run's checkpoint.pt
    recipe: str | None = None  # or run this recipe first, into <out>/stage1, and start from it


class PretrainRecipe(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["pretrain"] = "pretrain"
    name: str
    data: DataConfig
    # windows cut from data's untrimmed training recordings in place of its trimmed clips
    # (datasets with streams: pku-mmd, folder-streams)
    streams: StreamPretraining | None = None
    # other datasets' clips (or, with their own `streams:`, windows of their training
    # recordings) pre-trained on beside data's training split (their layouts must map)
    extra_data: list[ExtraSource] = []
    model: ModelConfig = ModelConfig()
    pretrain: PretrainConfig = PretrainConfig()
    masking: MaskingKind = "motion"
    # One run that uses motion-aware masking before this epoch and `masking` from it on.
    switch_epoch: int | None = None
    init: InitConfig = InitConfig()
    loop: LoopConfig = LoopConfig()

    @model_validator(mode="after")
    def _consistent(self) -> PretrainRecipe:
        if self.model.frames != self.data.frames or self.model.persons != self.data.persons:
            raise ValueError(
                f"model.frames/persons ({self.model.frames}/{self.model.persons}) must equal "
                f"data.frames/persons ({self.data.frames}/{self.data.persons})"
            )
        if self.init.checkpoint is not None and self.init.recipe is not None:
            raise ValueError("init: give a checkpoint or a recipe to run first, not both")
        return self

    def masking_at(self, epoch: int) -> MaskingKind:
        if self.switch_epoch is not None and epoch < self.switch_epoch:
            return "motion"
        return self.masking


class PretrainTask:
    """Pre-training as the loop sees it: batches of clips in, masked-prediction loss out."""

    def __init__(self, recipe: PretrainRecipe, parts: tuple[tuple[int, ...], ...]) -> None:
        self.recipe = recipe
        self.module: Pretrainer = Pretrainer(recipe.model, recipe.pretrain, parts)
        self.masking: MaskingKind = recipe.masking_at(0)

    def param_groups(self) -> list[dict[str, Any]]:
        return param_groups(self.module, self.recipe.loop.weight_decay)

    def start_epoch(self, epoch: int) -> None:
        masking = self.recipe.masking_at(epoch)
        if masking == "semantic" and self.masking != "semantic" and epoch > 0:
            self.module.reset_teacher()  # the single-run switch: the teacher starts as the student
        self.masking = masking

    def loss(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, float]]:
        clips = batch[0].to(next(self.module.parameters()).device, non_blocking=True)
        out = model(clips, self.masking)
        stats = {k: float(v) for k, v in out.items() if k != "loss"}
        if self.masking != "semantic":
            stats.pop("salient_share", None)
            stats.pop("salient_segments", None)
        return out["loss"], stats

    def after_step(self) -> None:
        if self.masking == "semantic":
            self.module.update_teacher()

    def evaluate(self, epoch: int) -> dict[str, float]:
        return {}


def load_pretrained_weights(module: Pretrainer, checkpoint: Path) -> None:
    """Start a stage from a finished run: student and decoder weights, teacher reset to them."""
    weights = TrainingState.read(checkpoint).model
    missing, unexpected = module.load_state_dict(weights, strict=False)
    wanted = [k for k in missing if not k.startswith("teacher.")]
    if wanted or unexpected:
        raise ValueError(
            f"{checkpoint} does not fit this model: missing {wanted[:5]}, unexpected "
            f"{list(unexpected)[:5]} (is it a pre-training checkpoint of the same architecture?)"
        )
    module.reset_teacher()


def run_pretrain(
    recipe: PretrainRecipe,
    out_dir: Path,
    ctx: DistContext,
    *,
    fresh: bool = False,
    stop_after_epochs: int | None = None,
) -> Path:
    """Run (or resume) a pre-training recipe; returns the path of its final checkpoint."""
    init_checkpoint = recipe.init.checkpoint
    if recipe.init.recipe is not None:
        stage1 = load_config(recipe.init.recipe, PretrainRecipe)
        init_checkpoint = run_pretrain(stage1, out_dir / "stage1", ctx, fresh=fresh)

    seed_everything(recipe.loop.seed + ctx.rank)
    from training.recipes.pretrain_data import pretrain_dataset, recordings_as_dataset

    main_streams = None
    if recipe.streams is not None:
        recordings = load_stream_source(recipe.data)
        data = recordings_as_dataset(recordings)
        main_streams = (recordings, recipe.streams)
    else:
        data = load_data(recipe.data)
    require_clips(data, test=False)
    model, data_cfg = fit_to_data(recipe.model, recipe.data, data)
    recipe = recipe.model_copy(update={"model": model, "data": data_cfg})
    layout = get_layout(data.layout)
    feeder = pretrain_dataset(
        data,
        main_streams,
        recipe.extra_data,
        recipe.data.window(data.layout),
        seed=recipe.loop.seed,
    )
    log.info("pre-training on %d items per epoch", len(feeder))
    task = PretrainTask(recipe, layout.parts)
    loop = TrainingLoop(
        task, feeder, recipe.loop, out_dir, ctx,
        run_config={**recipe.model_dump(mode="json"), "layout": data.layout},
        meta={"source": data_source(recipe.data, data, fps=None).model_dump(mode="json")},
        desc=f"pretrain[{recipe.name}]",
    )  # fmt: skip
    resumed = False if fresh else loop.resume()
    if resumed:
        log.info("resumed %s at epoch %d", out_dir / CHECKPOINT_NAME, loop.state.epoch)
        task.masking = recipe.masking_at(max(loop.state.epoch - 1, 0))
    elif init_checkpoint is not None:
        load_pretrained_weights(task.module, init_checkpoint)
    history = loop.run(stop_after_epochs=stop_after_epochs)
    loop.close()
    if ctx.is_main and history:
        plot_history(history, out_dir / "curves.png", title=f"pre-training: {recipe.name}")
    if ctx.is_main:
        save_encoder(loop.checkpoint_path, out_dir / ENCODER_NAME)
    return loop.checkpoint_path


def save_encoder(checkpoint: Path, out: Path) -> Path:
    """The encoder of a pre-training run's ``checkpoint.pt`` alone (no decoder, teacher or
    optimizer state): the small file fine-tuning starts from."""
    meta, weights = EncoderCheckpoint.read(checkpoint)
    meta.save(out, weights)
    return out
