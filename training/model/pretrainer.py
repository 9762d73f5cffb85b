"""Masked motion prediction: MAMP (motion-aware masking, velocity target) and MaskSem
(semantic-guided masking from the EMA teacher's Grad-CAM, hybrid velocity + acceleration target)
as one module whose forward returns the loss and the statistics to log."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import get_args

import torch
from torch import Tensor, nn

from training.model.config import MaskingKind, ModelConfig, PretrainConfig
from training.model.decoder import Decoder
from training.model.encoder import Encoder
from training.model.masking import gumbel_top_k_mask, motion_aware_scores
from training.model.targets import TARGET_NAMES, masked_mse, target_patches
from training.model.teacher import Teacher
from training.model.tokens import check_batch, patchify


class Pretrainer(nn.Module):
    """Student encoder, decoder and teacher. The teacher is always held, so checkpoints of both
    stages have the same keys; it is only run for semantic masking.

    ``parts``: the five tuples of joint indices of the layout (``get_layout(name).parts``).
    After loading a MAMP checkpoint to start the MaskSem stage, call ``reset_teacher()``; during
    it, call ``update_teacher()`` after every optimiser step.
    """

    def __init__(
        self,
        model: ModelConfig,
        pretrain: PretrainConfig,
        parts: Sequence[Sequence[int]],
    ) -> None:
        super().__init__()
        self.model_cfg = model
        self.cfg = pretrain
        self.encoder = Encoder(model)
        self.decoder = Decoder(model)
        self.teacher = Teacher(self.encoder, parts, pretrain.cam, pretrain.cam_share)

    def update_teacher(self) -> None:
        """One EMA step of the teacher towards the student encoder."""
        self.teacher.update(self.encoder, self.cfg.momentum)

    def reset_teacher(self) -> None:
        self.teacher.reset(self.encoder)

    def scores(self, clips: Tensor, patches: Tensor, masking: MaskingKind) -> Tensor | None:
        """Per-person masking scores (N * M, T', V), or None for uniform random masking."""
        if masking == "random":
            return None
        if masking == "motion":
            return motion_aware_scores(patches)
        result: Tensor | None = self.teacher(clips)
        return result

    def forward(self, clips: Tensor, masking: MaskingKind) -> dict[str, Tensor]:
        """clips (N, M, T, V, 3) -> {"loss": scalar with grad, and detached statistics:
        "masked_tokens" (per person), "salient_share" (share of tokens the CAM marks salient)
        and "salient_segments" (share of part-segments), both NaN without semantic masking,
        "loss_velocity", "loss_acceleration"}."""
        if masking not in get_args(MaskingKind):
            raise ValueError(f"masking must be one of {get_args(MaskingKind)}, got {masking!r}")
        mc = self.model_cfg
        check_batch(clips, mc.persons, mc.frames, mc.joints, mc.in_dims)
        persons = clips.flatten(0, 1)
        patches = patchify(persons, mc.patch)

        scores = self.scores(clips, patches, masking)
        visible = self.cfg.visible_tokens(mc.tokens)
        if scores is None:
            scores = torch.zeros(patches.shape[:3], device=clips.device)
        mask = gumbel_top_k_mask(scores, visible, self.cfg.tau)

        latent = self.encoder.forward_tokens(patches, mask.keep)
        pred = self.decoder(latent, mask.keep)

        weights = self.cfg.target_weights(masking)
        out: dict[str, Tensor] = {}
        loss = pred.new_zeros(())
        for order in sorted(set(weights) | {1, 2}):
            if order in weights:
                target = target_patches(persons, order, mc.patch, self.cfg.normalise_targets)
                term = masked_mse(pred, target, mask.masked)
                loss = loss + weights[order] * term
            else:
                with torch.no_grad():
                    target = target_patches(persons, order, mc.patch, self.cfg.normalise_targets)
                    term = masked_mse(pred, target, mask.masked)
            out[f"loss_{TARGET_NAMES.get(order, f'order{order}')}"] = term.detach()
        out["loss"] = loss
        out["masked_tokens"] = mask.masked.sum(dim=1).float().mean()
        nan = torch.tensor(math.nan, device=clips.device)
        semantic = masking == "semantic"
        out["salient_share"] = (scores > 0).float().mean() if semantic else nan
        out["salient_segments"] = self.teacher.segment_share(scores) if semantic else nan
        return out
