"""The onnxruntime engine: card checks at load, the single-person path, micro-batching."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
import pytest

from service.engine import BatcherClosed, InferenceEngine, MicroBatcher, WindowShapeError
from skeleton.card import CardError, sha256_of
from tests.service.tiny_service import WINDOW, TinyModel, copy_model
from training.export import torch_logits


def windows(n: int, persons: int = 2, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(0, 0.3, size=(n, persons, WINDOW.frames, 20, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def engine(tiny_model: TinyModel) -> InferenceEngine:
    engine = InferenceEngine(tiny_model.path)
    engine.warm_up()
    return engine


def test_engine_reports_its_providers_and_readiness(tiny_model: TinyModel) -> None:
    engine = InferenceEngine(tiny_model.path)
    assert engine.providers == ("CPUExecutionProvider",) and engine.provider in engine.providers
    assert not engine.ready
    assert engine.warm_up() > 0 and engine.ready
    assert engine.card == tiny_model.card


def test_single_person_windows_take_the_short_path_with_the_same_logits(
    engine: InferenceEngine, tiny_model: TinyModel
) -> None:
    x = windows(6)
    x[[0, 2, 3, 5], 1] = 0.0  # four single-person windows, two with both persons
    reference = torch_logits(tiny_model.classifier, x)
    np.testing.assert_allclose(engine.run(x), reference, atol=1e-4)
    solo = x[[0, 2, 3, 5], :1]
    np.testing.assert_allclose(engine.run(solo), reference[[0, 2, 3, 5]], atol=1e-4)
    full_graph = engine.session.run(["logits"], {"skeleton": x})[0]  # no shortcut taken
    np.testing.assert_allclose(engine.run(x), full_graph, atol=1e-5)


def test_windows_of_the_wrong_shape_are_refused(engine: InferenceEngine) -> None:
    with pytest.raises(WindowShapeError, match=r"\(N, 1..2, 32, 20, 3\).*got \(1, 2, 31, 20, 3\)"):
        engine.run(np.zeros((1, 2, 31, 20, 3), np.float32))
    with pytest.raises(WindowShapeError, match="got"):
        engine.run(np.zeros((1, 3, 32, 20, 3), np.float32))


def test_missing_card_is_refused(tiny_model: TinyModel, tmp_path: Path) -> None:
    model = copy_model(tiny_model.path, tmp_path / "m.onnx")
    (tmp_path / "m.card.json").unlink()
    with pytest.raises(CardError, match="no model card at .*m.card.json"):
        InferenceEngine(model)


def test_changed_model_file_is_refused(tiny_model: TinyModel, tmp_path: Path) -> None:
    model = copy_model(tiny_model.path, tmp_path / "m.onnx")
    graph = onnx.load(model)
    graph.producer_version = "edited"
    onnx.save(graph, model)
    with pytest.raises(CardError, match="does not match .*m.onnx"):
        InferenceEngine(model)


def test_card_beside_and_card_inside_must_agree(tiny_model: TinyModel, tmp_path: Path) -> None:
    model = copy_model(tiny_model.path, tmp_path / "m.onnx")
    card_path = tmp_path / "m.card.json"
    card = json.loads(card_path.read_text())
    card["labels"][0] = "renamed"
    card["fps"] = 15.0
    card_path.write_text(json.dumps(card))
    with pytest.raises(CardError, match="differ in fps, labels"):
        InferenceEngine(model)


def test_model_without_metadata_card_is_refused(tiny_model: TinyModel, tmp_path: Path) -> None:
    model = copy_model(tiny_model.path, tmp_path / "m.onnx")
    graph = onnx.load(model)
    del graph.metadata_props[:]
    onnx.save(graph, model)
    card_path = tmp_path / "m.card.json"
    card = json.loads(card_path.read_text())
    card["onnx_sha256"] = sha256_of(model)
    card_path.write_text(json.dumps(card))
    with pytest.raises(CardError, match="the ONNX metadata has no 'masksem.card' entry"):
        InferenceEngine(model)


class Recorder:
    def __init__(self) -> None:
        self.sizes: list[int] = []

    def observe_batch(self, size: int, seconds: float, queue_waits: Sequence[float]) -> None:
        assert seconds > 0 and all(w >= 0 for w in queue_waits)
        self.sizes.append(size)


def test_concurrent_windows_share_onnxruntime_calls(engine: InferenceEngine) -> None:
    x = windows(12, persons=1)
    recorder = Recorder()

    async def run() -> list[np.ndarray]:
        batcher = MicroBatcher(engine, max_batch=8, max_wait_s=0.05, observer=recorder)
        batcher.start()
        results = await asyncio.gather(*(batcher.infer(x[i : i + 1]) for i in range(12)))
        await batcher.close()
        with pytest.raises(BatcherClosed):
            await batcher.infer(x[:1])
        return results

    results = asyncio.run(run())
    assert sum(recorder.sizes) == 12 and max(recorder.sizes) == 8 and len(recorder.sizes) == 2
    np.testing.assert_allclose(np.concatenate(results), engine.run(x), atol=1e-6)
