"""ONNX export: round trip, exactness check, card validation, the absent-person shortcut,
variants, and ``masksem export`` on a real test split."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import typer
from typer.testing import CliRunner

from masksem.cli_export import export as export_command
from skeleton.card import METADATA_KEY, CardError, load_card
from skeleton.clip import WindowSpec
from skeleton.layouts import get_layout
from tests.service.tiny_service import LABELS, WINDOW, card_fields, tiny_classifier
from training.data.types import SkeletonDataset
from training.export import (
    EXACT_TOLERANCE,
    AbsentPersonGraph,
    ExportError,
    check_exactness,
    export_graph,
    export_onnx,
    onnx_logits,
    save_with_card,
    to_variant,
    torch_logits,
)
from training.model.config import ModelConfig
from training.recipes.classify import build_classifier


def windows(n: int, persons: int = 2, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 0.3, size=(n, persons, WINDOW.frames, 20, 3)).astype(np.float32)
    return x


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, Path]:
    classifier = tiny_classifier()
    out = tmp_path_factory.mktemp("export") / "tiny.onnx"
    export_onnx(classifier, card_fields("7"), out, check_windows=windows(8))
    return classifier, out


def test_round_trip_gives_the_pytorch_logits_at_any_batch(exported: tuple) -> None:
    classifier, path = exported
    card = load_card(path)
    assert (card.name, card.version, card.labels, card.layout) == ("tiny", "7", LABELS, "utd20")
    assert card.window == WINDOW and card.opset >= 17 and card.single_person_input
    assert card.metrics["exactness"]["max_abs_logit_diff"] <= EXACT_TOLERANCE
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (inp,) = session.get_inputs()
    assert inp.name == "skeleton" and inp.shape[2:] == [WINDOW.frames, 20, 3]
    for n in (1, 5):
        x = windows(n, seed=n)
        got = session.run(["logits"], {"skeleton": x})[0]
        np.testing.assert_allclose(got, torch_logits(classifier, x), atol=EXACT_TOLERANCE)


def test_card_is_in_the_metadata_without_its_hash(exported: tuple) -> None:
    _, path = exported
    meta = {p.key: p.value for p in onnx.load(path).metadata_props}
    inside = json.loads(meta[METADATA_KEY])
    beside = json.loads(path.with_name("tiny.card.json").read_text())
    assert "onnx_sha256" not in inside
    beside.pop("onnx_sha256")
    assert inside == beside


def test_absent_person_shortcut_equals_the_full_path(exported: tuple) -> None:
    classifier, path = exported
    x = windows(4)
    x[:, 1] = 0.0
    blob = path.read_bytes()
    full = onnx_logits(blob, x)
    single = onnx_logits(blob, np.ascontiguousarray(x[:, :1]))
    np.testing.assert_allclose(single, full, atol=1e-5)
    np.testing.assert_allclose(single, torch_logits(classifier, x), atol=EXACT_TOLERANCE)
    with torch.no_grad():  # the constant is what the encoder makes of an all-zero person
        graph = AbsentPersonGraph(classifier)
        zeros = torch.zeros(1, 2, WINDOW.frames, 20, 3)
        torch.testing.assert_close(graph.absent_features, classifier.encoder(zeros)[0, 1])


def test_exactness_check_fails_loudly_on_a_different_model(exported: tuple) -> None:
    _, path = exported
    other = tiny_classifier(seed=1)
    with pytest.raises(ExportError, match=r"ONNX and PyTorch disagree: max \|logit difference\|"):
        check_exactness(path.read_bytes(), other, windows(4))


def test_missing_field_is_refused(exported: tuple, tmp_path: Path) -> None:
    _, path = exported
    model = tmp_path / "m.onnx"
    model.write_bytes(path.read_bytes())
    card = json.loads(path.with_name("tiny.card.json").read_text())
    del card["labels"]
    (tmp_path / "m.card.json").write_text(json.dumps(card))
    with pytest.raises(CardError, match=r"m\.card\.json: missing field\(s\) labels"):
        load_card(model)


def test_wrong_hash_is_refused(exported: tuple, tmp_path: Path) -> None:
    _, path = exported
    model = tmp_path / "m.onnx"
    model.write_bytes(path.read_bytes() + b"\0")
    (tmp_path / "m.card.json").write_text(path.with_name("tiny.card.json").read_text())
    with pytest.raises(CardError, match="does not match .*m.onnx"):
        load_card(model)


def test_unknown_layout_is_refused(exported: tuple, tmp_path: Path) -> None:
    _, path = exported
    model = tmp_path / "m.onnx"
    model.write_bytes(path.read_bytes())
    card = json.loads(path.with_name("tiny.card.json").read_text())
    card["layout"] = "openpose18"
    (tmp_path / "m.card.json").write_text(json.dumps(card))
    with pytest.raises(CardError, match="field 'layout': unknown layout 'openpose18'"):
        load_card(model)


def test_int8_and_fp16_variants_stay_close_to_fp32(exported: tuple, tmp_path: Path) -> None:
    classifier, path = exported
    graph = onnx.load(path)
    x = windows(16)
    reference = onnx_logits(graph, x)
    for variant, tolerance in (("int8", 0.25), ("fp16", 0.02)):
        out = tmp_path / f"tiny.{variant}.onnx"
        card = save_with_card(to_variant(graph, variant), card_fields("7"), out, variant=variant)
        assert load_card(out).variant == variant == card.variant
        got = onnx_logits(out.read_bytes(), x)
        assert np.abs(got - reference).max() < tolerance
        assert (got.argmax(axis=1) == reference.argmax(axis=1)).mean() >= 0.75
    int8_ops = {n.op_type for n in onnx.load(tmp_path / "tiny.int8.onnx").graph.node}
    assert {"MatMulInteger", "DynamicQuantizeLinear"} <= int8_ops
    fp16_weights = onnx.load(tmp_path / "tiny.fp16.onnx").graph.initializer
    assert any(w.data_type == onnx.TensorProto.FLOAT16 for w in fp16_weights)


def test_single_person_models_export_without_a_persons_axis(tmp_path: Path) -> None:
    cfg = ModelConfig(persons=1, frames=16, joints=20, width=16, depth=1, heads=2, decoder_width=16)
    classifier = build_classifier(cfg, "linear", 3).eval()
    graph = export_graph(classifier)
    shape = graph.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value or d.dim_param for d in shape][1:] == [1, 16, 20, 3]
    x = np.random.default_rng(0).normal(size=(3, 1, 16, 20, 3)).astype(np.float32)
    np.testing.assert_allclose(onnx_logits(graph, x), torch_logits(classifier, x), atol=1e-4)


# -- masksem export on the real UTD-MHAD test split ----------------------------------------------
def utd_checkpoint(path: Path, classes: list[str], dataset: str = "utd-mhad") -> Path:
    """A classifier.pt in the format written before checkpoints were versioned: it still
    exports (its data source is read from its dataset entry)."""
    layout = "utd20"
    cfg = ModelConfig(persons=1, frames=32, joints=20, width=32, depth=2, heads=4, decoder_width=32)
    torch.manual_seed(0)
    classifier = build_classifier(cfg, "finetune", len(classes), hidden=64)
    window = WindowSpec(
        frames=32, persons=1, min_crop_frames=16, centre_joint=get_layout(layout).root
    )
    torch.save(
        {
            "kind": "classifier",
            "model_config": cfg.model_dump(mode="json"),
            "head": "finetune",
            "num_classes": len(classes),
            "head_config": {"dropout": 0.3, "hidden": 64},
            "state_dict": classifier.state_dict(),
            "labels": classes,
            "layout": layout,
            "window": dataclasses.asdict(window),
            "fps": 30.0,
            "dataset": {"name": dataset, "benchmark": "xsub"},
            "recipe": {"name": "test-recipe"},
            "metrics": {"top1": 0.04, "top5": 0.2, "clips": 430},
        },
        path,
    )
    return path


def cli() -> typer.Typer:
    app = typer.Typer()
    app.command()(export_command)
    return app


def test_masksem_export_checks_and_records_the_test_split(
    utd_dataset: SkeletonDataset, tmp_path: Path
) -> None:
    checkpoint = utd_checkpoint(tmp_path / "classifier.pt", list(utd_dataset.classes))
    out = tmp_path / "utd.int8.onnx"
    args = [
        "--checkpoint",
        str(checkpoint),
        "--out",
        str(out),
        "--variant",
        "int8",
        "--limit",
        "40",
    ]
    result = CliRunner().invoke(cli(), args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout[result.stdout.index("{") :])
    assert summary["variant"] == "int8" and summary["max_abs_logit_diff"] <= EXACT_TOLERANCE
    card = load_card(out)
    assert card.layout == "utd20" and list(card.labels) == utd_dataset.classes
    assert card.version == card.training["checkpoint_sha256"][:12]
    assert card.name == "utd-mhad-finetune" and not card.single_person_input
    metrics = card.metrics
    assert metrics["test_split"] == {"dataset": "utd-mhad", "benchmark": "xsub", "clips": 40,
                                     "of": len(utd_dataset.test)}  # fmt: skip
    assert metrics["torch"] == metrics["fp32"]  # same windows, logits within 1e-4
    assert metrics["change_vs_fp32"]["top1"] == pytest.approx(
        metrics["int8"]["top1"] - metrics["fp32"]["top1"]
    )
    median_frames = float(np.median([s.frames for s in utd_dataset.train]))
    assert card.stream_window_s == pytest.approx(median_frames / 30, abs=1e-3)


def test_masksem_export_fails_loudly_on_a_mismatched_dataset(
    utd_dataset: SkeletonDataset, tmp_path: Path
) -> None:
    checkpoint = utd_checkpoint(tmp_path / "classifier.pt", ["a", "b", "c"])
    args = ["--checkpoint", str(checkpoint), "--out", str(tmp_path / "m.onnx")]
    result = CliRunner().invoke(cli(), args)
    assert result.exit_code == 2
    assert f"export failed: {checkpoint} classifies 3 utd20 classes; utd-mhad has 27" in (
        result.output
    )
    assert not (tmp_path / "m.onnx").exists()


def test_opset_23_exports_one_attention_node_per_block_and_stays_exact() -> None:
    classifier = tiny_classifier()
    graph = export_graph(classifier, opset=23)
    ops = [n.op_type for n in graph.graph.node]
    assert ops.count("Attention") == classifier.encoder.cfg.depth
    x = windows(3)
    np.testing.assert_allclose(onnx_logits(graph, x), torch_logits(classifier, x), atol=1e-4)
    int8 = onnx_logits(to_variant(graph, "int8"), x)  # the Attention op stays float
    assert np.abs(int8 - torch_logits(classifier, x)).max() < 0.25
