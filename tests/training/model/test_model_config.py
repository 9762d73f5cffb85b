"""The typed model and pre-training configurations carry the method's numbers."""

import pytest
from pydantic import ValidationError

from training.model.config import ModelConfig, PretrainConfig


def test_paper_defaults() -> None:
    cfg = ModelConfig()
    assert (cfg.persons, cfg.frames, cfg.joints, cfg.patch) == (2, 120, 25, 4)
    assert (cfg.width, cfg.depth, cfg.heads, cfg.mlp_ratio) == (256, 8, 8, 4.0)
    assert (cfg.decoder_width, cfg.decoder_depth) == (256, 3)
    assert (cfg.time_tokens, cfg.tokens, cfg.patch_dim) == (30, 750, 12)
    pre = PretrainConfig()
    assert (pre.mask_ratio, pre.tau, pre.alpha, pre.momentum) == (0.9, 0.8, 0.2, 0.99)
    assert pre.cam == "binary" and pre.normalise_targets


def test_seventy_five_of_750_tokens_stay_visible() -> None:
    # int(750 * (1 - 0.9)) is 74 in floating point; the method keeps 75.
    assert PretrainConfig().visible_tokens(750) == 75
    assert PretrainConfig(mask_ratio=0.75).visible_tokens(100) == 25


def test_target_orders_follow_the_masking_unless_set() -> None:
    pre = PretrainConfig()
    assert pre.target_weights("motion") == {1: 1.0}
    assert pre.target_weights("random") == {1: 1.0}
    assert pre.target_weights("semantic") == {1: pytest.approx(0.8), 2: 0.2}
    assert PretrainConfig(orders=(2,)).target_weights("semantic") == {2: 1.0}
    assert PretrainConfig(orders=(2, 1), alpha=0.5).target_weights("motion") == {1: 0.5, 2: 0.5}


@pytest.mark.parametrize(
    "bad",
    [
        {"frames": 122},  # not a multiple of the 4-frame patch
        {"frames": 4},  # one temporal token: no motion score
        {"width": 250},  # not divisible into 8 heads
        {"depth": 0},
        {"unknown_field": 1},
    ],
)
def test_model_config_rejects_inconsistent_shapes(bad: dict[str, int]) -> None:
    with pytest.raises(ValidationError):
        ModelConfig(**bad)


@pytest.mark.parametrize("orders", [(1, 2, 3), (1, 1), (-1,), ()])
def test_pretrain_config_rejects_bad_orders(orders: tuple[int, ...]) -> None:
    with pytest.raises(ValidationError):
        PretrainConfig(orders=orders)


def test_configs_are_frozen_plain_data() -> None:
    cfg = ModelConfig(width=32, depth=2)
    with pytest.raises(ValidationError):
        cfg.width = 64  # type: ignore[misc]
    assert ModelConfig.model_validate(cfg.model_dump()) == cfg
