"""Issue 19, on a live server: each way one client could hurt the others or the host,
reproduced, and answered as service/README.md documents."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import numpy as np
import pytest
import websockets

from service.app import exposure_warning
from service.engine import InferenceEngine, MicroBatcher
from service.settings import ServiceSettings
from tests.service.test_service_metrics import scrape, value
from tests.service.test_service_ws import (
    Message,
    configure,
    frame,
    of_type,
    quiet,
    receive_until,
)
from tests.service.tiny_service import (
    LAYOUT,
    LiveServer,
    TinyModel,
    copy_model,
    random_clip,
    serve,
)

REPO = Path(__file__).resolve().parents[2]
KEY = "k3y-" + uuid.uuid4().hex


def infer_body(windows: np.ndarray) -> dict[str, object]:
    return {
        "inputs": [
            {
                "name": "skeleton",
                "shape": list(windows.shape),
                "datatype": "FP32",
                "data": windows.reshape(-1).tolist(),
            }
        ]
    }


def windows(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 1, 32, 20, 3)).astype(np.float32)


# -- 1, 7: stream configs beyond the budget ------------------------------------------------------
def test_a_config_no_budget_covers_is_refused_and_the_stream_stays_usable(
    server: LiveServer,
) -> None:
    async def run() -> None:
        async with websockets.connect(f"{server.ws_url}/v1/stream") as ws:
            hostile = {"fps": 1000, "window_s": 60, "min_frames": 10_000, "max_bodies": 64}
            refused = await configure(ws, **hostile)
            assert refused["code"] == "invalid_config"
            assert "64 bodies; this server allows at most 16" in refused["message"]
            refused = await configure(ws, **{**hostile, "max_bodies": 4})
            assert "buffered frames; this server allows 8192" in refused["message"]
            assert (await configure(ws))["type"] == "configured"

    asyncio.run(run())


# -- 2: one huge OIP request ---------------------------------------------------------------------
def test_oip_requests_are_capped_and_split_into_batches(tiny_model: TinyModel) -> None:
    with serve(tiny_model.path, max_batch=4, max_infer_windows=12) as live:
        url = f"{live.url}/v2/models/tiny/infer"
        too_many = httpx.post(url, json=infer_body(windows(13)))
        assert too_many.status_code == 413
        assert too_many.json() == {
            "error": "13 windows in one request; at most 12 (split it)",
            "code": "too_large",
        }
        reply = httpx.post(url, json=infer_body(windows(10)))
        assert reply.status_code == 200 and reply.json()["outputs"][0]["shape"] == [10, 27]
        engine = InferenceEngine(tiny_model.path)
        expected = engine.run(windows(10))
        got = np.asarray(reply.json()["outputs"][0]["data"]).reshape(10, 27)
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
        samples = scrape(live.url)
        # warm-up ran batches of 4; the 10 windows went as 4 + 4 + 2, never one batch of 10
        batches = value(samples, "masksem_batch_size_count", model="tiny")
        assert value(samples, "masksem_batch_size_bucket", le="4.0", model="tiny") == batches > 0
        assert value(samples, "masksem_predictions_total", transport="oip", model="tiny") == 10


# -- 3: one client's backlog first ---------------------------------------------------------------
def test_the_batcher_serves_sources_in_turn(tiny_model: TinyModel) -> None:
    """A client with 40 windows queued first does not make a later 1-window client wait for
    all of them: sources take turns, one chunk of max_batch each."""
    engine = InferenceEngine(tiny_model.path)

    async def run() -> list[str]:
        batcher = MicroBatcher(engine, max_batch=4, max_wait_s=0.0)
        batcher.start()
        order: list[str] = []

        async def client(name: str, n: int) -> None:
            await batcher.infer(windows(n), source=name)
            order.append(name)

        backlog = asyncio.create_task(client("backlog", 40))  # 10 batches' worth
        await asyncio.sleep(0)  # queued first
        await client("small", 1)
        await backlog
        await batcher.close()
        return order

    assert asyncio.run(run()) == ["small", "backlog"]


# -- 4: exposed by default -----------------------------------------------------------------------
def test_the_start_script_listens_on_loopback() -> None:
    script = (REPO / "scripts" / "serve.sh").read_text()
    assert '--host "${MASKSEM_HOST:-127.0.0.1}"' in script
    assert ServiceSettings(model=REPO / "x.onnx").host == "127.0.0.1"


def test_a_network_bind_without_a_key_warns_at_start(
    tiny_model: TinyModel, caplog: pytest.LogCaptureFixture
) -> None:
    exposed = ServiceSettings(model=tiny_model.path, host="0.0.0.0")
    assert "not loopback, with no MASKSEM_API_KEY" in (exposure_warning(exposed) or "")
    keyed = ServiceSettings(model=tiny_model.path, host="0.0.0.0", api_key=KEY)
    for settings in (keyed, ServiceSettings(model=tiny_model.path, host="::1")):
        assert exposure_warning(settings) is None
    with caplog.at_level(logging.WARNING, logger="service.app"):
        from service.app import create_app

        create_app(exposed)
    assert any("not loopback" in r.getMessage() for r in caplog.records)


def test_reload_reads_only_the_model_folder_and_tells_nothing_of_other_files(
    tiny_model: TinyModel, tmp_path: Path
) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    served = copy_model(tiny_model.path, folder / "served.onnx")
    copy_model(tiny_model.path_v2, folder / "other.onnx")
    with serve(served) as live:
        refusals = []
        for outside in ("/etc/passwd", "/nonexistent.onnx", "../served.onnx", str(tmp_path)):
            reply = httpx.post(f"{live.url}/v1/admin/reload", json={"model": outside})
            refusals.append((reply.status_code, reply.json()))
        assert len({json.dumps(r) for r in refusals}) == 1  # exists or not: the same answer
        assert refusals[0] == (
            422,
            {
                "error": "'model' must name a file in the served model's folder, e.g. 'other.onnx'",
                "code": "reload_refused",
            },
        )
        missing = httpx.post(f"{live.url}/v1/admin/reload", json={"model": "gone.onnx"})
        assert missing.status_code == 422 and str(tmp_path) not in missing.text
        assert "gone.onnx: no such model file" in missing.json()["error"]
        ok = httpx.post(f"{live.url}/v1/admin/reload", json={"model": "other.onnx"})
        assert ok.status_code == 200 and ok.json()["model"]["version"] == "2"
        # case 11: a file onnxruntime cannot parse, with a card that matches it: 422, not 500
        garbage = folder / "garbage.onnx"
        garbage.write_bytes(b"not an onnx graph" * 64)
        card = json.loads((folder / "other.card.json").read_text())
        import hashlib

        card["onnx_sha256"] = hashlib.sha256(garbage.read_bytes()).hexdigest()
        (folder / "garbage.card.json").write_text(json.dumps(card))
        bad = httpx.post(f"{live.url}/v1/admin/reload", json={"model": "garbage.onnx"})
        assert bad.status_code == 422 and bad.json()["code"] == "reload_failed"
        assert "garbage.onnx: onnxruntime cannot load it" in bad.json()["error"]
        assert str(folder) not in bad.text
        # case 12: no absolute server path in the model summary or the metrics
        for text in (httpx.get(f"{live.url}/v1/model").text, httpx.get(f"{live.url}/metrics").text):
            assert str(folder) not in text and "other.onnx" in text


# -- 5: idle WebSockets --------------------------------------------------------------------------
def test_streams_without_config_or_traffic_are_closed(tiny_model: TinyModel) -> None:
    async def run(live: LiveServer) -> None:
        async with websockets.connect(f"{live.ws_url}/v1/stream") as silent:
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(silent.recv(), 5)
            assert closed.value.rcvd is not None
            assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (
                1008,
                "no config for 0.3 s",
            )
        async with websockets.connect(f"{live.ws_url}/v1/stream") as idle:
            await configure(idle)
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(idle.recv(), 5)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.reason == "no message for 0.6 s"

    options = {"stream_config_timeout_s": 0.3, "stream_idle_timeout_s": 0.6}
    with serve(tiny_model.path, **options) as live:
        asyncio.run(run(live))
        samples = scrape(live.url)
        assert value(samples, "masksem_streams_refused_total", reason="config_timeout") == 1
        assert value(samples, "masksem_streams_refused_total", reason="idle_timeout") == 1
        assert value(samples, "masksem_open_streams") == 0


# -- 6: the rate limit ---------------------------------------------------------------------------
def test_the_rate_limit_is_per_address_whatever_key_is_sent(tiny_model: TinyModel) -> None:
    body = {"layout": LAYOUT, "bodies": [{"id": 1, "frames": random_clip(30).tolist()}]}
    with serve(tiny_model.path, rate_limit_per_s=0.5, rate_limit_burst=3) as live:
        url = f"{live.url}/v1/predict"
        # a fresh random key per request used to get a fresh bucket each time
        codes = [
            httpx.post(url, json=body, headers={"X-API-Key": uuid.uuid4().hex}).status_code
            for _ in range(8)
        ]
        assert codes == [200] * 3 + [429] * 5
        # another address has its own bucket
        transport = httpx.HTTPTransport(local_address="127.0.0.2")
        with httpx.Client(transport=transport) as other:
            assert other.post(url, json=body).status_code == 200
    with serve(tiny_model.path, rate_limit_per_s=0.5, rate_limit_burst=2, api_key=KEY) as live:
        url = f"{live.url}/v1/predict"
        keyed = {"X-API-Key": KEY}
        assert [httpx.post(url, json=body, headers=keyed).status_code for _ in range(3)] == [
            200,
            200,
            429,
        ]
        # one shared key no longer puts every client in one bucket
        transport = httpx.HTTPTransport(local_address="127.0.0.2")
        with httpx.Client(transport=transport) as other:
            assert other.post(url, json=body, headers=keyed).status_code == 200


# -- 8: the key in the access log ----------------------------------------------------------------
def test_the_key_never_reaches_the_logs(tiny_model: TinyModel) -> None:
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(self.format(record))

    settings = ServiceSettings(model=tiny_model.path, warmup_runs=1, api_key=KEY)
    live = LiveServer(settings, log_level="info", access_log=True)
    handler = Keep()
    loggers = [logging.getLogger(n) for n in ("uvicorn.access", "uvicorn.error", "service")]
    for logger in loggers:
        logger.addHandler(handler)

    async def stream() -> None:
        async with websockets.connect(f"{live.ws_url}/v1/stream?api_key={KEY}") as ws:
            assert (await configure(ws))["type"] == "configured"

    try:
        with live:
            asyncio.run(stream())
            reply = httpx.get(f"{live.url}/v1/model?api_key={KEY}&x=1", headers={"X-API-Key": KEY})
            assert reply.status_code == 200
            time.sleep(0.2)
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
    logged = "\n".join(records)
    assert "/v1/stream?api_key=redacted" in logged and "/v1/model?api_key=redacted&x=1" in logged
    assert KEY not in logged


# -- 9: a frame from the far future --------------------------------------------------------------
def test_a_future_timestamp_is_explained_once_and_the_stream_goes_on(server: LiveServer) -> None:
    clip = random_clip(70)

    async def run() -> None:
        async with websockets.connect(f"{server.ws_url}/v1/stream") as ws:
            await configure(ws, stride=8, min_frames=16)
            for i in range(30):
                await ws.send(frame(i / 30, {1: clip[i]}))
            await ws.send(frame(1e308, {1: clip[30]}))
            await ws.send(frame(1e300, {1: clip[31]}))
            for i in range(32, 70):
                await ws.send(frame(i / 30, {1: clip[i]}))
            messages = await quiet(ws, 1.0)
            errors = of_type(messages, "error")
            assert [e["code"] for e in errors] == ["too_early"]  # said once, then counted
            assert "implausibly far ahead" in errors[0]["message"]
            assert of_type(messages, "dropped")[-1]["dropped_by_reason"]["too_early"] == 2
            assert of_type(messages, "prediction")[-1]["window"]["end"] > 2.0

    asyncio.run(run())


# -- 10: the empty key ---------------------------------------------------------------------------
def test_an_empty_key_is_refused_at_start(tiny_model: TinyModel) -> None:
    with pytest.raises(ValueError, match="MASKSEM_API_KEY is set but empty"):
        ServiceSettings(model=tiny_model.path, api_key="")
    env = {**os.environ, "PYTHONPATH": str(REPO), "MASKSEM_API_KEY": " "}
    done = subprocess.run(
        [sys.executable, "-m", "masksem.cli_serve", "--model", str(tiny_model.path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "invalid settings: api_key: Value error, MASKSEM_API_KEY is set but empty: set a real "
        "key, or unset it to run without one"
    ]


# -- 11: answers that were 500s or NaNs ----------------------------------------------------------
def test_overflowing_shapes_and_non_finite_outputs_get_documented_errors(
    server: LiveServer,
) -> None:
    with httpx.Client(base_url=server.url) as client:
        url = "/v2/models/tiny/infer"
        for shape in ([2**32, 2**32, 2**32, 1, 1], [0, 2**40, 2**40, 2**40, 3]):
            body = {"inputs": [{"name": "skeleton", "shape": shape, "datatype": "FP32",
                                "data": [1.0] if shape[0] else []}]}  # fmt: skip
            reply = client.post(url, json=body)
            assert reply.status_code == 400 and reply.json()["code"] == "bad_input"
        huge = np.full((1, 1, 32, 20, 3), 3e38, dtype=np.float32)
        reply = client.post(url, json=infer_body(huge))
        assert reply.status_code == 422 and reply.json()["code"] == "non_finite_output"
        # the keep-alive connection survived all of it
        assert client.post(url, json=infer_body(windows(1))).status_code == 200
        clip = random_clip(40)
        clip[:, 3] = 3e38
        body = {"layout": LAYOUT, "bodies": [{"id": 7, "frames": clip.tolist()}]}
        reply = client.post("/v1/predict", json=body)
        assert reply.status_code == 422 and reply.json()["code"] == "non_finite_output"
        assert reply.json()["error"].startswith("bodies[0] (id 7): the model's output is not")


def test_a_stream_reports_windows_the_model_cannot_answer(server: LiveServer) -> None:
    clip = random_clip(40)
    clip[:, 3] = 3e38

    async def run() -> None:
        async with websockets.connect(f"{server.ws_url}/v1/stream") as ws:
            await configure(ws, stride=8, min_frames=16)
            for i, joints in enumerate(clip):
                await ws.send(frame(i / 30, {5: joints}))
            messages = await quiet(ws, 1.0)
            errors = of_type(messages, "error")
            assert errors and {e["code"] for e in errors} == {"non_finite_output"}
            assert errors[0]["body"] == 5 and not of_type(messages, "prediction")

    asyncio.run(run())


# -- 12: counters --------------------------------------------------------------------------------
def test_counters_tell_what_happened(tiny_model: TinyModel) -> None:
    async def run(live: LiveServer) -> None:
        clip = random_clip(40)
        async with websockets.connect(f"{live.ws_url}/v1/stream") as ws:
            await configure(ws, max_bodies=1, stride=100)
            for i, joints in enumerate(clip):
                await ws.send(frame(i / 30, {1: joints, 2: joints, 3: joints}))
            await ws.send("{not json")
            async with websockets.connect(f"{live.ws_url}/v1/stream") as refused:
                with pytest.raises(websockets.ConnectionClosed):
                    await refused.recv()
            await ws.send(json.dumps({"type": "stats"}))
            stats = (await receive_until(ws, lambda m: m["type"] == "stats"))[-1]
            assert stats["frames_dropped"] == 0 and stats["frames_accepted"] == 40
            assert stats["bodies_dropped"] == {"too_many_bodies": 80}

    with serve(tiny_model.path, max_streams=1, max_request_bytes=2048) as live:
        asyncio.run(run(live))
        big = {"layout": LAYOUT, "bodies": [{"id": 1, "frames": random_clip(40).tolist()}]}
        assert httpx.post(f"{live.url}/v1/predict", json=big).status_code == 413
        samples = scrape(live.url)
        assert value(samples, "masksem_bodies_dropped_total", reason="too_many_bodies") == 80
        assert value(samples, "masksem_frames_dropped_total", reason="too_many_bodies") == 0
        assert value(samples, "masksem_streams_refused_total", reason="too_many_streams") == 1
        assert value(samples, "masksem_stream_errors_total", code="malformed_json") == 1
        labels = {"method": "POST", "route": "/v1/predict", "status": "413"}
        assert value(samples, "masksem_requests_total", **labels) == 1


# -- 13: stale frames, 1-frame windows, slow headers ---------------------------------------------
def test_under_overload_the_freshest_frames_are_classified(tiny_model: TinyModel) -> None:
    """Inference far slower than the frames (a 300 ms batch wait, a burst at stride 1)."""
    clip = random_clip(60)

    async def run(live: LiveServer, backlog: str) -> tuple[list[Message], Message]:
        async with websockets.connect(f"{live.ws_url}/v1/stream") as ws:
            await configure(ws, stride=1, min_frames=16, backlog=backlog)
            for i, joints in enumerate(clip):
                await ws.send(frame(i / 30, {1: joints}))
            messages = await quiet(ws, 1.5)
            await ws.send(json.dumps({"type": "stats"}))
            stats = (await receive_until(ws, lambda m: m["type"] == "stats"))[-1]
            return messages, stats

    settings = {"max_wait_ms": 300.0, "max_batch": 64, "stream_queue_frames": 2}
    with serve(tiny_model.path, stream_max_windows_per_s=1000.0, **settings) as live:
        waited, _ = asyncio.run(run(live, "every"))
        latest, stats = asyncio.run(run(live, "latest"))
    # every window waits its turn: the queue overflows and its oldest frames go
    assert of_type(waited, "dropped")[-1]["dropped_by_reason"]["queue_full"] > 0
    assert of_type(waited, "prediction")[-1]["window"]["end"] == 59 / 30
    # the default: no frame is lost, the strides passed while a window was being answered
    # go into the next one, and the last frame sent is the one the last window ends on
    predictions = of_type(latest, "prediction")
    assert stats["frames_dropped"] == 0 and not of_type(latest, "dropped")
    assert predictions[-1]["window"]["end"] == 59 / 30
    assert 2 <= len(predictions) < 10
    assert len(predictions) + stats["windows_skipped"] == 60 - 15  # one stride per frame


def test_rest_refuses_a_window_too_short_to_classify(server: LiveServer) -> None:
    for frames in (1, 15):
        body = {"layout": LAYOUT, "bodies": [{"id": 1, "frames": random_clip(frames).tolist()}]}
        reply = httpx.post(f"{server.url}/v1/predict", json=body)
        assert reply.status_code == 422
        assert reply.json() == {
            "error": f"bodies[0] (id 1): {frames} frames; this model needs at least 16 "
            "(the shortest clip it was trained on)",
            "code": "too_short",
        }
    body = {"layout": LAYOUT, "bodies": [{"id": 1, "frames": random_clip(16).tolist()}]}
    assert httpx.post(f"{server.url}/v1/predict", json=body).status_code == 200


def test_a_client_that_never_finishes_its_headers_is_cut_off(tiny_model: TinyModel) -> None:
    with serve(tiny_model.path, header_timeout_s=0.5) as live:
        with socket.create_connection(("127.0.0.1", live.port), timeout=10) as slow:
            slow.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n")
            assert slow.recv(1024) == b""  # closed by the server (ours would raise a timeout)
        # a normal request on a kept-alive connection is not affected
        with httpx.Client(base_url=live.url) as client:
            assert client.get("/v2/health/live").status_code == 200
            time.sleep(0.2)
            assert client.get("/v2/health/live").status_code == 200


def test_a_stream_flooding_messages_loses_the_excess_unread(tiny_model: TinyModel) -> None:
    """Case 3: a stream sending frames as fast as the socket takes them is held to its
    message rate; the excess is dropped before any parsing, counted and explained once."""
    clip = random_clip(300)

    async def run(live: LiveServer) -> None:
        async with websockets.connect(f"{live.ws_url}/v1/stream") as ws:
            await configure(ws, stride=100)
            for i, joints in enumerate(clip):
                await ws.send(frame(i / 30, {1: joints}))
            await asyncio.sleep(1.5)  # a stats request beyond the rate would be refused too
            await ws.send(json.dumps({"type": "stats"}))
            messages = await receive_until(ws, lambda m: m["type"] == "stats", timeout=30)
            stats = messages[-1]
            errors = of_type(messages, "error")
            assert [e["code"] for e in errors if e["code"] == "over_rate"] == ["over_rate"]
            assert "more than 100 messages per second" in errors[0]["message"]
            over = stats["dropped_by_reason"]["over_rate"]
            assert over > 0 and stats["frames_received"] == 300
            assert stats["frames_accepted"] + stats["frames_dropped"] == 300

    with serve(tiny_model.path, stream_max_messages_per_s=100) as live:
        asyncio.run(run(live))


def test_request_bytes_are_budgeted_per_address_before_parsing(tiny_model: TinyModel) -> None:
    """Case 6 with big bodies: the bytes one address makes the server parse are bounded."""
    body = {"layout": LAYOUT, "bodies": [{"id": 1, "frames": random_clip(60).tolist()}]}
    size = len(json.dumps(body))
    settings = {"max_request_bytes": int(size * 1.5), "rate_limit_bytes_per_s": size / 10}
    with serve(tiny_model.path, **settings) as live:
        url = f"{live.url}/v1/predict"
        assert httpx.post(url, json=body).status_code == 200
        refused = httpx.post(url, json=body, headers={"X-API-Key": uuid.uuid4().hex})
        assert refused.status_code == 429 and refused.json()["code"] == "rate_limited"
        assert int(refused.headers["retry-after"]) >= 1
        assert refused.headers["connection"] == "close"  # its body is never read
        assert "request bytes per second from this address" in refused.json()["error"]
        transport = httpx.HTTPTransport(local_address="127.0.0.2")
        with httpx.Client(transport=transport) as other:
            assert other.post(url, json=body).status_code == 200
        samples = scrape(live.url)
        labels = {"method": "POST", "route": "/v1/predict", "status": "429"}
        assert value(samples, "masksem_requests_total", **labels) == 1


def test_watchers_are_capped(tiny_model: TinyModel) -> None:
    """Case 5 for watchers: they send nothing after `watch`, so their number is bounded."""

    async def run(live: LiveServer) -> None:
        async with websockets.connect(f"{live.ws_url}/v1/stream") as first:
            await first.send(json.dumps({"type": "watch"}))
            assert json.loads(await first.recv())["type"] == "watching"
            async with websockets.connect(f"{live.ws_url}/v1/stream") as second:
                await second.send(json.dumps({"type": "watch"}))
                reply = json.loads(await second.recv())
                assert (reply["type"], reply["code"]) == ("error", "too_many_watchers")

    with serve(tiny_model.path, max_watchers=1) as live:
        asyncio.run(run(live))
