"""Which tokens the encoder sees: uniform random, MAMP's motion-aware scores, or any score map
(MaskSem's class activation map) through the same Gumbel top-k sampler (method.md section 3)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

# The releases' guards against log(0) and division by a zero maximum; an all-zero score map
# thereby becomes uniform probabilities.
_EPS = 1e-10


@dataclass(frozen=True)
class TokenMask:
    """A masking of B person-sequences of L tokens, k of them visible.

    keep: (B, k) int64, indices of the visible tokens in ascending order (for gather).
    masked: (B, L) bool, True where the token is hidden from the encoder.
    """

    keep: Tensor
    masked: Tensor

    @property
    def visible_count(self) -> int:
        return int(self.keep.shape[1])


def motion_aware_scores(patches: Tensor) -> Tensor:
    """MAMP's motion score per token: mean absolute difference between a token's raw values
    and those of the same joint's previous temporal token; the first temporal token copies
    the second's score. patches (B, T', V, P) -> (B, T', V)."""
    if patches.shape[1] < 2:
        raise ValueError(f"motion scores need at least 2 temporal tokens, got {patches.shape[1]}")
    motion = (patches[:, 1:] - patches[:, :-1]).abs().mean(dim=-1)
    return torch.cat([motion[:, :1], motion], dim=1)


def gumbel_top_k_mask(
    scores: Tensor, visible: int, tau: float, generator: torch.Generator | None = None
) -> TokenMask:
    """Sample which tokens to mask, without replacement, in proportion to
    softmax(scores / (max score x tau)) over the tokens of one person (Gumbel top-k): the
    ``L - visible`` largest of log-probability + Gumbel noise are masked, the rest kept.

    scores: (B, ...) non-negative, flattened per person; all zeros gives uniform masking.
    """
    flat = scores.detach().flatten(1).float()
    b, n = flat.shape
    if not 0 < visible < n:
        raise ValueError(f"visible tokens must be in (0, {n}), got {visible}")
    peak = flat.amax(dim=1, keepdim=True)
    log_prob = F.log_softmax(flat / (peak * tau + _EPS), dim=1)
    u = torch.rand(b, n, generator=generator, device=flat.device)
    gumbel = -torch.log(-torch.log(u + _EPS) + _EPS)
    keep = torch.topk(log_prob + gumbel, visible, dim=1, largest=False, sorted=False).indices
    keep = keep.sort(dim=1).values
    masked = torch.ones(b, n, dtype=torch.bool, device=flat.device)
    masked.scatter_(1, keep, False)
    return TokenMask(keep=keep, masked=masked)


def random_mask(
    batch: int,
    tokens: int,
    visible: int,
    device: torch.device | None = None,
    generator: torch.Generator | None = None,
) -> TokenMask:
    """Uniform random masking (MAE): the sampler with an all-zero score map."""
    return gumbel_top_k_mask(torch.zeros(batch, tokens, device=device), visible, 1.0, generator)
