"""Pre-norm transformer building blocks (timm style) shared by encoder and decoder, and the one
place where weights are initialised."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from training.model.tokens import PositionEmbedding, TokenEmbedding


class DropPath(nn.Module):
    """Stochastic depth: drop a whole residual branch per sample while training."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep


def explicit_attention(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """softmax(Q K^T / sqrt(d)) V with the full attention matrix, as the releases compute it."""
    attn = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)
    result: Tensor = attn.softmax(dim=-1) @ v
    return result


class Attention(nn.Module):
    """Global multi-head self-attention over all tokens of one sequence."""

    def __init__(self, dim: int, heads: int, qkv_bias: bool = True, fused: bool = True) -> None:
        super().__init__()
        self.heads = heads
        self.fused = fused
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.attend(self.qkv(x))

    def attend(self, qkv: Tensor) -> Tensor:
        """Projected queries, keys and values (B, N, 3C) -> attention output (B, N, C)."""
        b, n, c3 = qkv.shape
        c = c3 // 3
        # unbind (not permute) leaves q, k, v as strided views of the projection: the backward
        # stacks their gradients straight into its (b, n, 3, heads, d) layout, with no permuted
        # copy before the weight gradient, and the CPU flash kernel reads them as they are.
        q, k, v = (
            t.transpose(1, 2) for t in qkv.view(b, n, 3, self.heads, c // self.heads).unbind(2)
        )
        attend = F.scaled_dot_product_attention if self.fused else explicit_attention
        out = attend(q, k, v)
        result: Tensor = self.proj(out.transpose(1, 2).reshape(b, n, c))
        return result


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        result: Tensor = self.fc2(self.act(self.fc1(x)))
        return result


class Block(nn.Module):
    """x + attn(norm(x)), then x + mlp(norm(x)), each branch under stochastic depth."""

    def __init__(
        self,
        dim: int,
        heads: int,
        mlp_ratio: float,
        qkv_bias: bool = True,
        drop_path: float = 0.0,
        fused: bool = True,
    ) -> None:
        super().__init__()
        # LayerNorm eps stays at PyTorch's 1e-5, as in the releases.
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, qkv_bias=qkv_bias, fused=fused)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path: nn.Module = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        result: Tensor = x + self.drop_path(self.mlp(self.norm2(x)))
        return result

    def forward_shared(self, x: Tensor, keep: Tensor, visible: Tensor, shared: Tensor) -> Tensor:
        """The same as ``forward(x)`` for a sequence x (B, L, C) whose rows are ``visible``
        (B, k, C) at the indices ``keep`` (B, k) and ``shared[l]`` (L, C) at every other
        position l (the decoder's mask token plus position embedding): norm1 and the q/k/v
        projection of the shared rows run once per position instead of once per sample."""
        b, length, _ = x.shape
        qkv_visible = self.attn.qkv(self.norm1(visible))
        qkv_shared = self.attn.qkv(self.norm1(shared))
        width = qkv_shared.shape[-1]
        index = keep.unsqueeze(-1).expand(-1, -1, width)
        qkv = qkv_shared.expand(b, length, width).scatter(1, index, qkv_visible)
        x = x + self.drop_path(self.attn.attend(qkv))
        result: Tensor = x + self.drop_path(self.mlp(self.norm2(x)))
        return result


def init_weights(model: nn.Module) -> None:
    """Initialise as the releases do: linear layers Xavier-uniform with zero bias, LayerNorm
    (1, 0), position embeddings and mask tokens truncated normal (std 0.02). Token embeddings
    keep PyTorch's default, like the releases' Conv2d patch embedding (same fan-in, same law)."""
    for m in model.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, PositionEmbedding):
            nn.init.trunc_normal_(m.temporal, std=0.02)
            nn.init.trunc_normal_(m.joint, std=0.02)
    for name, p in model.named_parameters():
        if name.split(".")[-1] == "mask_token":
            nn.init.trunc_normal_(p, std=0.02)
    for m in model.modules():
        if isinstance(m, TokenEmbedding):
            m.proj.reset_parameters()


def no_weight_decay_names(model: nn.Module) -> set[str]:
    """Full names of parameters exempt from weight decay: biases and norms (all 1-d
    parameters), plus whatever a module lists in ``no_weight_decay()`` (embeddings, mask token)."""
    names = {n for n, p in model.named_parameters() if p.ndim <= 1}
    for prefix, m in model.named_modules():
        listed = getattr(m, "no_weight_decay", None)
        if callable(listed):
            names |= {f"{prefix}.{n}" if prefix else n for n in listed()}
    return names


def stochastic_depth(rate: float, depth: int) -> list[float]:
    """Drop-path probability per block, rising linearly from 0 to ``rate``."""
    return [float(r) for r in torch.linspace(0, rate, depth)]
