"""Evaluation heads on the encoder's token features (linear probe, fine-tuning), the
``Classifier`` that chains encoder and head, and the optimiser parameter groups (method.md 5)."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from training.model.blocks import init_weights, no_weight_decay_names
from training.model.config import ModelConfig
from training.model.encoder import Encoder


class LinearHead(nn.Module):
    """Mean over persons, time and joints -> BatchNorm without affine (eps 1e-6) -> Linear."""

    def __init__(self, width: int, classes: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(width, affine=False, eps=1e-6)
        self.fc = nn.Linear(width, classes)
        nn.init.trunc_normal_(self.fc.weight, std=0.01)
        nn.init.zeros_(self.fc.bias)

    def forward(self, features: Tensor) -> Tensor:
        """features (N, M, T', V, C) -> logits (N, classes)."""
        result: Tensor = self.fc(self.bn(features.mean(dim=(1, 2, 3))))
        return result


class FinetuneHead(nn.Module):
    """Dropout on token features, mean over time, the V joints concatenated (V x C), mean over
    persons, Linear -> hidden, BatchNorm, ReLU, Linear -> classes."""

    def __init__(
        self, width: int, joints: int, classes: int, dropout: float = 0.3, hidden: int = 2048
    ) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.fc1 = nn.Linear(width * joints, hidden)
        self.bn = nn.BatchNorm1d(hidden)
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(hidden, classes)
        init_weights(self)

    def forward(self, features: Tensor) -> Tensor:
        """features (N, M, T', V, C) -> logits (N, classes)."""
        x = self.dropout(features).mean(dim=2)  # (N, M, V, C)
        x = x.flatten(2).mean(dim=1)  # (N, V * C)
        result: Tensor = self.fc2(self.relu(self.bn(self.fc1(x))))
        return result


class Classifier(nn.Module):
    """Encoder + head: clips (N, M, T, V, 3) -> logits (N, classes). Straight-line forward, so
    it traces and exports to ONNX."""

    def __init__(self, encoder: Encoder, head: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head

    def forward(self, clips: Tensor) -> Tensor:
        result: Tensor = self.head(self.encoder(clips))
        return result


def build_classifier(
    model: ModelConfig, kind: str, classes: int, *, dropout: float = 0.3, hidden: int = 2048
) -> Classifier:
    """A fresh encoder with the head of ``kind`` (linear or finetune) for ``classes`` classes."""
    head: nn.Module
    if kind == "linear":
        head = LinearHead(model.width, classes)
    else:
        head = FinetuneHead(model.width, model.joints, classes, dropout, hidden)
    return Classifier(Encoder(model), head)


def _encoder_layers(model: nn.Module) -> tuple[str, int]:
    """The name prefix and depth of the (first) Encoder inside ``model``."""
    for prefix, m in model.named_modules():
        if isinstance(m, Encoder):
            return (f"{prefix}." if prefix else ""), m.cfg.depth
    raise TypeError(f"layer-wise lr decay needs a model holding an Encoder, got {type(model)}")


def _layer_id(name: str, prefix: str, depth: int) -> int:
    """0 for the token embedding, i + 1 for encoder block i, depth + 1 for everything else."""
    if not name.startswith(prefix):
        return depth + 1
    parts = name[len(prefix) :].split(".")
    if parts[0] == "embed":
        return 0
    if parts[0] == "blocks":
        return int(parts[1]) + 1
    return depth + 1


def param_groups(
    model: nn.Module, weight_decay: float, layer_decay: float | None = None
) -> list[dict[str, Any]]:
    """AdamW parameter groups: no weight decay on biases, norms, embeddings and mask tokens.

    With ``layer_decay`` (0.8 for fine-tuning) the model must hold an Encoder, and the learning
    rate of its layer i is scaled by layer_decay ** (depth + 1 - i), where the token embedding
    is layer 0, block b is layer b + 1 and everything else (final norm, head) depth + 1, as in
    BEiT / MAE. Each group carries ``lr_scale`` (for the schedule to multiply in) and ``names``.
    Frozen parameters (requires_grad False, e.g. the teacher) are left out.
    """
    no_decay = no_weight_decay_names(model)
    prefix, depth = _encoder_layers(model) if layer_decay is not None else ("", 0)
    groups: dict[tuple[int, bool], dict[str, Any]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        decays = name not in no_decay
        layer, scale = 0, 1.0
        if layer_decay is not None:
            layer = _layer_id(name, prefix, depth)
            scale = layer_decay ** (depth + 1 - layer)
        group = groups.setdefault(
            (layer, decays),
            {
                "params": [],
                "names": [],
                "weight_decay": weight_decay if decays else 0.0,
                "lr_scale": scale,
            },
        )
        group["params"].append(p)
        group["names"].append(name)
    return list(groups.values())
