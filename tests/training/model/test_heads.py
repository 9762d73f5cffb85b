"""Evaluation heads, the Classifier and the optimiser parameter groups (method.md section 5)."""

import pytest
import torch

from skeleton.layouts import get_layout
from training.model.config import ModelConfig, PretrainConfig
from training.model.encoder import Encoder
from training.model.heads import Classifier, FinetuneHead, LinearHead, param_groups
from training.model.pretrainer import Pretrainer

# Paper clip shape, small network.
SMALL = ModelConfig(width=32, depth=3, heads=4, decoder_width=32, decoder_depth=1)


@pytest.mark.parametrize("head_kind", ["linear", "finetune"])
def test_classifier_handles_a_clip_whose_second_person_is_absent(head_kind: str) -> None:
    torch.manual_seed(0)
    head = LinearHead(32, 60) if head_kind == "linear" else FinetuneHead(32, 25, 60)
    model = Classifier(Encoder(SMALL), head)
    clips = torch.randn(4, 2, 120, 25, 3)
    clips[0, 1] = 0.0
    logits = model(clips)  # training mode: batch statistics
    assert logits.shape == (4, 60) and torch.isfinite(logits).all()
    model.eval()
    alone = model(clips[:1])
    assert torch.isfinite(alone).all()
    torch.testing.assert_close(alone, model(clips)[:1], rtol=1e-4, atol=1e-5)


def test_linear_head_normalises_the_mean_token_feature_without_affine_parameters() -> None:
    torch.manual_seed(0)
    head = LinearHead(16, 5)
    assert not head.bn.affine and head.bn.eps == 1e-6
    assert head.fc.weight.std().item() == pytest.approx(0.01, rel=0.2)
    features = torch.randn(8, 2, 3, 4, 16)
    head.train()
    logits = head(features)
    pooled = features.mean(dim=(1, 2, 3))
    normed = (pooled - pooled.mean(0)) / (pooled.var(0, unbiased=False) + 1e-6).sqrt()
    torch.testing.assert_close(logits, head.fc(normed), rtol=1e-4, atol=1e-5)


def test_finetune_head_concatenates_joints_after_averaging_time() -> None:
    torch.manual_seed(0)
    head = FinetuneHead(16, 25, 7).eval()
    assert head.fc1.in_features == 25 * 16 and head.fc1.out_features == 2048
    assert head.dropout.p == 0.3
    features = torch.randn(2, 2, 3, 25, 16)
    # only the time-mean of each joint matters: shuffling time changes nothing
    shuffled = features[:, :, torch.tensor([2, 0, 1])]
    torch.testing.assert_close(head(features), head(shuffled))
    # swapping two joints does change the concatenated feature
    swapped = features[:, :, :, torch.tensor([1, 0, *range(2, 25)])]
    assert not torch.allclose(head(features), head(swapped))


def test_no_weight_decay_on_biases_norms_embeddings_and_the_mask_token() -> None:
    pre = Pretrainer(SMALL, PretrainConfig(), get_layout("ntu25").parts)
    groups = param_groups(pre, weight_decay=0.05)
    decay = {n for g in groups if g["weight_decay"] == 0.05 for n in g["names"]}
    free = {n for g in groups if g["weight_decay"] == 0.0 for n in g["names"]}
    assert {"encoder.embed.pos.temporal", "encoder.embed.pos.joint"} <= free
    assert {"decoder.pos.temporal", "decoder.mask_token", "encoder.norm.weight"} <= free
    assert "encoder.blocks.0.attn.qkv.bias" in free
    assert {"encoder.blocks.0.attn.qkv.weight", "decoder.pred.weight"} <= decay
    assert "encoder.embed.proj.weight" in decay
    assert not any(n.startswith("teacher.") for n in decay | free)  # frozen, not optimised
    trainable = {n for n, p in pre.named_parameters() if p.requires_grad}
    assert decay | free == trainable


def test_layer_wise_lr_decay_scales_deeper_layers_less() -> None:
    model = Classifier(Encoder(SMALL), FinetuneHead(32, 25, 10))
    groups = param_groups(model, weight_decay=0.05, layer_decay=0.8)
    scale = {n: g["lr_scale"] for g in groups for n in g["names"]}
    depth = SMALL.depth
    assert scale["encoder.embed.proj.weight"] == pytest.approx(0.8 ** (depth + 1))
    assert scale["encoder.embed.pos.joint"] == pytest.approx(0.8 ** (depth + 1))
    assert scale["encoder.blocks.0.mlp.fc1.weight"] == pytest.approx(0.8**depth)
    assert scale["encoder.blocks.2.norm1.bias"] == pytest.approx(0.8)
    assert scale["encoder.norm.weight"] == 1.0 and scale["head.fc2.weight"] == 1.0
    with pytest.raises(TypeError, match="Encoder"):
        param_groups(FinetuneHead(32, 25, 10), weight_decay=0.05, layer_decay=0.8)
