"""The transformer encoder and decoder: size, visible-token and full forward, fused attention."""

import pytest
import torch

from training.model.blocks import Attention
from training.model.config import ModelConfig
from training.model.decoder import Decoder
from training.model.encoder import Encoder
from training.model.tokens import ShapeError, person_patches

TINY = ModelConfig(frames=16, width=32, depth=2, heads=4, decoder_width=32, decoder_depth=1)


def test_paper_encoder_has_about_6_3_million_parameters() -> None:
    enc = Encoder(ModelConfig())
    assert sum(p.numel() for p in enc.parameters()) == pytest.approx(6.3e6, rel=0.02)
    assert len(enc.blocks) == 8


def test_full_forward_returns_features_of_every_person_and_token() -> None:
    torch.manual_seed(0)
    enc = Encoder(TINY).eval()
    clips = torch.randn(3, 2, 16, 25, 3)
    feats = enc(clips)
    assert feats.shape == (3, 2, 4, 25, 32)
    tokens = enc.forward_tokens(person_patches(clips, 4))
    torch.testing.assert_close(feats.flatten(0, 1).flatten(1, 2), tokens)
    with pytest.raises(ShapeError):
        enc(torch.randn(3, 2, 12, 25, 3))


def test_visible_forward_of_all_tokens_in_any_order_is_the_full_forward_reordered() -> None:
    # Attention is global and order-free, and every token carries its own position: feeding
    # the encoder a permuted "visible" set must give the full forward, permuted the same way.
    torch.manual_seed(0)
    enc = Encoder(TINY).eval()
    patches = torch.randn(2, 4, 25, 12)
    order = torch.stack([torch.randperm(100) for _ in range(2)])
    full = enc.forward_tokens(patches)
    visible = enc.forward_tokens(patches, order)
    torch.testing.assert_close(visible, full.gather(1, order[..., None].expand(-1, -1, 32)))


def test_visible_tokens_do_not_see_the_masked_ones() -> None:
    torch.manual_seed(0)
    enc = Encoder(TINY).eval()
    patches = torch.randn(1, 4, 25, 12)
    keep = torch.tensor([[0, 5, 30, 99]])
    changed = patches.clone()
    changed[0, 2, 10] += 5.0  # token 2 * 25 + 10 = 60, not visible
    torch.testing.assert_close(enc.forward_tokens(patches, keep), enc.forward_tokens(changed, keep))


def test_fused_attention_equals_the_explicit_softmax_formula() -> None:
    torch.manual_seed(0)
    fused = Attention(32, 4, fused=True)
    explicit = Attention(32, 4, fused=False)
    explicit.load_state_dict(fused.state_dict())
    x = torch.randn(3, 50, 32)
    torch.testing.assert_close(fused(x), explicit(x), rtol=1e-5, atol=1e-5)


def test_decoder_puts_the_mask_token_everywhere_but_the_visible_positions() -> None:
    torch.manual_seed(0)
    dec = Decoder(TINY).eval()
    latent = torch.randn(2, 3, 32)
    keep = torch.tensor([[0, 1, 2], [10, 50, 99]])
    assert dec(latent, keep).shape == (2, 100, 12)
    x, _, _ = dec.inputs(latent, keep)
    pos = dec.pos().detach()
    for b in range(2):
        visible = keep[b]
        torch.testing.assert_close(x[b, visible], dec.embed(latent[b]).detach() + pos[visible])
        hidden = torch.ones(100, dtype=torch.bool)
        hidden[visible] = False
        torch.testing.assert_close(x[b, hidden], dec.mask_token.detach() + pos[hidden])
    assert dec.pos.temporal.shape == (4, 32) and dec.pos.joint.shape == (25, 32)


def test_decoder_shares_the_mask_rows_of_its_first_block_without_changing_the_result() -> None:
    """The first block projects the mask-token rows once per position: its output and every
    gradient equal those of the plain blocks applied to the full input."""
    torch.manual_seed(0)
    cfg = TINY.model_copy(update={"decoder_depth": 2})
    dec = Decoder(cfg)
    latent = torch.randn(3, 10, 32, requires_grad=True)
    keep = torch.stack([torch.randperm(100)[:10].sort().values for _ in range(3)])

    def plain() -> torch.Tensor:
        x, _, _ = dec.inputs(latent, keep)
        for block in dec.blocks:
            x = block(x)
        result: torch.Tensor = dec.pred(dec.norm(x))
        return result

    outs, grads = [], []
    for run in (dec, lambda *_: plain()):
        dec.zero_grad()
        latent.grad = None
        out = run(latent, keep)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        outs.append(out.detach())
        grads.append([latent.grad.clone()] + [p.grad.clone() for p in dec.parameters()])
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-5, atol=1e-5)
    assert dec.mask_token.grad is not None and dec.mask_token.grad.abs().sum() > 0
    for shared, full in zip(grads[0], grads[1], strict=True):
        # sums over samples in another order: float32 rounding, not a missing term
        torch.testing.assert_close(shared, full, rtol=1e-3, atol=1e-4)
