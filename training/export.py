"""Export a classifier to one ONNX graph plus its model card, checked against PyTorch.

The graph takes ``skeleton`` (N, P, T, V, 3) with 1 <= P <= persons and returns ``logits``.
An absent person is an all-zero clip, so its encoder features are a constant: the graph holds
them (computed once here) and fills the persons a window does not give with them. A window
whose second person is absent can therefore be sent with P = 1 and skips that half of the
encoder, with the same logits (the card's ``single_person_input`` says the graph allows it).
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnx
import onnxruntime as ort
import torch
from numpy.typing import NDArray
from torch import Tensor, nn

from skeleton.card import (
    INPUT_NAME,
    METADATA_KEY,
    OUTPUT_NAME,
    CardContent,
    ModelCard,
    sha256_of,
    write_card,
)
from training.checkpoints import CheckpointError, ClassifierCheckpoint
from training.model.heads import Classifier
from training.model.tokens import patchify

log = logging.getLogger(__name__)

Variant = Literal["fp32", "int8", "fp16"]
VARIANTS: tuple[Variant, ...] = ("fp32", "int8", "fp16")
DEFAULT_OPSET = 18
#: Largest |logit| difference allowed between PyTorch and onnxruntime for the fp32 graph.
EXACT_TOLERANCE = 1e-4


class ExportError(RuntimeError):
    """The export cannot be trusted: a bad checkpoint, or ONNX disagreeing with PyTorch."""


class AbsentPersonGraph(nn.Module):
    """The classifier for windows of 1..M persons, persons beyond P taking the features of an
    all-zero person (a buffer computed once, in eval mode)."""

    absent_features: Tensor  # (T', V, C)

    def __init__(self, classifier: Classifier) -> None:
        super().__init__()
        self.classifier = classifier.eval()
        cfg = classifier.encoder.cfg
        with torch.no_grad():
            zeros = torch.zeros(1, cfg.persons, cfg.frames, cfg.joints, cfg.in_dims)
            absent = classifier.encoder(zeros)[0, 0]  # (T', V, C)
        self.register_buffer("absent_features", absent)

    def forward(self, clips: Tensor) -> Tensor:
        encoder = self.classifier.encoder
        cfg = encoder.cfg
        n, p = clips.shape[0], clips.shape[1]
        tokens = encoder.forward_tokens(patchify(clips.flatten(0, 1), cfg.patch))
        present = tokens.reshape(n, p, cfg.time_tokens, cfg.joints, cfg.width)
        absent = self.absent_features.expand(n, cfg.persons - p, -1, -1, -1)
        head: nn.Module = self.classifier.head
        logits: Tensor = head(torch.cat([present, absent], dim=1))
        return logits


def build_classifier_from_checkpoint(path: Path) -> tuple[Classifier, ClassifierCheckpoint]:
    """The classifier of a finished checkpoint (eval mode) and the checkpoint."""
    from training.recipes.evaluate import load_classifier

    try:
        return load_classifier(Path(path))
    except (CheckpointError, RuntimeError) as err:
        raise ExportError(f"not a usable classifier checkpoint: {err}") from err


# -- graph ----------------------------------------------------------------------------------------
def export_graph(classifier: Classifier, *, opset: int = DEFAULT_OPSET) -> onnx.ModelProto:
    """The fp32 graph: dynamic batch (and persons, when the model takes more than one)."""
    cfg = classifier.encoder.cfg
    classifier = classifier.eval()
    module = (AbsentPersonGraph(classifier) if cfg.persons > 1 else classifier).eval()
    example = torch.zeros(2, cfg.persons, cfg.frames, cfg.joints, cfg.in_dims)
    axes: dict[int, Any] = {0: torch.export.Dim("batch", min=1, max=1 << 16)}
    if cfg.persons > 1:
        axes[1] = torch.export.Dim("persons", min=1, max=cfg.persons)
    # The dynamo exporter (torch.export + onnxscript) is the maintained one; its optimiser
    # folds constants and leaves plain MatMul/Softmax attention that onnxruntime runs fast.
    program = torch.onnx.export(
        module,
        (example,),
        dynamo=True,
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        dynamic_shapes={"clips": axes},
        opset_version=opset,
        verbose=False,
    )
    if program is None:
        raise ExportError("torch.onnx.export returned no program")
    model = program.model_proto
    onnx.checker.check_model(model)
    return model


def to_variant(model: onnx.ModelProto, variant: Variant) -> onnx.ModelProto:
    """fp32 as is; int8: dynamic quantisation of the weights (CPU); fp16: half precision
    inside, float32 input and output (GPU)."""
    if variant == "fp32":
        return model
    if variant == "fp16":
        from onnxruntime.transformers.float16 import convert_float_to_float16

        half: onnx.ModelProto = convert_float_to_float16(model, keep_io_types=True)
        return half
    if variant == "int8":
        from onnxruntime.quantization import QuantType, quantize_dynamic
        from onnxruntime.quantization.shape_inference import quant_pre_process

        with tempfile.TemporaryDirectory() as tmp:
            src, pre, out = (Path(tmp) / n for n in ("fp32.onnx", "pre.onnx", "int8.onnx"))
            onnx.save(model, src)
            # onnxruntime's symbolic shape inference mistakes the ONNX Attention op (opset 23)
            # for its own contrib op; ONNX shape inference is enough for dynamic quantisation.
            quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
            quantize_dynamic(
                pre,
                out,
                weight_type=QuantType.QInt8,
                per_channel=True,
                op_types_to_quantize=["MatMul", "Gemm"],  # not the ONNX Attention op
            )
            return onnx.load(out)
    raise ExportError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")


def serialized(model: onnx.ModelProto) -> bytes:
    buffer = io.BytesIO()
    onnx.save(model, buffer)
    return buffer.getvalue()


# -- running --------------------------------------------------------------------------------------
def onnx_logits(
    model: onnx.ModelProto | bytes, windows: NDArray[np.float32], *, batch: int = 32
) -> NDArray[np.float32]:
    """onnxruntime (CPU) logits of ``windows`` (N, P, T, V, 3), in batches."""
    blob = model if isinstance(model, bytes) else serialized(model)
    session = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    out = [
        session.run([OUTPUT_NAME], {INPUT_NAME: windows[i : i + batch]})[0]
        for i in range(0, len(windows), batch)
    ]
    return np.concatenate(out).astype(np.float32)


def torch_logits(
    classifier: nn.Module, windows: NDArray[np.float32], *, batch: int = 32
) -> NDArray[np.float32]:
    """PyTorch (CPU) logits of ``windows``: the evaluation module's ``predict``."""
    from training.recipes.evaluate import predict

    return predict(classifier, windows, batch=batch)


