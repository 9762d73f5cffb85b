"""The pre-training decoder: visible encoder tokens plus a learned mask token at every masked
position, its own position embeddings, transformer blocks, one 4-frame x xyz patch per token."""

from __future__ import annotations

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

    def forward(self, latent: Tensor, keep: Tensor) -> Tensor:
        """Visible token features (B, k, C_enc) at indices ``keep`` (B, k) -> a prediction of
        the patch values of all L tokens (B, L, P)."""
        b, _, _ = latent.shape
        width = self.cfg.decoder_width
        full = self.mask_token.expand(b, self.cfg.tokens, width)
        x = full.scatter(1, keep.unsqueeze(-1).expand(-1, -1, width), self.embed(latent))
        x = x + self.pos()
        for block in self.blocks:
            x = block(x)
        result: Tensor = self.pred(self.norm(x))
        return result
