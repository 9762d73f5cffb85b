"""MaskSem's teacher: Grad-CAM against an autograd computation through the whole teacher,
body-part pooling, binary / continuous maps, the EMA update and its isolation from gradients."""

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from skeleton.layouts import get_layout
from training.model.config import ModelConfig
from training.model.encoder import Encoder
from training.model.teacher import (
    PartsError,
    Teacher,
    cam_scores,
    grad_cam,
    part_average_matrix,
    part_pool,
)
from training.model.tokens import person_patches

NTU = get_layout("ntu25")
TINY = ModelConfig(frames=16, width=32, depth=2, heads=4, decoder_width=32, decoder_depth=1)


def tiny_teacher(seed: int = 0) -> Teacher:
    torch.manual_seed(seed)
    return Teacher(Encoder(TINY), NTU.parts)


def direct_grad_cam(teacher: Teacher, clips: torch.Tensor) -> torch.Tensor:
    """Grad-CAM the slow, obvious way: autograd through a trainable copy of the teacher."""
    enc = copy.deepcopy(teacher.encoder).requires_grad_(True)
    n, m = clips.shape[:2]
    y = enc.forward_tokens(person_patches(clips, TINY.patch))
    y = y.view(n, m, TINY.time_tokens, TINY.joints, TINY.width)
    anchor_tokens = enc.forward_tokens(person_patches(clips.mean(dim=0, keepdim=True), 4))
    anchor = anchor_tokens.mean(dim=(0, 1))  # mean over persons and tokens
    z = y.mean(dim=(2, 3)).mean(dim=1)  # tokens, then persons
    score = (F.normalize(z, dim=-1) * F.normalize(anchor, dim=-1)).sum(-1).mean()
    (grad,) = torch.autograd.grad(1 - score, y)
    weights = grad.mean(dim=(2, 3), keepdim=True)  # average over the T' x V tokens
    return F.relu((weights * y).mean(dim=-1)).detach()


def test_grad_cam_equals_autograd_through_the_full_teacher() -> None:
    teacher = tiny_teacher()
    torch.manual_seed(1)
    clips = torch.randn(5, 2, 16, 25, 3)
    clips[1, 1] = 0  # an absent second person
    y, anchor = teacher.features(clips)
    ours = grad_cam(y, anchor)
    direct = direct_grad_cam(teacher, clips)
    assert ours.shape == (5, 2, 4, 25)
    assert (direct > 0).float().mean() > 0.1  # a map with something in it
    torch.testing.assert_close(ours, direct, rtol=1e-4, atol=1e-4 * direct.abs().max().item())
    # ...and the teacher's score map is that map pooled over body parts and binarised.
    pooled = part_pool(direct.flatten(0, 1), part_average_matrix(NTU.parts, 25))
    assert torch.equal(teacher(clips), (pooled > 0).float())


