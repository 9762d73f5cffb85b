"""/metrics: requests, inference latency, batch sizes, queue wait, streams, bodies, drops,
and the model info with its sha256 and the execution provider in use."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import websockets
from prometheus_client.parser import text_string_to_metric_families

from tests.service.tiny_service import LAYOUT, TinyModel, random_clip, serve


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"{url}/metrics").text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_follow_the_traffic(tiny_model: TinyModel) -> None:
    clip = random_clip(40)
    body = {"layout": LAYOUT, "bodies": [{"id": 1, "frames": clip.tolist()}]}
    with serve(tiny_model.path, max_wait_ms=50.0) as live:
        with ThreadPoolExecutor(8) as pool:
            statuses = list(
                pool.map(lambda _: httpx.post(f"{live.url}/v1/predict", json=body).status_code,
                         range(16))
            )  # fmt: skip
        assert statuses == [200] * 16

        async def stream() -> dict:
            async with websockets.connect(f"{live.ws_url}/v1/stream") as ws:
                config = {"type": "config", "layout": LAYOUT, "stride": 10, "min_frames": 10,
                          "backlog": "every"}  # fmt: skip
                await ws.send(json.dumps(config))
                for i, joints in enumerate(clip[:20]):
                    bodies = [{"id": b, "joints": joints.tolist()} for b in (1, 2)]
                    await ws.send(
                        json.dumps({"type": "frame", "timestamp": i / 30, "bodies": bodies})
                    )
                await ws.send(json.dumps({"type": "frame", "timestamp": 19 / 30, "bodies": bodies}))
                while True:
                    message = json.loads(await ws.recv())
                    if message["type"] == "dropped":
                        return await asyncio.to_thread(scrape, live.url)

        during = asyncio.run(stream())
        after = scrape(live.url)
    assert value(during, "masksem_open_streams") == 1
    assert value(during, "masksem_active_bodies") == 2
    assert value(after, "masksem_open_streams") == 0 and value(after, "masksem_active_bodies") == 0
    assert value(after, "masksem_frames_dropped_total", reason="duplicate") == 1
    assert value(after, "masksem_stream_frames_total") == 21
    assert value(after, "masksem_predictions_total", transport="rest", model="tiny") == 16
    assert value(after, "masksem_predictions_total", transport="websocket", model="tiny") == 4
    route = {"method": "POST", "route": "/v1/predict", "status": "200"}
    assert value(after, "masksem_requests_total", **route) == 16
    batches = value(after, "masksem_batch_size_count", model="tiny")
    windows = value(after, "masksem_batch_size_sum", model="tiny")
    assert batches == value(after, "masksem_inference_seconds_count", model="tiny") > 0
    # the tiny model takes two persons: bodies 1 and 2 are one pair, one window per due stride
    # reported for both bodies (4 predictions from 2 windows); one client's requests take one
    # chunk per onnxruntime call (fair batching, service/engine.py), so calls <= windows
    assert windows >= 16 + 2 and batches <= windows
    assert value(after, "masksem_queue_wait_seconds_count", model="tiny") >= 16 + 2
    info = [k for k in after if k[0] == "masksem_model_info"]
    labels = dict(info[0][1])
    assert labels["model"] == "tiny"
    assert labels["sha256"] == tiny_model.card.onnx_sha256
    assert labels["provider"] == "CPUExecutionProvider" and labels["version"] == "1"
