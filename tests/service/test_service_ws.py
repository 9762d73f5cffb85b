"""WebSocket /v1/stream on a live server: protocol, errors that keep it open, drops, watch."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from tests.service.tiny_service import LAYOUT, LiveServer, TinyModel, random_clip, serve

Message = dict[str, Any]


def frame(t: float, bodies: dict[Any, np.ndarray]) -> str:
    return json.dumps(
        {
            "type": "frame",
            "timestamp": t,
            "bodies": [{"id": k, "joints": v.tolist()} for k, v in bodies.items()],
        }
    )


async def receive_until(
    ws: ClientConnection, done: Callable[[Message], bool], timeout: float = 15.0
) -> list[Message]:
    """Messages up to and including the first for which ``done`` is true."""
    seen: list[Message] = []
    async with asyncio.timeout(timeout):
        while True:
            message = json.loads(await ws.recv())
            seen.append(message)
            if done(message):
                return seen


async def quiet(ws: ClientConnection, seconds: float = 0.3) -> list[Message]:
    """Everything that arrives until the server has been silent for ``seconds``."""
    seen = []
    while True:
        try:
            seen.append(json.loads(await asyncio.wait_for(ws.recv(), seconds)))
        except TimeoutError:
            return seen


def of_type(messages: list[Message], kind: str) -> list[Message]:
    return [m for m in messages if m["type"] == kind]


async def configure(ws: ClientConnection, **config: object) -> Message:
    await ws.send(json.dumps({"type": "config", "layout": LAYOUT, **config}))
    (configured,) = await receive_until(ws, lambda m: m["type"] in ("configured", "error"))
    return configured


def test_stream_predicts_every_stride_with_its_window(server: LiveServer) -> None:
    async def run() -> None:
        async with websockets.connect(f"{server.ws_url}/v1/stream") as ws:
            # frames sent in a burst: "every" answers each stride (as for a recording)
            configured = await configure(ws, stride=10, min_frames=10, top_k=3, backlog="every")
            assert configured["type"] == "configured" and configured["model"]["name"] == "tiny"
            assert configured["window_s"] == 2.0  # the card's stream window
            clip = random_clip(45)
            for i, joints in enumerate(clip):
                await ws.send(frame(i / 30, {5: joints}))
            messages = await receive_until(ws, lambda m: m.get("window", {}).get("end", 0) > 1.2)
            predictions = of_type(messages, "prediction")
            assert [round(p["window"]["end"] * 30) for p in predictions] == [9, 19, 29, 39]
            first = predictions[0]
            assert first["body"] == 5 and len(first["top_k"]) == 3
            assert first["window"] == {
                "start": pytest.approx(0.0, abs=1e-9), "end": pytest.approx(9 / 30), "frames": 10
            }  # fmt: skip
            assert first["frames_dropped"] == 0 and first["label"] == first["top_k"][0]["label"]
            await ws.send(json.dumps({"type": "stats"}))
            (stats,) = of_type(await receive_until(ws, lambda m: m["type"] == "stats"), "stats")
            assert stats["frames_received"] == stats["frames_accepted"] == 45
            assert stats["bodies"] == [5] and stats["predictions"] == 4

    asyncio.run(run())


def test_errors_are_replied_and_the_stream_stays_open(server: LiveServer) -> None:
    clip = random_clip(20)

    async def run() -> None:
        async with websockets.connect(f"{server.ws_url}/v1/stream") as ws:

            async def error_for(message: str | bytes) -> Message:
                await ws.send(message)
                replies = await receive_until(ws, lambda m: m["type"] == "error")
                return replies[-1]

            assert "send JSON text" in (await error_for(b"\x00\x01"))["message"]
            assert (await error_for("{oops"))["code"] == "malformed_json"
            unknown = await error_for(json.dumps({"type": "hello"}))
            assert "does not match any of the expected tags" in unknown["message"]
            early = await error_for(frame(0.0, {1: clip[0]}))
            assert early["code"] == "not_configured"
            bad_layout = await error_for(json.dumps({"type": "config", "layout": "kinect"}))
            assert "unknown joint layout 'kinect'" in bad_layout["message"]
            no_map = await error_for(json.dumps({"type": "config", "layout": "sbu15"}))
            assert no_map["code"] == "invalid_config" and "cannot be mapped" in no_map["message"]
            assert (await configure(ws, stride=5, min_frames=5))["type"] == "configured"
            short = await error_for(frame(0.5, {1: clip[0][:18]}))
            assert (
                short["message"] == "frame at 0.5 s, bodies[0] (id 1): 18 joints, the layout has 20"
            )
            nan = clip[0].copy()
            nan[3, 0] = np.nan
            bad_value = await error_for(frame(0.6, {1: nan}))  # json writes the NaN literal
            assert (
                "non-finite coordinate" in bad_value["message"]
                and "joint 3" in bad_value["message"]
            )
            first, second = ({"id": 1, "joints": clip[k].tolist()} for k in (0, 1))
            twice = json.dumps({"type": "frame", "timestamp": 0.7, "bodies": [first, second]})
            assert "appears twice" in (await error_for(twice))["message"]
            for i, joints in enumerate(clip[:10]):
                await ws.send(frame(1.0 + i / 30, {1: joints}))
            messages = await receive_until(ws, lambda m: m["type"] == "prediction")
            assert of_type(messages, "prediction")[0]["frames_dropped"] == 4
            await ws.send(json.dumps({"type": "stats"}))
            stats = (await receive_until(ws, lambda m: m["type"] == "stats"))[-1]
            assert stats["dropped_by_reason"]["invalid"] == 4  # early, short, NaN, twice
            assert stats["frames_received"] == 14 and stats["frames_accepted"] == 10

    asyncio.run(run())


def test_duplicates_late_frames_and_evictions_are_reported(server: LiveServer) -> None:
    clip = random_clip(60)

    async def run() -> None:
        async with websockets.connect(f"{server.ws_url}/v1/stream") as ws:
            await configure(ws, stride=100, idle_timeout_s=0.5, window_s=1.0, min_frames=16)
            for i in range(30):
                await ws.send(frame(i / 30, {"a": clip[i], "b": clip[i]}))
            await ws.send(frame(29 / 30, {"a": clip[29], "b": clip[29]}))  # duplicate
            for i in range(30, 60):
                await ws.send(frame(i / 30, {"b": clip[i]}))
            await ws.send(frame(0.1, {"b": clip[0]}))  # older than the 1 s window
            messages = await quiet(ws)
            evicted = of_type(messages, "evicted")
            assert [e["body"] for e in evicted] == ["a"]
            assert evicted[0]["timestamp"] - evicted[0]["last_seen"] > 0.5
            drops = of_type(messages, "dropped")
            assert drops[-1]["frames_dropped"] == 2
            assert drops[-1]["dropped_by_reason"]["duplicate"] == 1
            assert drops[-1]["dropped_by_reason"]["too_late"] == 1
            assert sum(d["new"] for d in drops) == 2

    asyncio.run(run())


def test_overload_drops_frames_and_counts_every_one(tiny_model: TinyModel) -> None:
    """A queue of 2 frames and a 300 ms batch wait: a burst must overflow, and the client must
    learn about every frame that was dropped."""
    clip = random_clip(40)

    async def run(live: LiveServer) -> None:
        async with websockets.connect(f"{live.ws_url}/v1/stream") as ws:
            await configure(ws, stride=1, min_frames=1, backlog="every")
            for i, joints in enumerate(clip):
                await ws.send(frame(i / 30, {1: joints}))
            messages = await quiet(ws, 1.5)
            await ws.send(json.dumps({"type": "stats"}))
            stats = (await receive_until(ws, lambda m: m["type"] == "stats"))[-1]
            drops = of_type(messages, "dropped")
            dropped = stats["dropped_by_reason"]["queue_full"]
            assert dropped > 0 and stats["frames_dropped"] == dropped
            assert stats["frames_received"] == 40 == stats["frames_accepted"] + dropped
            assert drops[-1]["frames_dropped"] == dropped == sum(d["new"] for d in drops)
            assert len(of_type(messages, "prediction")) == stats["frames_accepted"]

    with serve(tiny_model.path, max_wait_ms=300.0, max_batch=64, stream_queue_frames=2) as live:
        asyncio.run(run(live))


def test_stream_limit_closes_extra_connections(tiny_model: TinyModel) -> None:
    async def run(live: LiveServer) -> None:
        async with websockets.connect(f"{live.ws_url}/v1/stream") as first:
            await configure(first)
            async with websockets.connect(f"{live.ws_url}/v1/stream") as second:
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    await second.recv()
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
            assert (await configure(first))["type"] == "configured"  # the first is unaffected

    with serve(tiny_model.path, max_streams=1) as live:
        asyncio.run(run(live))


def test_watchers_see_other_streams(server: LiveServer) -> None:
    clip = random_clip(40)

    async def run() -> None:
        async with websockets.connect(f"{server.ws_url}/v1/stream") as watcher:
            await watcher.send(json.dumps({"type": "watch"}))
            hello = (await receive_until(watcher, lambda m: m["type"] == "watching"))[-1]
            assert hello["model"]["layout"] == LAYOUT and len(hello["parents"]) == 20
            async with websockets.connect(f"{server.ws_url}/v1/stream") as robot:
                await configure(robot, stride=20, min_frames=20)
                for i, joints in enumerate(clip):
                    await robot.send(frame(i / 30, {3: joints}))
                seen = await receive_until(watcher, lambda m: m["type"] == "prediction")
            skeletons = of_type(seen, "skeleton")
            assert skeletons and skeletons[0]["bodies"][0]["id"] == 3
            assert np.array(skeletons[0]["bodies"][0]["joints"]).shape == (20, 3)
            assert seen[-1]["body"] == 3 and "stream" in seen[-1]

    asyncio.run(run())


def test_oversized_messages_close_the_stream_with_1009(tiny_model: TinyModel) -> None:
    async def run(live: LiveServer) -> None:
        async with websockets.connect(f"{live.ws_url}/v1/stream") as ws:
            assert (await configure(ws))["type"] == "configured"
            await ws.send(json.dumps({"type": "frame", "timestamp": 0.0, "pad": "x" * 4096}))
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009

    with serve(tiny_model.path, max_ws_message_bytes=2048) as live:
        asyncio.run(run(live))


@pytest.mark.parametrize("compression", [False, True])
def test_websocket_compression_is_off_unless_asked_for(
    tiny_model: TinyModel, compression: bool
) -> None:
    """Skeleton frames are small: by default no message pays for permessage-deflate."""

    async def run(live: LiveServer) -> str | None:
        async with websockets.connect(f"{live.ws_url}/v1/stream") as ws:  # offers deflate
            assert ws.response is not None
            return ws.response.headers.get("Sec-WebSocket-Extensions")

    settings = {"ws_compression": True} if compression else {}
    with serve(tiny_model.path, **settings) as live:
        agreed = asyncio.run(run(live))
    assert (agreed is not None and "permessage-deflate" in agreed) is compression
