"""Open Inference Protocol v2 routes, as KServe and Triton clients call them."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest

from tests.service.tiny_service import LABELS, WINDOW, LiveServer, TinyModel
from training.export import torch_logits


def infer_body(x: np.ndarray, **extra: object) -> dict:
    return {
        "id": "req-7",
        "inputs": [
            {"name": "skeleton", "shape": list(x.shape), "datatype": "FP32",
             "data": x.reshape(-1).tolist()}
        ],
        **extra,
    }  # fmt: skip


def windows(n: int, persons: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(0, 0.3, size=(n, persons, WINDOW.frames, 20, 3)).astype(np.float32)


def test_health_and_metadata(server: LiveServer) -> None:
    assert httpx.get(f"{server.url}/v2/health/live").json() == {"live": True}
    ready = httpx.get(f"{server.url}/v2/health/ready")
    assert ready.status_code == 200 and ready.json() == {"ready": True}
    assert httpx.get(f"{server.url}/v2").json()["name"] == "masksem"
    meta = httpx.get(f"{server.url}/v2/models/tiny").json()
    assert meta["versions"] == ["1"] and meta["platform"] == "onnxruntime_onnx"
    assert meta["inputs"] == [
        {"name": "skeleton", "datatype": "FP32", "shape": [-1, -1, WINDOW.frames, 20, 3]}
    ]
    assert meta["outputs"] == [{"name": "logits", "datatype": "FP32", "shape": [-1, len(LABELS)]}]
    assert httpx.get(f"{server.url}/v2/models/tiny/ready").json() == {
        "name": "tiny",
        "ready": True,
    }


@pytest.mark.parametrize("persons", [1, 2])
def test_infer_returns_the_pytorch_logits(
    server: LiveServer, tiny_model: TinyModel, persons: int
) -> None:
    x = windows(3, persons)
    reply = httpx.post(f"{server.url}/v2/models/tiny/infer", json=infer_body(x))
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["id"] == "req-7" and body["model_name"] == "tiny"
    (out,) = body["outputs"]
    assert out["name"] == "logits" and out["shape"] == [3, len(LABELS)]
    full = x if persons == 2 else np.concatenate([x, np.zeros_like(x)], axis=1)
    expected = torch_logits(tiny_model.classifier, full)
    np.testing.assert_allclose(np.array(out["data"]).reshape(3, -1), expected, atol=1e-4)


@pytest.mark.parametrize(
    ("change", "status", "message"),
    [
        ({"name": "pose"}, 400, "exactly one input named 'skeleton'"),
        ({"datatype": "INT32"}, 400, "datatype must be FP32"),
        ({"shape": [2, 1, WINDOW.frames, 20, 3]}, 400, "needs 3840 values, data has 1920"),
        ({"shape": [1, 1, WINDOW.frames, 19, 3], "data": [0.0] * (WINDOW.frames * 57)}, 400,
         "windows must have shape (N, 1..2, 32, 20, 3)"),
        ({"shape": [1, 3, WINDOW.frames, 20, 3], "data": [0.0] * (WINDOW.frames * 180)}, 400,
         "got (1, 3, 32, 20, 3)"),
        ({"data": [float("nan")] + [0.0] * 1919}, 400, "non-finite value at (0, 0, 0, 0, 0)"),
    ],
)  # fmt: skip
def test_infer_errors(server: LiveServer, change: dict, status: int, message: str) -> None:
    body = infer_body(windows(1, 1))
    body["inputs"][0].update(change)
    reply = httpx.post(  # json.dumps writes NaN as the literal many clients send
        f"{server.url}/v2/models/tiny/infer",
        content=json.dumps(body),
        headers={"content-type": "application/json"},
    )
    assert reply.status_code == status
    assert message in reply.json()["error"], reply.json()


def test_unknown_model_and_output(server: LiveServer) -> None:
    reply = httpx.get(f"{server.url}/v2/models/other")
    assert reply.status_code == 404
    assert reply.json()["error"] == "no model 'other'; this server serves 'tiny'"
    reply = httpx.post(f"{server.url}/v2/models/other/infer", json=infer_body(windows(1, 1)))
    assert reply.status_code == 404
    body = infer_body(windows(1, 1), outputs=[{"name": "probabilities"}])
    reply = httpx.post(f"{server.url}/v2/models/tiny/infer", json=body)
    assert reply.status_code == 400 and "the only output is 'logits'" in reply.json()["error"]
