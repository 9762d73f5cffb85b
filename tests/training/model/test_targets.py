"""Velocity / acceleration targets, per-patch normalisation and the masked loss on hand-made
clips (method.md section 4)."""

import torch

from training.model.targets import (
    masked_mse,
    normalise_patches,
    target_patches,
    temporal_difference,
)


def quadratic_clip(frames: int = 8) -> torch.Tensor:
    """One person, V = 2 joints: joint 0 at (t^2, 2t, 5), joint 1 at rest at (1, 1, 1)."""
    t = torch.arange(frames, dtype=torch.float32)
    x = torch.ones(1, frames, 2, 3)
    x[0, :, 0, 0] = t**2
    x[0, :, 0, 1] = 2 * t
    x[0, :, 0, 2] = 5
    return x


def test_velocity_is_the_next_frame_minus_this_one_with_last_frame_zero() -> None:
    v = temporal_difference(quadratic_clip(), 1)
    t = torch.arange(7, dtype=torch.float32)
    torch.testing.assert_close(v[0, :7, 0, 0], 2 * t + 1)  # (t+1)^2 - t^2
    torch.testing.assert_close(v[0, :7, 0, 1], torch.full((7,), 2.0))
    assert torch.all(v[0, :, 0, 2] == 0) and torch.all(v[0, :, 1] == 0)
    assert torch.all(v[0, 7] == 0)


def test_acceleration_differences_the_velocity_including_its_zero_last_frame() -> None:
    v = temporal_difference(quadratic_clip(), 1)
    a = temporal_difference(quadratic_clip(), 2)
    torch.testing.assert_close(a[0, :6, 0, 0], torch.full((6,), 2.0))
    # a[T-2] = v[T-1] - v[T-2] = 0 - v[T-2]; a[T-1] = 0
    torch.testing.assert_close(a[0, 6], -v[0, 6])
    assert torch.all(a[0, 7] == 0)
    assert torch.equal(temporal_difference(quadratic_clip(), 0), quadratic_clip())


def test_patch_normalisation_uses_the_12_values_of_each_patch() -> None:
    patch = torch.arange(12, dtype=torch.float32).reshape(1, 1, 12)
    # mean 5.5, unbiased variance sum((i - 5.5)^2) / 11 = 13
    expected = (patch - 5.5) / (13.0 + 1e-6) ** 0.5
    torch.testing.assert_close(normalise_patches(patch), expected)
    constant = torch.full((1, 1, 12), 3.0)
    assert torch.all(normalise_patches(constant) == 0)


def test_velocity_targets_are_cut_into_4_frame_xyz_patches() -> None:
    x = quadratic_clip(frames=8)
    raw = target_patches(x, order=1, patch=4, normalise=False)
    assert raw.shape == (1, 2 * 2, 12)  # T' = 2 temporal tokens x V = 2 joints
    # token (t'=0, joint 0): frames 0..3, frame-major xyz
    expected = torch.tensor([1.0, 2, 0, 3, 2, 0, 5, 2, 0, 7, 2, 0])
    torch.testing.assert_close(raw[0, 0], expected)
    # token (t'=1, joint 0) is flattened after both joints of t'=0
    torch.testing.assert_close(raw[0, 2, :3], torch.tensor([9.0, 2, 0]))
    torch.testing.assert_close(raw[0, 2, -3:], torch.tensor([0.0, 0, 0]))  # last frame
    normed = target_patches(x, order=1, patch=4)
    torch.testing.assert_close(normed, normalise_patches(raw))


def test_masked_loss_averages_over_values_then_masked_tokens_only() -> None:
    pred = torch.zeros(2, 3, 4)
    target = torch.zeros(2, 3, 4)
    target[0, 0] = 2.0  # masked: per-token error 4
    target[0, 1] = 1.0  # visible: ignored
    target[1, 2, :2] = 2.0  # masked: per-token error (4 + 4) / 4 = 2
    mask = torch.tensor([[True, False, True], [False, False, True]])
    assert masked_mse(pred, target, mask).item() == (4.0 + 0.0 + 2.0) / 3
