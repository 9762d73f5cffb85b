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


def test_a_card_with_a_none_label_and_decision_rule_reads_back_equal() -> None:
    from dataclasses import replace

    rule = {"rule": "top_probability", "threshold": 0.6, "target_false_alarm_rate": 0.05}
    original = replace(card(WindowSpec(frames=32)), labels=("wave", "sit", "none"),
                       none_label="none", decision=rule)  # fmt: skip
    again = ModelCard.from_dict(json.loads(original.to_json()))
    assert again == original and again.threshold == 0.6
    assert again.start_lag_s == again.end_lag_s == 0.0  # a card from before they were measured
    lagged = replace(original, decision={**rule, "start_lag_s": 0.9, "end_lag_s": 0.4})
    read = ModelCard.from_dict(json.loads(lagged.to_json()))
    assert (read.start_lag_s, read.end_lag_s) == (0.9, 0.4)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"none_label": "nothing"}, "field 'none_label' 'nothing' is not a label"),
        ({"decision": {"rule": "top_probability", "threshold": 0.5}}, "'decision' needs a none"),
        ({"none_label": "sit", "decision": {"rule": "vote", "threshold": 0.5}}, "decision.rule"),
        ({"none_label": "sit", "decision": {"rule": "top_probability", "threshold": 2}},
         "decision.threshold"),
        ({"none_label": "sit", "decision": {"rule": "top_probability", "threshold": 0.5,
                                            "start_lag_s": -0.2}}, "decision.start_lag_s"),
        ({"none_label": "sit", "decision": {"rule": "top_probability", "threshold": 0.5,
                                            "start_lag_s": "1 s"}}, "decision.start_lag_s"),
        ({"none_label": "sit", "decision": {"rule": "top_probability", "threshold": 0.5,
                                            "end_lag_s": 61}}, "decision.end_lag_s"),
    ],
)  # fmt: skip
def test_a_malformed_none_label_or_rule_is_refused(changes: dict, message: str) -> None:  # type: ignore[type-arg]
    raw = {**json.loads(card(WindowSpec(frames=32)).to_json()), **changes}
    with pytest.raises(CardError, match=message):
        ModelCard.from_dict(raw, source="my.card.json")


def test_shown_label_applies_the_rule() -> None:
    from skeleton.card import shown_label

    labels = ("wave", "sit", "none")
    assert shown_label([0.5, 0.3, 0.2], labels, "none", 0.6) == 2  # below the threshold
    assert shown_label([0.7, 0.1, 0.2], labels, "none", 0.6) == 0
    assert shown_label([0.1, 0.2, 0.7], labels, "none", 0.0) == 2  # none on top stays none
    assert shown_label([0.5, 0.3, 0.2], labels, None, None) == 0  # no rule: the top label