def test_absent_persons_share_one_teacher_pass_with_the_same_tokens() -> None:
    teacher = tiny_teacher()
    torch.manual_seed(2)
    clips = torch.randn(6, 2, 16, 25, 3)
    clips[::2, 1] = 0  # three one-person clips (and the batch-mean clip's second person is not)
    patches = person_patches(clips, TINY.patch)
    shared = teacher.person_tokens(patches)
    every = teacher.encoder.forward_tokens(patches)
    torch.testing.assert_close(shared, every, rtol=1e-5, atol=1e-5)
    # ...also when every second person is absent, the batch mean's included.
    clips[:, 1] = 0
    y, anchor = teacher.features(clips)
    full = teacher.encoder.forward_tokens(person_patches(clips, TINY.patch))
    torch.testing.assert_close(y.flatten(0, 1).flatten(1, 2), full, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(
        grad_cam(y, anchor), direct_grad_cam(teacher, clips), rtol=1e-4, atol=1e-6
    )


def test_teacher_runs_without_an_autograd_graph() -> None:
    teacher = tiny_teacher()
    clips = torch.randn(2, 2, 16, 25, 3, requires_grad=True)
    scores = teacher(clips)
    assert scores.grad_fn is None and not scores.requires_grad
    assert all(not p.requires_grad for p in teacher.parameters())


def test_part_pooling_spreads_a_joint_over_its_body_part_per_temporal_token() -> None:
    cam = torch.zeros(1, 2, 25)
    cam[0, 0, 6] = 0.6  # left wrist (ntu 0-based 6) at the first temporal token
    cam[0, 1, 13] = 0.2  # left knee at the second
    pooled = part_pool(cam, part_average_matrix(NTU.parts, 25))
    left_arm, left_leg = list(NTU.parts[1]), list(NTU.parts[3])
    torch.testing.assert_close(pooled[0, 0, left_arm], torch.full((6,), 0.1))
    torch.testing.assert_close(pooled[0, 1, left_leg], torch.full((4,), 0.05))
    assert pooled.sum().item() == pytest.approx(0.8)  # each part keeps its total
    binary = cam_scores(pooled, "binary")
    assert binary[0, 0, left_arm].tolist() == [1.0] * 6 and binary[0, 0].sum() == 6
    assert binary[0, 1, left_leg].tolist() == [1.0] * 4 and binary[0, 1].sum() == 4
    continuous = cam_scores(pooled, "continuous")
    torch.testing.assert_close(continuous[0, 0, left_arm], torch.ones(6))
    torch.testing.assert_close(continuous[0, 1, left_leg], torch.full((4,), 0.5))
    assert continuous.max() == 1.0 and continuous.min() == 0.0


def test_an_all_zero_map_stays_zero_in_both_modes() -> None:
    zero = torch.zeros(3, 4, 25)
    assert torch.equal(cam_scores(zero, "binary"), zero)
    assert torch.equal(cam_scores(zero, "continuous"), zero)


@pytest.mark.parametrize("name", ["ntu25", "utd20", "ucla20", "sbu15", "k4a32"])
def test_every_layout_has_a_five_part_partition(name: str) -> None:
    layout = get_layout(name)
    avg = part_average_matrix(layout.parts, layout.num_joints)
    torch.testing.assert_close(avg.sum(dim=0), torch.ones(layout.num_joints))


def test_parts_that_miss_or_repeat_a_joint_are_rejected() -> None:
    with pytest.raises(PartsError, match="25 joints"):
        part_average_matrix(NTU.parts[:4], 25)
    with pytest.raises(PartsError):
        part_average_matrix([(0, 1), (1, 2)], 3)


def test_ema_update_is_momentum_teacher_plus_one_minus_momentum_student() -> None:
    teacher = tiny_teacher(seed=0)
    torch.manual_seed(7)
    student = Encoder(TINY)
    before = [p.clone() for p in teacher.encoder.parameters()]
    teacher.update(student, momentum=0.99)
    for t0, t1, s in zip(before, teacher.encoder.parameters(), student.parameters(), strict=True):
        torch.testing.assert_close(t1, 0.99 * t0 + 0.01 * s)
    teacher.reset(student)
    for t, s in zip(teacher.encoder.parameters(), student.parameters(), strict=True):
        assert torch.equal(t, s)


def test_teacher_stays_in_eval_mode() -> None:
    teacher = Teacher(Encoder(TINY.model_copy(update={"drop_path": 0.5})), NTU.parts)
    teacher.train()
    assert not teacher.encoder.training
    clips = torch.randn(2, 2, 16, 25, 3)
    assert torch.equal(teacher(clips), teacher(clips))


def signed_maps(scale: float, seed: int = 0) -> torch.Tensor:
    """Random maps before the ReLU, (64 persons, 8 temporal tokens, 25 joints)."""
    return scale * torch.randn(64, 8, 25, generator=torch.Generator().manual_seed(seed))


def release_rule(signed: torch.Tensor) -> np.ndarray:
    """The public release's arithmetic in numpy: ReLU, mean over each part per temporal
    token, times 1e8, clipped to [0, 1]."""
    cam = np.maximum(signed.double().numpy(), 0.0)
    pooled = np.empty_like(cam)
    for part in NTU.parts:
        pooled[..., list(part)] = cam[..., list(part)].mean(axis=-1, keepdims=True)
    return np.clip(1e8 * pooled, 0.0, 1.0)


@pytest.mark.parametrize("scale", [1.0, 1e-3])
def test_the_release_rule_binary_equals_clip_1e8_x_on_random_maps(scale: float) -> None:
    teacher = tiny_teacher()
    signed = signed_maps(scale)
    expected = release_rule(signed)
    assert (expected == 0).any() and (expected == 1).any()  # both kinds of segment
    np.testing.assert_array_equal(teacher.scores(signed, "binary").numpy(), expected)
    np.testing.assert_allclose(teacher.scores(signed, "clip").numpy(), expected, rtol=1e-6)


def test_the_clip_rule_is_the_release_arithmetic_where_binary_differs() -> None:
    """Pooled values under 1e-8 are fractions under clip(1e8 x, 0, 1), ones under binary."""
    teacher = tiny_teacher()
    signed = signed_maps(1e-9, seed=2)
    clip = teacher.scores(signed, "clip").numpy()
    np.testing.assert_allclose(clip, release_rule(signed), rtol=1e-5, atol=1e-7)
    fractional = (clip > 0) & (clip < 1)
    assert fractional.mean() > 0.3
    assert (teacher.scores(signed, "binary").numpy()[fractional] == 1.0).all()


@pytest.mark.parametrize("share", [0.1, 0.3, 0.5])
def test_the_top_rule_marks_exactly_the_share_of_part_segments_asked_for(share: float) -> None:
    teacher = tiny_teacher()
    teacher.share = share
    signed = signed_maps(1.0, seed=3)
    marked = teacher.scores(signed, "top")
    segments = 8 * len(NTU.parts)
    pooled = part_pool(signed, part_average_matrix(NTU.parts, 25))
    for person in range(signed.shape[0]):
        for part in NTU.parts:  # a part-segment is marked whole or not at all
            block = marked[person][:, list(part)]
            assert (block == block[:, :1]).all()
        chosen = torch.stack([marked[person][:, p[0]] for p in NTU.parts], dim=1).bool()
        assert int(chosen.sum()) == round(share * segments)
        values = torch.stack([pooled[person][:, p[0]] for p in NTU.parts], dim=1)
        assert values[chosen].min() > values[~chosen].max()  # the largest pooled (signed) map
    assert teacher.segment_share(marked).item() == pytest.approx(round(share * segments) / segments)


def test_the_prerelu_rule_marks_segments_whose_signed_mean_is_positive() -> None:
    teacher = tiny_teacher()
    signed = signed_maps(1.0, seed=4)
    signed[0, 0, list(NTU.parts[1])] = torch.tensor([1.0, -0.3, -0.3, -0.3, -0.3, -0.3])
    prerelu, binary = teacher.scores(signed, "prerelu"), teacher.scores(signed, "binary")
    arm = list(NTU.parts[1])
    assert binary[0, 0, arm].tolist() == [1.0] * 6  # one positive joint marks the release's
    assert prerelu[0, 0, arm].tolist() == [0.0] * 6  # but not a part whose mean is negative
    expected = (part_pool(signed, part_average_matrix(NTU.parts, 25)) > 0).float()
    assert torch.equal(prerelu, expected)
    assert teacher.segment_share(prerelu) < teacher.segment_share(binary)
