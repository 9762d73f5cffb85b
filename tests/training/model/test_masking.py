"""Motion-aware scores and the Gumbel top-k sampler (method.md section 3), checked against a
direct computation, exact keep-probabilities, and the e^(1/tau) masking odds."""

import itertools
import math

import numpy as np
import pytest
import torch

from training.model.masking import gumbel_top_k_mask, motion_aware_scores, random_mask


def test_motion_scores_match_a_direct_loop() -> None:
    g = torch.Generator().manual_seed(0)
    patches = torch.randn(3, 5, 4, 12, generator=g)
    scores = motion_aware_scores(patches)
    assert scores.shape == (3, 5, 4)
    for b, t, v in itertools.product(range(3), range(5), range(4)):
        prev, cur = (0, 1) if t == 0 else (t - 1, t)
        expected = sum(
            abs(float(patches[b, cur, v, i] - patches[b, prev, v, i])) for i in range(12)
        )
        assert scores[b, t, v].item() == pytest.approx(expected / 12, rel=1e-5)


def test_still_joints_score_zero_and_moving_ones_score_their_motion() -> None:
    patches = torch.zeros(1, 3, 2, 12)
    patches[0, 2, 1] = 0.6  # joint 1 jumps by 0.6 in every value at the third token
    scores = motion_aware_scores(patches)
    expected = torch.tensor([[[0.0, 0.0], [0.0, 0.0], [0.0, 0.6]]])
    torch.testing.assert_close(scores, expected)


def test_exactly_ten_percent_stay_visible_as_sorted_unique_indices() -> None:
    g = torch.Generator().manual_seed(1)
    scores = torch.rand(16, 30, 25, generator=g)
    mask = gumbel_top_k_mask(scores, visible=75, tau=0.8, generator=g)
    assert mask.keep.shape == (16, 75) and mask.masked.shape == (16, 750)
    assert mask.visible_count == 75
    assert torch.all(mask.masked.sum(dim=1) == 675)
    assert torch.all(mask.keep[:, 1:] > mask.keep[:, :-1])  # ascending, no repeats
    kept_flags = ~mask.masked.gather(1, mask.keep)
    assert torch.all(kept_flags)


def test_a_salient_token_is_e_to_the_one_over_tau_times_as_likely_to_be_masked() -> None:
    # Masking a single token is one Gumbel-max draw: P(token) is exactly softmax(s / (max tau)),
    # so each salient token (score 1) is e^(1/tau) = 3.49 times as likely as a token scoring 0.
    tau, rows, tokens = 0.8, 50_000, 20
    scores = torch.zeros(rows, tokens)
    scores[:, :10] = 1.0
    g = torch.Generator().manual_seed(2)
    mask = gumbel_top_k_mask(scores, visible=tokens - 1, tau=tau, generator=g)
    salient = mask.masked[:, :10].sum().item()
    other = mask.masked[:, 10:].sum().item()
    assert salient + other == rows
    odds = salient / other
    expected = math.exp(1 / tau)
    # p = P(salient) = 0.777; se(p / (1 - p)) = sqrt(p (1 - p) / rows) / (1 - p)^2 = 0.037:
    # 0.15 is four standard errors.
    assert odds == pytest.approx(expected, abs=0.15)


def exact_keep_probabilities(probs: np.ndarray, masked: int) -> np.ndarray:
    """P(token stays visible) when ``masked`` tokens are drawn one by one without replacement,
    each in proportion to ``probs`` among those left (the law Gumbel top-k samples)."""
    keep = np.zeros(len(probs))
    for order in itertools.permutations(range(len(probs)), masked):
        p, left = 1.0, 1.0
        for i in order:
            p *= probs[i] / left
            left -= probs[i]
        keep[[i for i in range(len(probs)) if i not in order]] += p
    return keep


def test_the_masked_set_is_sampled_without_replacement_in_proportion() -> None:
    tau, rows = 0.8, 100_000
    base = torch.tensor([1.0, 1.0, 0.5, 0.0, 0.0, 0.0, 0.0])
    probs = torch.softmax(base / (base.max() * tau), dim=0).double().numpy()
    expected = exact_keep_probabilities(probs, masked=5)
    g = torch.Generator().manual_seed(3)
    mask = gumbel_top_k_mask(base.expand(rows, -1), visible=2, tau=tau, generator=g)
    observed = (~mask.masked).double().mean(dim=0).numpy()
    se = np.sqrt(expected * (1 - expected) / rows)
    assert np.all(np.abs(observed - expected) < 4 * se), (observed, expected)
    assert observed[:2].mean() < observed[3:].mean()  # salient tokens stay visible less often


def test_an_all_zero_score_map_masks_uniformly_at_random() -> None:
    rows, tokens, visible = 40_000, 20, 2
    g = torch.Generator().manual_seed(4)
    mask = gumbel_top_k_mask(torch.zeros(rows, tokens), visible=visible, tau=0.8, generator=g)
    observed = (~mask.masked).double().mean(dim=0)
    p = visible / tokens
    se = math.sqrt(p * (1 - p) / rows)
    assert torch.all((observed - p).abs() < 4 * se)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    uniform = random_mask(8, tokens, visible, generator=g1)
    zero_map = gumbel_top_k_mask(torch.zeros(8, 4, 5), visible, 0.8, generator=g2)
    assert torch.equal(uniform.keep, zero_map.keep)


def test_the_sampler_rejects_impossible_visible_counts() -> None:
    with pytest.raises(ValueError, match="visible tokens"):
        gumbel_top_k_mask(torch.zeros(2, 10), visible=10, tau=0.8)
    with pytest.raises(ValueError, match="2 temporal tokens"):
        motion_aware_scores(torch.zeros(1, 1, 3, 12))
