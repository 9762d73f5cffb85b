"""REST routes on a live server: /v1/predict, /v1/model, their error replies and limits."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest

from service.engine import InferenceEngine
from service.preprocess import model_window
from service.stream import softmax
from skeleton.layouts import get_layout
from tests.service.tiny_service import LABELS, LAYOUT, LiveServer, TinyModel, random_clip, serve


def predict(server: LiveServer, body: object, **kwargs: object) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/predict", json=body, timeout=30, **kwargs)  # type: ignore[arg-type]


def window_request(clip: np.ndarray, layout: str = LAYOUT, **extra: object) -> dict:
    return {"layout": layout, "bodies": [{"id": 1, "frames": clip.tolist()}], **extra}


def test_model_route_returns_the_card_and_runtime(
    server: LiveServer, tiny_model: TinyModel
) -> None:
    reply = httpx.get(f"{server.url}/v1/model")
    assert reply.status_code == 200
    body = reply.json()
    assert body["onnx_sha256"] == tiny_model.card.onnx_sha256
    assert body["labels"] == list(LABELS) and body["layout"] == LAYOUT
    assert body["preprocessing"]["function"] == "skeleton.clip.inference_window"
    assert body["runtime"]["providers"][0] == "CPUExecutionProvider"
    assert body["runtime"]["warmup_s"] > 0


def test_predict_matches_the_offline_path_per_body(
    server: LiveServer, tiny_model: TinyModel
) -> None:
    clips = {"left": random_clip(45, seed=3), 9: random_clip(70, seed=4)}
    request = {
        "layout": LAYOUT,
        "top_k": 3,
        "bodies": [{"id": k, "frames": c.tolist()} for k, c in clips.items()],
    }
    reply = predict(server, request)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert (body["model"], body["version"]) == ("tiny", "1")
    engine = InferenceEngine(tiny_model.path)
    for prediction, (body_id, clip) in zip(body["predictions"], clips.items(), strict=True):
        window = model_window(clip[None], LAYOUT, engine.card)
        probs = softmax(engine.run(window[None])[0])
        best = np.argsort(-probs)[:3]
        assert prediction["id"] == body_id and prediction["frames"] == len(clip)
        assert [t["label"] for t in prediction["top_k"]] == [LABELS[i] for i in best]
        np.testing.assert_allclose(
            [t["probability"] for t in prediction["top_k"]], probs[best], rtol=1e-6
        )
        assert prediction["label"] == LABELS[best[0]]


def test_kinect_v2_and_azure_kinect_bodies_give_the_same_answer(server: LiveServer) -> None:
    """The same body sent as ntu25 (metres, y up, x to the sensor's left) and as k4a32
    (millimetres, y down, x right) must be classified identically."""
    ntu = random_clip(50, layout="ntu25", seed=5)
    k4a = np.zeros((50, 32, 3), dtype=np.float32)
    k4a_layout = get_layout("k4a32")
    for k, twin in enumerate(k4a_layout.ntu_twin):
        if twin is not None:
            k4a[:, k] = ntu[:, twin]
    k4a[:, [4, 11]] = ntu[:, [20]]  # clavicles: their midpoint is ntu25's SpineShoulder
    k4a[:, [2, 27, 28, 29, 30, 31]] = ntu[:, [3]]  # joints ntu25 lacks: any value
    k4a = k4a * np.array([-1.0, -1.0, 1.0], dtype=np.float32) * 1000.0
    a = predict(server, window_request(ntu, "ntu25", top_k=27)).json()["predictions"][0]
    b = predict(server, window_request(k4a, "k4a32", units_scale=1e-3, top_k=27))
    b_pred = b.json()["predictions"][0]
    assert a["label"] == b_pred["label"]
    np.testing.assert_allclose(
        [t["probability"] for t in a["top_k"]],
        [t["probability"] for t in b_pred["top_k"]],
        atol=1e-5,
    )
    in_mm = predict(server, window_request(k4a, "k4a32", top_k=27)).json()["predictions"][0]
    assert not np.allclose(  # without units_scale the millimetres reach the model
        [t["probability"] for t in in_mm["top_k"]],
        [t["probability"] for t in b_pred["top_k"]],
        atol=1e-3,
    )


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ("{not json", 400, "malformed JSON at character 1"),
        # a large body is answered the same way (the error names where the JSON breaks)
        ('{"layout": "utd20", "pad": "' + "x" * 100_000 + '", "bodies": [', 400,
         "malformed JSON at character 100042"),
        ({"layout": LAYOUT, "pad": "x" * 100_000, "bodies": [{"id": 1}]}, 422,
         "bodies.0.frames: Field required"),
        ({"layout": "kinect", "bodies": [{"id": 1, "frames": [[[0, 0, 1]]]}]}, 422,
         "unknown joint layout 'kinect'"),
        ({"layout": LAYOUT, "bodies": []}, 422, "bodies: List should have at least 1 item"),
        ({"layout": LAYOUT, "bodies": [{"id": 1}]}, 422, "bodies.0.frames: Field required"),
        ({"layout": LAYOUT, "bodies": [{"id": 1, "frames": [[["a", 0, 1]]]}]}, 422,
         "bodies.0.frames.0.0.0: Input should be a valid number"),
        ({"layout": "sbu15", "bodies": [{"id": 1, "frames": [[[0.1, 0.2, 1.0]] * 15]}]}, 422,
         "camera layout 'sbu15' cannot be mapped to the model's layout 'utd20'"),
        ({"layout": LAYOUT, "bodies": [{"id": 1, "frames": [[[0, 0, 0]] * 20] * 5}]}, 422,
         "every frame is all zeros"),
        ({"layout": LAYOUT, "top_k": 0, "bodies": [{"id": 1, "frames": [[[0, 0, 1]] * 20]}]},
         422, "top_k: Input should be greater than or equal to 1"),
    ],
)  # fmt: skip
def test_bad_requests_get_a_precise_4xx(
    server: LiveServer, body: object, status: int, message: str
) -> None:
    content = body if isinstance(body, str) else json.dumps(body)
    reply = httpx.post(
        f"{server.url}/v1/predict", content=content, headers={"content-type": "application/json"}
    )
    assert reply.status_code == status
    assert message in reply.json()["error"], reply.json()


def test_shape_and_nan_errors_name_body_frame_and_joint(server: LiveServer) -> None:
    clip = random_clip(30).tolist()
    ragged = [row[:] for row in clip]
    ragged[4] = ragged[4][:19]
    reply = predict(server, {"layout": LAYOUT, "bodies": [{"id": "x", "frames": ragged}]})
    assert reply.status_code == 422
    assert reply.json()["error"] == "bodies[0] (id 'x'), frame 4: 19 joints, the layout has 20"
    short = [row[:] for row in clip]
    short[2] = [p[:] for p in short[2]]
    short[2][6] = short[2][6][:2]
    reply = predict(server, {"layout": LAYOUT, "bodies": [{"id": 1, "frames": short}]})
    assert "frame 2, joint 6: 2 coordinates, need 3" in reply.json()["error"]
    clip_nan = random_clip(30)
    clip_nan[12, 5, 1] = np.nan
    reply = httpx.post(
        f"{server.url}/v1/predict",
        content=json.dumps(window_request(clip_nan)),  # json writes the NaN literal
        headers={"content-type": "application/json"},
    )
    assert reply.status_code == 422
    assert "at person 0, frame 12, joint 5" in reply.json()["error"]


def test_size_limits(tiny_model: TinyModel) -> None:
    # the byte budget per client is off: these requests test the size limits alone, and on a
    # fast machine they would spend a 2 MiB/s budget before the oversized body arrives
    with serve(
        tiny_model.path, max_request_bytes=256 * 1024, max_bodies_per_request=2,
        max_frames_per_body=100, rate_limit_bytes_per_s=0,
    ) as small:  # fmt: skip
        clip = random_clip(20)
        too_many = {
            "layout": LAYOUT, "bodies": [{"id": i, "frames": clip.tolist()} for i in range(3)]
        }  # fmt: skip
        reply = predict(small, too_many)
        assert reply.status_code == 413
        assert reply.json()["error"] == "3 bodies; at most 2 per request"
        reply = predict(small, window_request(random_clip(101)))
        assert reply.status_code == 413 and "at most 100 per body" in reply.json()["error"]
        big = json.dumps(window_request(random_clip(400))).encode()
        reply = httpx.post(
            f"{small.url}/v1/predict", content=big, headers={"content-type": "application/json"}
        )
        assert reply.status_code == 413
        assert reply.headers["connection"] == "close"  # the unread body is never parsed
        assert reply.json() == {
            "error": f"request body of {len(big)} bytes or more is over the limit of 262144 bytes",
            "code": "too_large",
        }

        def chunks():  # no Content-Length: the limit applies while the body streams in
            for _ in range(3):
                yield b" " * 100_000

        reply = httpx.post(
            f"{small.url}/v1/predict",
            content=chunks(),
            headers={"content-type": "application/json"},
        )
        assert reply.status_code == 413 and reply.json()["code"] == "too_large"


def test_rate_limit_answers_429_with_retry_after(tiny_model: TinyModel) -> None:
    # one token per 10 s: a loaded machine taking seconds over the requests still sees a burst
    with serve(tiny_model.path, rate_limit_per_s=0.1, rate_limit_burst=3) as limited:
        request = window_request(random_clip(30))
        statuses = [predict(limited, request).status_code for _ in range(5)]
        assert statuses[:3] == [200, 200, 200] and statuses[3:] == [429, 429]
        reply = predict(limited, request)
        assert 1 <= int(reply.headers["retry-after"]) <= 10  # seconds until the next token
        assert "more than 0.1 requests per second" in reply.json()["error"]
        assert httpx.get(f"{limited.url}/v2/health/live").status_code == 200  # not limited


def test_unknown_route_and_method(server: LiveServer) -> None:
    reply = httpx.get(f"{server.url}/v1/nothing")
    assert reply.status_code == 404 and reply.json()["code"] == "not_found"
    reply = httpx.get(f"{server.url}/v1/predict")
    assert reply.status_code == 405 and reply.json()["code"] == "method_not_allowed"
