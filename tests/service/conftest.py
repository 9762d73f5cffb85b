"""Fixtures of the service tests: a tiny real model exported once, a shared live server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.service.tiny_service import (
    LABELS,
    LiveServer,
    TinyModel,
    TwoModels,
    card_fields,
    copy_model,
    serve,
    tiny_classifier,
)
from training.export import export_graph, save_with_card


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> TinyModel:
    """A randomly initialised classifier of the real architecture, exported with the real
    exporter: version "1" and, same graph, version "2" (for reloads)."""
    folder = tmp_path_factory.mktemp("models")
    classifier = tiny_classifier()
    graph = export_graph(classifier)
    path, path_v2 = folder / "tiny.onnx", folder / "tiny-v2.onnx"
    card = save_with_card(graph, card_fields("1"), path, single_person_input=True)
    save_with_card(graph, card_fields("2"), path_v2, single_person_input=True)
    return TinyModel(classifier, graph, path, card, path_v2, folder)


PAIR_LABELS = tuple(f"pair-{i}" for i in range(9))


@pytest.fixture(scope="session")
def two_models(tiny_model: TinyModel, tmp_path_factory: pytest.TempPathFactory) -> TwoModels:
    """``default`` (the tiny model) and ``pairs`` (another classifier, 9 labels) in one folder."""
    folder = tmp_path_factory.mktemp("two-models")
    spare = tmp_path_factory.mktemp("next-versions")
    copy_model(tiny_model.path, folder / "default.onnx")
    pairs = tiny_classifier(seed=1, classes=len(PAIR_LABELS))
    graph = export_graph(pairs)
    fields = card_fields("7", name="tiny-pairs", labels=PAIR_LABELS)
    save_with_card(graph, fields, folder / "pairs.onnx", single_person_input=True)
    next_fields = card_fields("8", name="tiny-pairs", labels=PAIR_LABELS)
    save_with_card(graph, next_fields, spare / "pairs.onnx", single_person_input=True)
    return TwoModels(
        folder=folder,
        classifiers={"default": tiny_model.classifier, "pairs": pairs},
        labels={"default": LABELS, "pairs": PAIR_LABELS},
        next_versions={
            "default": copy_model(tiny_model.path_v2, spare / "default.onnx"),
            "pairs": spare / "pairs.onnx",
        },
    )


@pytest.fixture(scope="module")
def server(tiny_model: TinyModel) -> Iterator[LiveServer]:
    """A server with default limits and no key, shared by a test module."""
    with serve(tiny_model.path) as live:
        yield live
