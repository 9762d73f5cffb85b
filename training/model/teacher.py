"""MaskSem's teacher: an EMA copy of the student encoder whose label-free Grad-CAM against the
batch-mean clip, pooled over five body parts, says which tokens carry the action (method.md 3).

The gradient of (1 - score) reaches only the teacher's final token features, so it is computed
in closed form here: the teacher's transformer runs forward only, without an autograd graph.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from training.model.config import CamMode
from training.model.encoder import Encoder
from training.model.tokens import person_patches

# F.normalize's guard, so the closed-form gradient matches autograd through it.
_NORM_EPS = 1e-12


class PartsError(ValueError):
    """Body parts that do not partition the joints of the layout."""


def part_average_matrix(parts: Sequence[Sequence[int]], joints: int) -> Tensor:
    """(V, V) matrix A with (cam @ A)[..., j] = mean of cam over the part that holds joint j."""
    seen = sorted(j for part in parts for j in part)
    if seen != list(range(joints)):
        raise PartsError(
            f"body parts must hold each of the {joints} joints exactly once, got {list(parts)}"
        )
    avg = torch.zeros(joints, joints)
    for part in parts:
        idx = torch.tensor(list(part))
        avg[idx[:, None], idx[None, :]] = 1.0 / len(part)
    return avg


def grad_cam(features: Tensor, anchor: Tensor, *, relu: bool = True) -> Tensor:
    """Label-free Grad-CAM of sample token features against an anchor feature.

    features: (N, M, T', V, C), the teacher's final token features y of N samples.
    anchor: (C,), the teacher's pooled feature of the batch-mean clip.
    Returns (N, M, T', V): ReLU(channel mean of w * y), where w is the gradient of
    1 - mean_n cos(z_n, anchor) with respect to y (z_n = mean of y over persons and tokens),
    averaged over the T' x V tokens of each person. ``relu=False``: the map before the ReLU.
    """
    n, m, t, v, _ = features.shape
    z = features.mean(dim=(1, 2, 3))
    z_norm = z.norm(dim=-1, keepdim=True).clamp_min(_NORM_EPS)
    z_hat = z / z_norm
    a_hat = anchor / anchor.norm().clamp_min(_NORM_EPS)
    cos = (z_hat * a_hat).sum(dim=-1, keepdim=True)
    # d cos(z, a) / dz = (a_hat - cos z_hat) / |z|; y reaches z through a mean over M x T' x V
    # tokens and the score averages N samples, so every token of sample n has this gradient.
    weights = -(a_hat - cos * z_hat) / z_norm / (n * m * t * v)
    cam = torch.einsum("nmtvc,nc->nmtv", features, weights) / features.shape[-1]
    return F.relu(cam) if relu else cam


def part_pool(cam: Tensor, part_average: Tensor) -> Tensor:
    """Mean of a (..., V) map within each joint's body part, per temporal token."""
    return cam @ part_average.to(cam.dtype)


# The release binarises by scaling by this and clipping to [0, 1].
RELEASE_SCALE = 1e8


def cam_scores(pooled: Tensor, mode: CamMode) -> Tensor:
    """Scores of a part-pooled ReLU map (B, T', V). Binary: 1 where a part-segment's pooled
    value is positive (the release's rule). Clip: the release's arithmetic for it,
    clip(1e8 x, 0, 1), which differs from binary only where 0 < x < 1e-8. Continuous: divided
    by each person's maximum, so in [0, 1]."""
    if mode == "binary":
        return (pooled > 0).to(pooled.dtype)
    if mode == "clip":
        return (pooled * RELEASE_SCALE).clamp(0.0, 1.0)
    if mode == "continuous":
        peak = pooled.flatten(1).amax(dim=1).clamp_min(torch.finfo(pooled.dtype).tiny)
        return pooled / peak[:, None, None]
    raise ValueError(f"cam_scores takes binary, clip or continuous maps, got {mode!r}")


def top_segments(segments: Tensor, share: float) -> Tensor:
    """1 on the ``round(share x T' x P)`` part-segments of each person with the largest value,
    0 elsewhere. segments: (B, T', P)."""
    if not 0.0 < share < 1.0:
        raise ValueError(f"share must be in (0, 1), got {share}")
    flat = segments.flatten(1)
    count = round(share * flat.shape[1])
    marked = torch.zeros_like(flat)
    marked.scatter_(1, flat.topk(count, dim=1).indices, 1.0)
    return marked.view_as(segments)


class Teacher(nn.Module):
    """Frozen EMA copy of the student encoder that maps clips to semantic score maps."""

    part_average: Tensor
    part_of_joint: Tensor
    part_heads: Tensor

    def __init__(
        self,
        student: Encoder,
        parts: Sequence[Sequence[int]],
        mode: CamMode = "binary",
        share: float = 0.3,
    ) -> None:
        super().__init__()
        self.encoder = copy.deepcopy(student)
        self.encoder.requires_grad_(False)
        self.encoder.eval()
        self.mode: CamMode = mode
        self.share = share
        avg = part_average_matrix(parts, student.cfg.joints)
        self.register_buffer("part_average", avg, persistent=False)
        part_of = torch.empty(student.cfg.joints, dtype=torch.long)
        for index, part in enumerate(parts):
            part_of[list(part)] = index
        # one joint per part reads a part-segment's pooled value; every joint reads its part's
        self.register_buffer("part_of_joint", part_of, persistent=False)
        heads = torch.tensor([part[0] for part in parts], dtype=torch.long)
        self.register_buffer("part_heads", heads, persistent=False)

    def train(self, mode: bool = True) -> Teacher:
        super().train(mode)
        self.encoder.eval()  # deterministic features: no drop path in the teacher
        return self

    @torch.no_grad()
    def update(self, student: Encoder, momentum: float) -> None:
        """EMA step: teacher = momentum * teacher + (1 - momentum) * student."""
        mine: list[Tensor] = list(self.encoder.parameters())
        theirs = [p.detach() for p in student.parameters()]
        torch._foreach_mul_(mine, momentum)
        torch._foreach_add_(mine, theirs, alpha=1.0 - momentum)

    @torch.no_grad()
    def reset(self, student: Encoder) -> None:
        """Make the teacher an exact copy of the student (start of the MaskSem stage)."""
        self.encoder.load_state_dict(student.state_dict())

    @torch.no_grad()
    def features(self, clips: Tensor) -> tuple[Tensor, Tensor]:
        """Clips (N, M, T, V, 3) -> sample token features (N, M, T', V, C) and the anchor (C,).

        The batch-mean clip rides along as one extra sample: one teacher pass, not two.
        """
        n = clips.shape[0]
        cfg = self.encoder.cfg
        both = torch.cat([clips, clips.mean(dim=0, keepdim=True)])
        y = self.person_tokens(person_patches(both, cfg.patch))
        y = y.view(n + 1, cfg.persons, cfg.time_tokens, cfg.joints, cfg.width)
        return y[:n], y[n].mean(dim=(0, 1, 2))

    @torch.no_grad()
    def person_tokens(self, patches: Tensor) -> Tensor:
        """Per-person patches (B, T', V, P) -> final tokens (B, L, C).

        Absent persons (all zeros: the second person of a one-person clip) have identical
        tokens, so the first of them is run and its tokens copied to the others.
        """
        absent = ~patches.flatten(1).any(dim=1)
        if int(absent.sum()) < 2:
            result: Tensor = self.encoder.forward_tokens(patches)
            return result
        run = ~absent
        first_absent = int(absent.nonzero()[0])
        run[first_absent] = True
        order = run.nonzero().squeeze(1)
        tokens = self.encoder.forward_tokens(patches[order])
        out = tokens.new_empty((patches.shape[0],) + tokens.shape[1:])
        out[order] = tokens
        out[absent] = tokens[int((order == first_absent).nonzero()[0])]
        return out

    @torch.no_grad()
    def forward(self, clips: Tensor) -> Tensor:
        """Clips (N, M, T, V, 3) -> per-person score maps (N * M, T', V) for the sampler."""
        y, anchor = self.features(clips)
        return self.scores(grad_cam(y, anchor, relu=False).flatten(0, 1))

    def scores(self, signed: Tensor, mode: CamMode | None = None) -> Tensor:
        """Score maps (B, T', V) of the map before its ReLU, by ``mode`` (the teacher's own by
        default). The selective rules pool the signed map: after the ReLU, one positive joint
        makes its whole part-segment salient, and the part-segments whose joints are all
        negative tie at zero, so a ranking among them would be arbitrary."""
        mode = mode or self.mode
        if mode == "prerelu":
            return (part_pool(signed, self.part_average) > 0).to(signed.dtype)
        if mode == "top":
            segments = part_pool(signed, self.part_average)[..., self.part_heads]
            return top_segments(segments, self.share)[..., self.part_of_joint]
        return cam_scores(part_pool(F.relu(signed), self.part_average), mode)

    def segment_share(self, scores: Tensor) -> Tensor:
        """Share of the part-segments a score map (B, T', V) marks salient (score > 0)."""
        return (scores[..., self.part_heads] > 0).float().mean()
