"""A real PKU-MMD test video over the WebSocket, with both shipped models on the stream: the
action events equal the ones the streaming benchmark computes offline for the same frames."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import websockets

from benchmarks.streaming import FPS, STREAM, CachedInference, replay
from service.engine import InferenceEngine
from service.settings import ServiceSettings
from service.stream import ActionEnded, ActionStarted, StreamConfig
from tests.service.tiny_service import LiveServer
from training.data.registry import load_streams

MODELS = Path(__file__).resolve().parents[2] / "models"
SECONDS = 40  # of the first cross-subject test video: three interactions, background between


@pytest.fixture(scope="module")
def shipped() -> Iterator[LiveServer]:
    settings = ServiceSettings(
        models=MODELS,
        warmup_runs=1,
        # one stream replays 40 s of frames as fast as it can: lift the per-stream pacing,
        # which guards other clients and is not what this test measures
        stream_max_windows_per_s=10_000,
        stream_max_messages_per_s=100_000,
        stream_queue_frames=4096,
    )
    with LiveServer(settings) as live:
        yield live


def pku_video() -> tuple[str, np.ndarray]:
    video = load_streams("pku-mmd", benchmark="xsub").test[0]
    return video.name, video.data[:, : int(SECONDS * FPS)]


async def stream_video(url: str, data: np.ndarray, config: dict[str, Any]) -> list[dict]:
    received: list[dict] = []
    async with websockets.connect(f"{url}/v1/stream", max_size=None) as ws:
        await ws.send(json.dumps({"type": "config", **config}))
        configured = json.loads(await ws.recv())
        assert configured["type"] == "configured", configured
        for t in range(data.shape[1]):
            bodies = [
                {"id": m + 1, "joints": data[m, t].tolist()}
                for m in range(data.shape[0])
                if data[m, t].any()
            ]
            await ws.send(json.dumps({"type": "frame", "timestamp": t / FPS, "bodies": bodies}))
        await ws.send(json.dumps({"type": "stats"}))
        while True:
            message = json.loads(await asyncio.wait_for(ws.recv(), 120))
            if message["type"] == "stats":
                assert message["frames_dropped"] == 0, message
                return received
            received.append(message)


def as_message(event: ActionStarted | ActionEnded) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": "action_started" if isinstance(event, ActionStarted) else "action_ended",
        "model": "interaction",
        "bodies": list(event.bodies),
        "label": event.label,
        "start": event.start,
    }
    if isinstance(event, ActionEnded):
        out["end"] = event.end
    return {**out, "confidence": event.confidence, "timestamp": event.timestamp}


def test_websocket_events_equal_the_benchmarks_offline_events(shipped: LiveServer) -> None:
    name, data = pku_video()
    config = {"layout": "ntu25", "fps": FPS, **STREAM, "models": ["interaction", "default"]}
    # a recording sent faster than real time: every window answered, as offline
    config["backlog"] = "every"
    messages = asyncio.run(stream_video(shipped.ws_url, data, {**config, "mode": "events"}))

    engine = InferenceEngine(MODELS / "interaction.onnx")
    offline_config = StreamConfig(layout="ntu25", fps=FPS, mode="events", **STREAM)  # type: ignore[arg-type]
    (offline,) = replay(data, "ntu25", engine.card, CachedInference(engine), [offline_config])
    # the replay ends the video with every body leaving (an open action ends at the last
    # frame); over the socket the bodies are still there and such an action still open
    last = (data.shape[1] - 1) / FPS
    expected = [
        as_message(e) for e in offline.events if not (isinstance(e, ActionEnded) and e.end == last)
    ]
    assert len(expected) >= 4, f"{name}: the slice should hold interactions"
    interaction = [m for m in messages if m.get("model") == "interaction" and 1 in m["bodies"]]
    assert interaction == expected
    assert all(m["bodies"] == [1, 2] for m in interaction)  # both persons, one event per pair
    # events only: no window predictions; the gesture model ran on the same frames
    assert not [m for m in messages if m["type"] == "prediction"]
    assert {m["type"] for m in messages} <= {"action_started", "action_ended", "error"}
    assert {m["model"] for m in messages if m["type"].startswith("action")} <= {
        "interaction",
        "default",
    }
    metrics = httpx.get(f"{shipped.url}/metrics").text
    started = sum(m["type"] == "action_started" for m in interaction)
    assert f'masksem_actions_total{{event="started",model="interaction"}} {started}.0' in metrics


def test_unknown_models_and_impossible_configs_are_refused_and_the_stream_stays_open(
    shipped: LiveServer,
) -> None:
    async def run() -> list[dict]:
        replies = []
        async with websockets.connect(f"{shipped.ws_url}/v1/stream") as ws:
            for config in (
                {"layout": "ntu25", "models": ["interaction", "nosuch"]},
                {"layout": "ntu25", "models": ["default"], "mode": "events", "decision": "off"},
                {"layout": "ntu25", "models": ["interaction"], "max_bodies": 1},
            ):
                await ws.send(json.dumps({"type": "config", **config}))
                replies.append(json.loads(await ws.recv()))
        return replies

    unknown, off, lonely = asyncio.run(run())
    assert unknown["type"] == "error" and unknown["code"] == "invalid_config"
    assert "nosuch" in unknown["message"] and "interaction" in unknown["message"]
    assert off["type"] == "error" and "'decision' is 'off'" in off["message"]
    assert lonely["type"] == "configured" and [m["served_as"] for m in lonely["models"]] == [
        "interaction"
    ]
    assert "classified alone" in lonely["warnings"][0]