@dataclass(frozen=True)
class Exactness:
    max_abs_diff: float  # full windows, ONNX vs PyTorch
    max_abs_diff_single_person: float | None  # P = 1 windows through the shortcut
    windows: int


def check_exactness(
    model: onnx.ModelProto | bytes,
    classifier: Classifier,
    windows: NDArray[np.float32],
    *,
    tolerance: float = EXACT_TOLERANCE,
    reference: NDArray[np.float32] | None = None,
) -> Exactness:
    """Compare onnxruntime with PyTorch on ``windows``; raise :class:`ExportError` beyond
    ``tolerance``. Windows with an absent second person also go through the shortcut."""
    blob = model if isinstance(model, bytes) else serialized(model)
    expected = torch_logits(classifier, windows) if reference is None else reference
    diff = float(np.abs(onnx_logits(blob, windows) - expected).max())
    single: float | None = None
    if windows.shape[1] > 1:
        solo = ~windows[:, 1:].any(axis=(1, 2, 3, 4))
        if solo.any():
            got = onnx_logits(blob, np.ascontiguousarray(windows[solo, :1]))
            single = float(np.abs(got - expected[solo]).max())
    worst = max(diff, single or 0.0)
    if not worst <= tolerance:
        raise ExportError(
            f"ONNX and PyTorch disagree: max |logit difference| {worst:.3g} > {tolerance:g} "
            f"over {len(windows)} windows (full path {diff:.3g}, single-person path {single})"
        )
    return Exactness(diff, single, len(windows))


# -- saving ---------------------------------------------------------------------------------------
def opset_of(model: onnx.ModelProto) -> int:
    return int(max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")))


def save_with_card(
    model: onnx.ModelProto,
    fields: CardContent,
    out: Path,
    *,
    variant: Variant = "fp32",
    single_person_input: bool = False,
) -> ModelCard:
    """Write ``out`` with the card in its metadata (without the hash, which covers the file),
    then ``<out>.card.json`` with the hash."""
    out = Path(out)
    if out.suffix != ".onnx":
        raise ExportError(f"{out}: the model file must end in .onnx")
    given = {f.name: getattr(fields, f.name) for f in dataclasses.fields(CardContent)}
    card = ModelCard(
        **{**given, "labels": tuple(fields.labels)},
        onnx_sha256="0" * 64,
        opset=opset_of(model),
        variant=variant,
        single_person_input=single_person_input,
    )
    card.validate(source=str(out))
    meta = card.to_dict()
    meta.pop("onnx_sha256")
    model = onnx.ModelProto.FromString(model.SerializeToString())
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, {METADATA_KEY: json.dumps(meta, sort_keys=True)})
    model.producer_name = "masksem"
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, out)
    card = replace(card, onnx_sha256=sha256_of(out))
    write_card(card, out)
    return card


def export_onnx(
    classifier: Classifier,
    fields: CardContent,
    out: Path,
    variant: Variant = "fp32",
    *,
    check_windows: NDArray[np.float32] | None = None,
    opset: int = DEFAULT_OPSET,
) -> ModelCard:
    """Export the fp32 graph, check it against PyTorch on ``check_windows`` (max |logit
    difference| at most 1e-4, else :class:`ExportError`), convert it to ``variant`` and write
    it with its card. ``masksem export`` (``export_checkpoint``) adds the test-split metrics."""
    graph = export_graph(classifier, opset=opset)
    metrics = dict(fields.metrics)
    if check_windows is not None:
        exact = check_exactness(graph, classifier, check_windows)
        metrics["exactness"] = {
            "max_abs_logit_diff": exact.max_abs_diff,
            "max_abs_logit_diff_single_person": exact.max_abs_diff_single_person,
            "windows": exact.windows,
            "tolerance": EXACT_TOLERANCE,
        }
    model = to_variant(graph, variant)
    single = classifier.encoder.cfg.persons > 1
    return save_with_card(
        model, replace(fields, metrics=metrics), out, variant=variant, single_person_input=single
    )
