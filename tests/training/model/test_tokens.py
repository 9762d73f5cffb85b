"""Patch tokens and their embeddings (method.md section 1)."""

import pytest
import torch

from training.model.config import ModelConfig
from training.model.encoder import Encoder
from training.model.tokens import ShapeError, check_batch, patchify, person_patches


def test_patchify_groups_4_frames_of_xyz_per_joint_frame_major() -> None:
    # value = 100 * frame + 10 * joint + coordinate, so each entry says where it came from
    t, v, c = torch.meshgrid(torch.arange(8), torch.arange(3), torch.arange(3), indexing="ij")
    x = (100 * t + 10 * v + c).float()[None]  # (1, T=8, V=3, 3)
    p = patchify(x, 4)
    assert p.shape == (1, 2, 3, 12)
    assert p[0, 1, 2].tolist() == [420, 421, 422, 520, 521, 522, 620, 621, 622, 720, 721, 722]


def test_person_patches_fold_persons_into_the_batch() -> None:
    clips = torch.randn(3, 2, 8, 5, 3)
    p = person_patches(clips, 4)
    assert p.shape == (6, 2, 5, 12)
    assert torch.equal(p[3], patchify(clips[1, 1], 4))


def test_paper_embedding_has_750_tokens_and_truncated_normal_positions() -> None:
    torch.manual_seed(0)
    enc = Encoder(ModelConfig())
    pos = enc.embed.pos
    assert pos.temporal.shape == (30, 256) and pos.joint.shape == (25, 256)
    assert enc.embed.proj.in_features == 12 and enc.embed.proj.out_features == 256
    for table in (pos.temporal, pos.joint):
        assert table.std().item() == pytest.approx(0.02, rel=0.15)
        assert table.abs().max().item() <= 2.0  # truncated at [-2, 2] as in the releases
    assert pos().shape == (750, 256)
    # token (t', v) carries temporal[t'] + joint[v], flattened time-major
    torch.testing.assert_close(pos()[3 * 25 + 7], pos.temporal[3] + pos.joint[7])


def test_embedding_only_the_visible_tokens_equals_embedding_all_then_gathering() -> None:
    torch.manual_seed(0)
    cfg = ModelConfig(frames=16, width=32, depth=1, heads=4, decoder_width=32, decoder_depth=1)
    enc = Encoder(cfg)
    patches = torch.randn(3, 4, 25, 12)
    keep = torch.stack([torch.randperm(100)[:10].sort().values for _ in range(3)])
    all_tokens = enc.embed(patches)
    visible = enc.embed(patches, keep)
    torch.testing.assert_close(visible, all_tokens.gather(1, keep[..., None].expand(-1, -1, 32)))


def test_a_batch_of_the_wrong_shape_is_refused_with_the_expected_shape() -> None:
    with pytest.raises(ShapeError, match=r"V=25.*got \(4, 2, 120, 20, 3\)"):
        check_batch(torch.zeros(4, 2, 120, 20, 3), persons=2, frames=120, joints=25, dims=3)
    with pytest.raises(ShapeError, match="multiple of the patch"):
        patchify(torch.zeros(1, 10, 25, 3), 4)
