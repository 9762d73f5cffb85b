"""Typed configurations of the networks (``ModelConfig``) and of masked pre-training
(``PretrainConfig``). Defaults are the papers' NTU60 recipe; small models override fields."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MaskingKind = Literal["random", "motion", "semantic"]
CamMode = Literal["binary", "clip", "continuous", "prerelu", "top"]


class ModelConfig(BaseModel):
    """Shapes of the input clips, the encoder and the pre-training decoder."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    persons: int = Field(default=2, ge=1, description="M, persons per clip")
    frames: int = Field(default=120, ge=1, description="T, frames per clip")
    joints: int = Field(default=25, ge=1, description="V, joints of the layout")
    in_dims: int = Field(default=3, ge=1, description="coordinates per joint")
    patch: int = Field(default=4, ge=1, description="frames per temporal patch (one token)")
    width: int = Field(default=256, ge=1, description="encoder token width")
    depth: int = Field(default=8, ge=1, description="encoder blocks")
    heads: int = Field(default=8, ge=1, description="attention heads (encoder and decoder)")
    mlp_ratio: float = Field(default=4.0, gt=0)
    qkv_bias: bool = True
    decoder_width: int = Field(default=256, ge=1)
    decoder_depth: int = Field(default=3, ge=1, description="3 for NTU60, 5 for NTU120 and PKU-MMD")
    drop_path: float = Field(
        default=0.0, ge=0.0, lt=1.0, description="encoder stochastic depth (max)"
    )
    fused_attention: bool = Field(
        default=True,
        description="F.scaled_dot_product_attention; False computes softmax(QK^T)V explicitly "
        "as the public releases do (for comparisons only: slower, more memory)",
    )

    @model_validator(mode="after")
    def _check_shapes(self) -> ModelConfig:
        if self.frames % self.patch:
            raise ValueError(f"frames ({self.frames}) must be a multiple of patch ({self.patch})")
        if self.frames // self.patch < 2:
            raise ValueError("need at least two temporal tokens (frames >= 2 * patch)")
        for name, width in (("width", self.width), ("decoder_width", self.decoder_width)):
            if width % self.heads:
                raise ValueError(f"{name} ({width}) must be a multiple of heads ({self.heads})")
        return self

    @property
    def time_tokens(self) -> int:
        """T' = T / patch: temporal tokens per joint."""
        return self.frames // self.patch

    @property
    def tokens(self) -> int:
        """L = T' x V: tokens per person."""
        return self.time_tokens * self.joints

    @property
    def patch_dim(self) -> int:
        """Values in one token: patch frames x coordinates."""
        return self.patch * self.in_dims


class PretrainConfig(BaseModel):
    """Masking, targets and teacher of MAMP / MaskSem pre-training (method.md sections 3-4)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mask_ratio: float = Field(default=0.9, gt=0.0, lt=1.0, description="share of tokens masked")
    tau: float = Field(default=0.8, gt=0.0, description="0.80 NTU60 / PKU-MMD, 0.75 NTU120")
    alpha: float = Field(
        default=0.2, ge=0.0, le=1.0, description="weight of the higher target order"
    )
    orders: tuple[int, ...] | None = Field(
        default=None,
        description="temporal difference orders of the targets (0 position, 1 velocity, "
        "2 acceleration); one order, or two mixed as (1 - alpha) low + alpha high. None: by "
        "masking, (1,) for random/motion (MAMP) and (1, 2) for semantic (MaskSem)",
    )
    normalise_targets: bool = Field(
        default=True, description="per-patch mean/std target normalisation"
    )
    momentum: float = Field(default=0.99, ge=0.0, le=1.0, description="teacher EMA momentum")
    cam: CamMode = Field(
        default="binary",
        description="how the teacher's map becomes scores (training/model/teacher.py): binary "
        "(the release: a part-segment is salient where its pooled map is positive), clip (the "
        "release's own arithmetic, clip(1e8 x, 0, 1)), continuous ([0, 1], divided by the "
        "peak), prerelu (binary, the map pooled before the ReLU), top (the cam_share of the "
        "part-segments with the largest pooled map, before the ReLU)",
    )
    cam_share: float = Field(
        default=0.3, gt=0.0, lt=1.0, description="cam: top, the share of part-segments marked"
    )

    @model_validator(mode="after")
    def _check_orders(self) -> PretrainConfig:
        if self.orders is not None:
            if not 1 <= len(self.orders) <= 2 or len(set(self.orders)) != len(self.orders):
                raise ValueError(f"orders must be one or two distinct orders, got {self.orders}")
            if any(o < 0 for o in self.orders):
                raise ValueError(f"orders must be >= 0, got {self.orders}")
        return self

    def visible_tokens(self, tokens: int) -> int:
        """Tokens per person that stay visible: round(L x (1 - ratio)), 75 of 750 by default.

        The releases compute int(750 * (1 - 0.9)) = 74 through float error; method.md says 75.
        """
        return max(1, min(tokens - 1, round(tokens * (1.0 - self.mask_ratio))))

    def target_orders(self, masking: MaskingKind) -> tuple[int, ...]:
        if self.orders is not None:
            return tuple(sorted(self.orders))
        return (1, 2) if masking == "semantic" else (1,)

    def target_weights(self, masking: MaskingKind) -> dict[int, float]:
        """Loss weight per target order: 1 for a single order, else (1 - alpha, alpha)."""
        orders = self.target_orders(masking)
        if len(orders) == 1:
            return {orders[0]: 1.0}
        return {orders[0]: 1.0 - self.alpha, orders[1]: self.alpha}
