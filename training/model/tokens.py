"""Skeleton clips to tokens: 4-frame x xyz patches per joint, their linear embedding and the
learned temporal + joint position embeddings (method.md section 1)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class ShapeError(ValueError):
    """A tensor whose shape does not match the model configuration."""


def check_batch(x: Tensor, persons: int, frames: int, joints: int, dims: int) -> None:
    """Raise ShapeError unless ``x`` is a batch of clips (N, M, T, V, C) of this configuration."""
    expected = (persons, frames, joints, dims)
    if x.dim() != 5 or tuple(x.shape[1:]) != expected:
        raise ShapeError(
            f"expected clips (N, M={persons}, T={frames}, V={joints}, C={dims}), "
            f"got {tuple(x.shape)}"
        )


def patchify(x: Tensor, patch: int) -> Tensor:
    """(..., T, V, C) -> (..., T / patch, V, patch * C).

    The values of one token are ordered frame-major (t0 xyz, t1 xyz, ...), as the releases'
    Conv2d patch embedding and their patchify order them.
    """
    *lead, frames, joints, dims = x.shape
    if frames % patch:
        raise ShapeError(f"frames ({frames}) must be a multiple of the patch ({patch})")
    x = x.reshape(*lead, frames // patch, patch, joints, dims).transpose(-3, -2)
    return x.reshape(*lead, frames // patch, joints, patch * dims)


def person_patches(clips: Tensor, patch: int) -> Tensor:
    """Clips (N, M, T, V, C) -> per-person patches (N * M, T / patch, V, patch * C)."""
    return patchify(clips.flatten(0, 1), patch)


class PositionEmbedding(nn.Module):
    """Learned temporal (T' x C) plus joint (V x C) embeddings, summed per token."""

    def __init__(self, time_tokens: int, joints: int, width: int) -> None:
        super().__init__()
        self.temporal = nn.Parameter(torch.zeros(time_tokens, width))
        self.joint = nn.Parameter(torch.zeros(joints, width))

    def forward(self) -> Tensor:
        """(L, C) with L = T' x V, time-major like the flattened tokens."""
        return (self.temporal[:, None, :] + self.joint[None, :, :]).flatten(0, 1)

    def no_weight_decay(self) -> set[str]:
        return {"temporal", "joint"}


class TokenEmbedding(nn.Module):
    """Linear map of each token's raw values to the width, plus position embeddings."""

    def __init__(self, patch_dim: int, time_tokens: int, joints: int, width: int) -> None:
        super().__init__()
        self.proj = nn.Linear(patch_dim, width)
        self.pos = PositionEmbedding(time_tokens, joints, width)

    def forward(self, patches: Tensor, keep: Tensor | None = None) -> Tensor:
        """Patches (B, T', V, P) -> tokens (B, L, C), or (B, k, C) for the indices ``keep``
        (B, k) into the L flattened tokens: only those are embedded."""
        flat = patches.flatten(1, 2)
        pos = self.pos()
        result: Tensor
        if keep is None:
            result = self.proj(flat) + pos
            return result
        visible = flat.gather(1, keep.unsqueeze(-1).expand(-1, -1, flat.shape[-1]))
        result = self.proj(visible) + pos[keep]
        return result
