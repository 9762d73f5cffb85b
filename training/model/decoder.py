"""The pre-training decoder: visible encoder tokens plus a learned mask token at every masked
position, its own position embeddings, transformer blocks, one 4-frame x xyz patch per token."""

from __future__ import annotations

from typing import cast

import torch
from torch import Tensor, nn

from training.model.blocks import Block, init_weights
from training.model.config import ModelConfig
from training.model.tokens import PositionEmbedding


class Decoder(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        width = cfg.decoder_width
        self.embed = nn.Linear(cfg.width, width)
        self.mask_token = nn.Parameter(torch.zeros(width))
        self.pos = PositionEmbedding(cfg.time_tokens, cfg.joints, width)
        self.blocks = nn.ModuleList(
            Block(width, cfg.heads, cfg.mlp_ratio, cfg.qkv_bias, 0.0, cfg.fused_attention)
            for _ in range(cfg.decoder_depth)
        )
        self.norm = nn.LayerNorm(width)
        self.pred = nn.Linear(width, cfg.patch_dim)
        init_weights(self)

    def no_weight_decay(self) -> set[str]:
        return {"mask_token"}

    def inputs(self, latent: Tensor, keep: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The first block's input x (B, L, C): the embedded visible tokens ``latent``
        (B, k, C_enc) plus their position embedding at ``keep`` (B, k), the mask token plus the
        position embedding everywhere else. Also returns those two parts: the visible rows
        (B, k, C) and the mask-token rows of every position (L, C)."""
        b, _, _ = latent.shape
        width = self.cfg.decoder_width
        pos = self.pos()
        visible = self.embed(latent) + pos[keep]
        shared = self.mask_token + pos
        index = keep.unsqueeze(-1).expand(-1, -1, width)
        x = shared.expand(b, self.cfg.tokens, width).scatter(1, index, visible)
        return x, visible, shared

    def forward(self, latent: Tensor, keep: Tensor) -> Tensor:
        """Visible token features (B, k, C_enc) at indices ``keep`` (B, k) -> a prediction of
        the patch values of all L tokens (B, L, P)."""
        x, visible, shared = self.inputs(latent, keep)
        # Every masked row enters the first block with the same values at the same position.
        x = cast(Block, self.blocks[0]).forward_shared(x, keep, visible, shared)
        for block in self.blocks[1:]:
            x = block(x)
        result: Tensor = self.pred(self.norm(x))
        return result
