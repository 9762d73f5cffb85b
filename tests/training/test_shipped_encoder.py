"""The pre-trained encoder in models/ is what `masksem finetune --pretrained` takes: it loads
into the shipped fine-tuning recipes (utd_finetune, utd_gesture, and utd_gesture_streams, the
default model's), maps onto NW-UCLA's joint order, a fine-tuning run starts from it, and the
default model was fine-tuned from it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from masksem.cli import app
from skeleton.card import sha256_of
from training.checkpoints import EncoderCheckpoint
from training.config_io import load_config
from training.model.encoder import Encoder
from training.recipes.classify import ClassifyRecipe, load_encoder

ENCODER = Path(__file__).resolve().parents[2] / "models" / "utd-masksem.encoder.pt"


def test_the_shipped_encoder_is_small_and_says_what_it_was_trained_on() -> None:
    assert ENCODER.stat().st_size < 8 * 2**20
    meta, weights = EncoderCheckpoint.read(ENCODER)
    assert meta.layout == "utd20" and meta.source is not None
    assert meta.source.dataset == "utd-mhad" and meta.source.benchmark == "xsub"
    assert meta.recipe["name"] == "utd-masksem" and meta.epochs == 40
    assert all(not k.startswith(("decoder.", "teacher.")) for k in weights)


def test_the_default_model_is_fine_tuned_from_the_shipped_encoder() -> None:
    card = json.loads((ENCODER.parent / "default.card.json").read_text())
    assert card["training"]["pretrained_sha256"] == sha256_of(ENCODER)
    assert card["training"]["recipe"]["name"] == "utd-gesture-streams"


@pytest.mark.parametrize("recipe", ["utd_finetune", "utd_gesture", "utd_gesture_streams"])
def test_it_loads_into_the_fine_tuning_recipes_on_utd20_and_ucla20(recipe: str) -> None:
    model = load_config(recipe, ClassifyRecipe).model
    weights, sha = load_encoder(ENCODER, model, "utd20")
    Encoder(model).load_state_dict(weights)  # strict: every encoder weight is there
    assert sha == sha256_of(ENCODER)
    mapped, _ = load_encoder(ENCODER, model, "ucla20")
    # ucla20 lists the trunk bottom-up, utd20 top-down: the joint embedding follows the names
    assert torch.equal(mapped["embed.pos.joint"][0], weights["embed.pos.joint"][3])


def test_masksem_finetune_starts_from_it(data_root: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, [
        "finetune", "-c", "utd_finetune", "--pretrained", str(ENCODER), "-o", str(tmp_path),
        "--device", "cpu", "--set", "loop.epochs=1", "--set", "data.limit=16",
        "--set", "loop.threads=1", "--set", "loop.batch_size=8",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["pretrained_sha256"] == sha256_of(ENCODER) and not metrics["from_scratch"]
