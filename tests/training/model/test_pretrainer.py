"""The pre-training module: MAMP and MaskSem losses, gradients only where the method says, and
that it learns."""

import math

import pytest
import torch

from skeleton.layouts import get_layout
from training.model.config import ModelConfig, PretrainConfig
from training.model.masking import gumbel_top_k_mask
from training.model.pretrainer import Pretrainer
from training.model.targets import masked_mse, target_patches

TINY = ModelConfig(frames=16, width=32, depth=2, heads=4, decoder_width=32, decoder_depth=1)
PARTS = get_layout("ntu25").parts


def tiny(pretrain: PretrainConfig | None = None, seed: int = 0) -> Pretrainer:
    torch.manual_seed(seed)
    return Pretrainer(TINY, pretrain or PretrainConfig(), PARTS)


def clips(n: int = 3, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.cumsum(0.05 * torch.randn(n, 2, 16, 25, 3, generator=g), dim=2)
    x[0, 1] = 0.0  # an absent second person
    return x


@pytest.mark.parametrize("masking", ["random", "motion", "semantic"])
def test_every_masking_gives_a_finite_loss_and_its_statistics(masking: str) -> None:
    out = tiny()(clips(), masking)  # type: ignore[arg-type]
    assert out["loss"].requires_grad and torch.isfinite(out["loss"])
    assert out["masked_tokens"].item() == 100 - 10  # 90 % of T' x V = 4 x 25
    assert set(out) == {"loss", "masked_tokens", "salient_share", "salient_segments",
                        "loss_velocity", "loss_acceleration"}  # fmt: skip
    for key in ("salient_share", "salient_segments"):
        share = out[key].item()
        if masking == "semantic":
            assert 0.0 <= share <= 1.0
        else:
            assert math.isnan(share)


@pytest.mark.parametrize("cam", ["binary", "clip", "continuous", "prerelu", "top"])
def test_every_cam_rule_drives_semantic_masking_and_logs_its_salient_share(cam: str) -> None:
    model = tiny(PretrainConfig(cam=cam, cam_share=0.25))  # type: ignore[arg-type]
    out = model(clips(), "semantic")
    assert torch.isfinite(out["loss"])
    segments = out["salient_segments"].item()
    if cam == "top":
        assert segments == pytest.approx(round(0.25 * 4 * 5) / 20)  # T' = 4, 5 parts
    else:
        assert 0.0 < segments < 1.0


def test_mamp_trains_on_velocity_and_masksem_on_the_hybrid_target() -> None:
    model = tiny()
    x = clips()
    torch.manual_seed(5)
    mamp = model(x, "motion")
    torch.testing.assert_close(mamp["loss"].detach(), mamp["loss_velocity"])
    masksem = model(x, "semantic")
    expected = 0.8 * masksem["loss_velocity"] + 0.2 * masksem["loss_acceleration"]
    torch.testing.assert_close(masksem["loss"].detach(), expected)
    acc_only = tiny(PretrainConfig(orders=(2,)))(x, "semantic")
    torch.testing.assert_close(acc_only["loss"].detach(), acc_only["loss_acceleration"])


def test_loss_is_the_masked_velocity_error_of_the_decoder_prediction() -> None:
    model = tiny()
    x = clips()
    persons = x.flatten(0, 1)
    patches = persons.reshape(6, 4, 4, 25, 3).transpose(2, 3).reshape(6, 4, 25, 12)
    torch.manual_seed(9)
    out = model(x, "random")
    torch.manual_seed(9)
    mask = gumbel_top_k_mask(torch.zeros(6, 4, 25), 10, 0.8)
    pred = model.decoder(model.encoder.forward_tokens(patches, mask.keep), mask.keep)
    expected = masked_mse(pred, target_patches(persons, 1, 4), mask.masked)
    torch.testing.assert_close(out["loss"], expected)


def test_gradients_reach_student_and_decoder_but_never_the_teacher() -> None:
    model = tiny()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    teacher_before = {k: v.clone() for k, v in model.teacher.state_dict().items()}
    out = model(clips(), "semantic")
    out["loss"].backward()
    assert model.decoder.mask_token.grad is not None
    assert all(p.grad is not None for p in model.encoder.parameters())
    assert all(p.grad is None and not p.requires_grad for p in model.teacher.parameters())
    opt.step()
    for k, v in model.teacher.state_dict().items():
        assert torch.equal(v, teacher_before[k]), k  # only the EMA moves the teacher
    model.update_teacher()
    for (k, t), s in zip(model.teacher.encoder.state_dict().items(),
                         model.encoder.state_dict().values(), strict=True):  # fmt: skip
        torch.testing.assert_close(t, 0.99 * teacher_before[f"encoder.{k}"] + 0.01 * s)


def test_checkpoints_of_both_stages_have_the_same_keys_and_reset_copies_the_student() -> None:
    mamp, masksem = tiny(seed=0), tiny(seed=1)
    masksem.load_state_dict(mamp.state_dict())
    masksem.reset_teacher()
    for t, s in zip(masksem.teacher.encoder.parameters(), mamp.encoder.parameters(), strict=True):
        assert torch.equal(t, s)


@pytest.mark.parametrize("masking", ["motion", "semantic"])
def test_a_few_steps_on_one_batch_lower_the_loss(masking: str) -> None:
    model = tiny()
    x = clips(n=4)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    torch.manual_seed(3)
    losses = []
    for _ in range(30):
        out = model(x, masking)  # type: ignore[arg-type]
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        model.update_teacher()
        losses.append(out["loss"].item())
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5


def test_unknown_masking_and_wrong_shapes_are_refused() -> None:
    model = tiny()
    with pytest.raises(ValueError, match="masking must be one of"):
        model(clips(), "semantic-guided")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="T=16"):
        model(torch.zeros(2, 2, 20, 25, 3), "random")
