"""MaskSem's teacher: Grad-CAM against an autograd computation through the whole teacher,
body-part pooling, binary / continuous maps, the EMA update and its isolation from gradients."""

import copy

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
