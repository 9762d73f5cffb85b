"""The model card: the one hand-over between training and serving, read back exactly."""

import json

import pytest

from skeleton.card import CardError, ModelCard
from skeleton.clip import WindowSpec


def card(window: WindowSpec) -> ModelCard:
    return ModelCard(
        name="m", version="1", labels=("wave", "sit"), layout="utd20", window=window, fps=30.0,
        onnx_sha256="0" * 64, opset=18,
    )  # fmt: skip


def test_a_card_with_scale_normalisation_and_facing_reads_back_equal() -> None:
    window = WindowSpec(
        frames=32, persons=1, centre_joint=2, scale_bone=(3, 1), face_pairs=((4, 8), (12, 16))
    )
    original = card(window)
    again = ModelCard.from_dict(json.loads(original.to_json()))
    assert again == original
    assert again.to_dict() == json.loads(original.to_json())


@pytest.mark.parametrize(
    ("window", "field"),
    [
        (WindowSpec(frames=32, scale_bone=(3, 20)), "window.scale_bone"),
        (WindowSpec(frames=32, centre_joint=-1), "window.centre_joint"),
        (WindowSpec(frames=32, face_pairs=((4, 8), (12, 24))), "window.face_pairs"),
    ],
)
def test_a_card_naming_a_joint_the_layout_lacks_is_refused(window: WindowSpec, field: str) -> None:
    raw = json.loads(card(WindowSpec(frames=32)).to_json())
    raw["window"] = json.loads(json.dumps(card(window).to_dict()["window"]))
    with pytest.raises(CardError, match=f"my.card.json: field '{field}': joint .* of utd20"):
        ModelCard.from_dict(raw, source="my.card.json")
