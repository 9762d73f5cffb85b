"""The skeleton transformer encoder: token embedding, pre-norm blocks with global attention over
the tokens of one person, final LayerNorm (method.md section 2)."""

from __future__ import annotations

from torch import Tensor, nn

from training.model.blocks import Block, init_weights, stochastic_depth
from training.model.config import ModelConfig
from training.model.tokens import TokenEmbedding, check_batch, person_patches


class Encoder(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = TokenEmbedding(cfg.patch_dim, cfg.time_tokens, cfg.joints, cfg.width)
        self.blocks = nn.ModuleList(
            Block(cfg.width, cfg.heads, cfg.mlp_ratio, cfg.qkv_bias, p, cfg.fused_attention)
            for p in stochastic_depth(cfg.drop_path, cfg.depth)
        )
        self.norm = nn.LayerNorm(cfg.width)
        init_weights(self)

    def forward_tokens(self, patches: Tensor, keep: Tensor | None = None) -> Tensor:
        """Per-person patches (B, T', V, P) -> final token features (B, L, C), or (B, k, C)
        for only the visible tokens ``keep`` (B, k) (indices into the L = T' x V tokens)."""
        x = self.embed(patches, keep)
        for block in self.blocks:
            x = block(x)
        result: Tensor = self.norm(x)
        return result

    def forward(self, clips: Tensor) -> Tensor:
        """Clips (N, M, T, V, 3) -> token features of every person (N, M, T', V, C)."""
        cfg = self.cfg
        check_batch(clips, cfg.persons, cfg.frames, cfg.joints, cfg.in_dims)
        tokens = self.forward_tokens(person_patches(clips, cfg.patch))
        return tokens.view(clips.shape[0], cfg.persons, cfg.time_tokens, cfg.joints, cfg.width)
