"""The model card: everything a server needs to feed an exported model exactly as training did.

Export writes it beside the ONNX file (``model.card.json``) and into the ONNX metadata under
:data:`METADATA_KEY`; the service reads it back with :func:`load_card` and refuses a model
whose card is missing, malformed, names an unknown layout, or whose sha256 does not match.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from skeleton.clip import WindowSpec
from skeleton.layouts import LAYOUTS

CARD_VERSION = 1
METADATA_KEY = "masksem.card"
INPUT_NAME = "skeleton"  # (N, persons, frames, joints, 3) float32
OUTPUT_NAME = "logits"  # (N, classes) float32


class CardError(ValueError):
    """A model card that is missing, malformed, or does not belong to its ONNX file."""


@dataclass(frozen=True, kw_only=True)
class CardContent:
    """What training says about a model: its labels, layout, window and provenance."""

    name: str
    version: str
    labels: tuple[str, ...]
    layout: str
    window: WindowSpec
    fps: float
    training: dict[str, Any] = field(default_factory=dict)  # data, recipe, checkpoint hash
    metrics: dict[str, Any] = field(default_factory=dict)  # test-split accuracy per variant
    # Span of recent frames a live stream classifies (seconds); None: window.frames / fps.
    stream_window_s: float | None = None
    # Continuous recognition: the label that means "none of my actions is happening", and the
    # rule a stream applies before it shows a label (see DECISION_RULES); None: every window
    # shows its top label, as a model trained on trimmed clips must.
    none_label: str | None = None
    decision: dict[str, Any] | None = None


#: ``top_probability``: show the top label when it is not the none label and its (smoothed)
#: probability reaches ``threshold``; otherwise show the none label.
DECISION_RULES = ("top_probability",)


def shown_label(
    probs: Any, labels: tuple[str, ...], none_label: str | None, threshold: float | None
) -> int:
    """Index of the label a stream shows for class probabilities ``probs`` under the rule."""
    best = max(range(len(labels)), key=lambda i: float(probs[i]))
    if none_label is None or threshold is None:
        return best
    none = labels.index(none_label)
    return best if best != none and float(probs[best]) >= threshold else none


@dataclass(frozen=True, kw_only=True)
class ModelCard(CardContent):
    """The content plus what export adds about the ONNX file itself."""

    onnx_sha256: str
    opset: int
    variant: str = "fp32"  # fp32 | int8 | fp16
    # True when the graph has a separate single-person path (absent second person skipped).
    single_person_input: bool = False
    card_version: int = CARD_VERSION

    @property
    def preprocessing(self) -> dict[str, Any]:
        """How a raw clip becomes the model input, in the terms of ``skeleton.clip``."""
        return {"function": "skeleton.clip.inference_window", "window": asdict(self.window)}

    def to_dict(self) -> dict[str, Any]:
        # JSON's shapes (tuples as lists), so a card read back from JSON compares equal.
        out: dict[str, Any] = json.loads(json.dumps(asdict(self)))
        out["preprocessing"] = {**self.preprocessing, "window": out["window"]}
        out["input"] = {"name": INPUT_NAME, "shape": ["N", *self.input_shape[1:]]}
        out["output"] = {"name": OUTPUT_NAME, "shape": ["N", len(self.labels)]}
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @property
    def input_shape(self) -> tuple[int, int, int, int, int]:
        joints = LAYOUTS[self.layout].num_joints
        return (1, self.window.persons, self.window.frames, joints, 3)

    @classmethod
    def from_dict(cls, raw: Any, *, source: str = "card") -> ModelCard:
        if not isinstance(raw, dict):
            kind = type(raw).__name__
            raise CardError(f"{source}: a model card must be a JSON object, got {kind}")
        data = dict(raw)
        for derived in ("preprocessing", "input", "output"):
            data.pop(derived, None)
        known = {f.name for f in fields(cls)}
        required = {
            f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING
        }
        missing = sorted(required - data.keys())
        if missing:
            raise CardError(f"{source}: missing field(s) {', '.join(missing)}")
        unknown = sorted(data.keys() - known)
        if unknown:
            raise CardError(f"{source}: unknown field(s) {', '.join(unknown)}")
        if data.get("card_version", CARD_VERSION) != CARD_VERSION:
            raise CardError(f"{source}: card_version {data['card_version']} is not {CARD_VERSION}")
        try:
            data["window"] = WindowSpec.from_dict(data["window"])
            data["labels"] = tuple(str(label) for label in data["labels"])
        except (TypeError, ValueError) as err:
            raise CardError(f"{source}: field 'window' or 'labels' is malformed: {err}") from err
        card = cls(**data)
        card.validate(source=source)
        return card

    def validate(self, *, source: str = "card") -> None:
        if self.layout not in LAYOUTS:
            known = ", ".join(sorted(LAYOUTS))
            raise CardError(f"{source}: field 'layout': unknown layout {self.layout!r} ({known})")
        if not self.labels or len(set(self.labels)) != len(self.labels):
            raise CardError(f"{source}: field 'labels' must be a non-empty list of unique names")
        if self.window.frames < 1 or self.window.persons < 1:
            raise CardError(f"{source}: field 'window' needs frames >= 1 and persons >= 1")
        joints = LAYOUTS[self.layout].num_joints
        named = [("centre_joint", self.window.centre_joint)]
        named += [("scale_bone", j) for j in self.window.scale_bone or ()]
        named += [("face_pairs", j) for pair in self.window.face_pairs or () for j in pair]
        for what, joint in named:
            if joint is not None and not 0 <= joint < joints:
                raise CardError(
                    f"{source}: field 'window.{what}': joint {joint} is not one of the "
                    f"{joints} joints of {self.layout}"
                )
        if not (self.fps > 0):
            raise CardError(f"{source}: field 'fps' must be positive, got {self.fps}")
        digest = self.onnx_sha256
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise CardError(f"{source}: field 'onnx_sha256' must be 64 lower-case hex digits")
        if self.stream_window_s is not None and not (self.stream_window_s > 0):
            raise CardError(f"{source}: field 'stream_window_s' must be positive or null")
        if self.variant not in ("fp32", "int8", "fp16"):
            raise CardError(f"{source}: field 'variant' must be fp32, int8 or fp16")
        if self.none_label is not None and self.none_label not in self.labels:
            raise CardError(f"{source}: field 'none_label' {self.none_label!r} is not a label")
        if self.decision is not None:
            if self.none_label is None:
                raise CardError(f"{source}: field 'decision' needs a none_label")
            rule, threshold = self.decision.get("rule"), self.decision.get("threshold")
            if rule not in DECISION_RULES:
                raise CardError(f"{source}: field 'decision.rule' must be one of {DECISION_RULES}")
            if not isinstance(threshold, int | float) or not 0.0 <= threshold <= 1.01:
                raise CardError(f"{source}: field 'decision.threshold' must be in [0, 1.01]")
            for key in ("start_lag_s", "end_lag_s"):
                lag = self.decision.get(key, 0.0)
                if isinstance(lag, bool) or not isinstance(lag, int | float) or not 0 <= lag <= 60:
                    raise CardError(f"{source}: field 'decision.{key}' must be in [0, 60] s")

    @property
    def threshold(self) -> float | None:
        """The decision rule's threshold; None when the card has no rule."""
        return None if self.decision is None else float(self.decision["threshold"])

    @property
    def start_lag_s(self) -> float:
        """Seconds from an action's first frame to the first frame a stream shows it, the
        median over the calibration videos (``decision.start_lag_s``); 0 when not measured."""
        return 0.0 if self.decision is None else float(self.decision.get("start_lag_s", 0.0))

    @property
    def end_lag_s(self) -> float:
        """Seconds from an action's last frame to the first frame a stream stops showing it,
        the median over the calibration videos (``decision.end_lag_s``); 0 when not measured."""
        return 0.0 if self.decision is None else float(self.decision.get("end_lag_s", 0.0))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def card_path_for(onnx_path: Path) -> Path:
    """``model.onnx`` -> ``model.card.json``."""
    return onnx_path.with_name(onnx_path.name.removesuffix(".onnx") + ".card.json")


def write_card(card: ModelCard, onnx_path: Path) -> Path:
    path = card_path_for(onnx_path)
    path.write_text(card.to_json() + "\n")
    return path


def load_card(onnx_path: Path, *, check_hash: bool = True) -> ModelCard:
    """Read and check the card beside ``onnx_path``; :class:`CardError` says what is wrong."""
    path = card_path_for(onnx_path)
    if not path.is_file():
        raise CardError(f"{onnx_path}: no model card at {path}; export writes one beside the model")
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise CardError(f"{path}: not valid JSON (line {err.lineno}, column {err.colno})") from err
    card = ModelCard.from_dict(raw, source=str(path))
    if check_hash:
        actual = sha256_of(onnx_path)
        if actual != card.onnx_sha256:
            raise CardError(
                f"{path}: onnx_sha256 {card.onnx_sha256[:12]}... does not match {onnx_path} "
                f"({actual[:12]}...): the model was changed after export, or the card belongs "
                "to another model"
            )
    return card
