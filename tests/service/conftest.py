"""Fixtures of the service tests: a tiny real model exported once, a shared live server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.service.tiny_service import LiveServer, TinyModel, card_fields, serve, tiny_classifier
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


@pytest.fixture(scope="module")
def server(tiny_model: TinyModel) -> Iterator[LiveServer]:
    """A server with default limits and no key, shared by a test module."""
    with serve(tiny_model.path) as live:
        yield live
