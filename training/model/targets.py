"""Reconstruction targets: velocity v[t] = x[t+1] - x[t], acceleration a[t] = v[t+1] - v[t]
(last frame 0 at each step), cut into token patches and normalised per patch (method.md 4)."""

from __future__ import annotations

import torch
from torch import Tensor

from training.model.tokens import patchify

TARGET_NAMES = {0: "position", 1: "velocity", 2: "acceleration"}


def temporal_difference(x: Tensor, order: int) -> Tensor:
    """The ``order``-th forward difference along time of (..., T, V, C); each difference sets
    its last frame to 0, so acceleration's last two frames are (-v[T-2], 0)."""
    if order < 0:
        raise ValueError(f"difference order must be >= 0, got {order}")
    for _ in range(order):
        d = torch.zeros_like(x)
        d[..., :-1, :, :] = x[..., 1:, :, :] - x[..., :-1, :, :]
        x = d
    return x


def normalise_patches(patches: Tensor, eps: float = 1e-6) -> Tensor:
    """Subtract each patch's mean and divide by sqrt(var + eps) over its values (last dim).

    The variance is the unbiased one (divide by P - 1), as torch.var in the releases.
    """
    mean = patches.mean(dim=-1, keepdim=True)
    var = patches.var(dim=-1, keepdim=True)
    return (patches - mean) / (var + eps).sqrt()


def target_patches(persons: Tensor, order: int, patch: int, normalise: bool = True) -> Tensor:
    """Per-person clips (B, T, V, C) -> flattened target tokens (B, L, patch * C) of the given
    difference order (0 position, 1 velocity, 2 acceleration)."""
    target = patchify(temporal_difference(persons, order), patch).flatten(1, 2)
    return normalise_patches(target) if normalise else target


def masked_mse(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Squared error averaged over the values of a token, then over the masked tokens only.

    pred, target: (B, L, P); mask: (B, L) bool, True where the token was masked.
    """
    per_token = (pred - target).pow(2).mean(dim=-1)
    weights = mask.to(per_token.dtype)
    return (per_token * weights).sum() / weights.sum()
