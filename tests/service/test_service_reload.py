"""Atomic model hot reload: POST /v1/admin/reload under traffic, a refused reload, SIGHUP."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import websockets

from tests.service.tiny_service import (
    LAYOUT,
    TinyModel,
    copy_model,
    random_clip,
    serve,
    start_serve,
    wait_until_ready,
)

REPO = Path(__file__).resolve().parents[2]


def test_reload_under_traffic_fails_no_request(tiny_model: TinyModel, tmp_path: Path) -> None:
    body = {"layout": LAYOUT, "bodies": [{"id": 1, "frames": random_clip(30).tolist()}]}
    statuses: list[int] = []
    versions: set[str] = set()
    stop = threading.Event()

    def hammer() -> None:
        with httpx.Client(timeout=30) as client:
            while not stop.is_set():
                reply = client.post(f"{live.url}/v1/predict", json=body)
                statuses.append(reply.status_code)
                if reply.status_code == 200:
                    versions.add(reply.json()["version"])

    async def stream(messages: list[dict]) -> None:
        clip = random_clip(400, seed=9)
        async with websockets.connect(f"{live.ws_url}/v1/stream") as ws:
            config = {"type": "config", "layout": LAYOUT, "stride": 4, "min_frames": 8}
            await ws.send(json.dumps(config))
            for i, joints in enumerate(clip):
                frame = {"type": "frame", "timestamp": i / 30,
                         "bodies": [{"id": 1, "joints": joints.tolist()}]}  # fmt: skip
                await ws.send(json.dumps(frame))
                await asyncio.sleep(0.005)
            await ws.send(json.dumps({"type": "stats"}))
            while True:
                messages.append(json.loads(await ws.recv()))
                if messages[-1]["type"] == "stats":
                    return

    # hammered on purpose: the byte and window budgets are lifted, so how many requests and
    # windows run depends on the reloads alone, not on how fast this machine sends them
    budgets = {"stream_max_windows_per_s": 10_000, "stream_max_messages_per_s": 100_000}
    with serve(tiny_model.path, rate_limit_bytes_per_s=0, **budgets) as live:
        workers = [threading.Thread(target=hammer) for _ in range(3)]
        for w in workers:
            w.start()
        messages: list[dict] = []
        streamer = threading.Thread(target=lambda: asyncio.run(stream(messages)))
        streamer.start()
        reloads = []
        for target in (tiny_model.path_v2, tiny_model.path, tiny_model.path_v2):
            time.sleep(0.3)
            reloads.append(
                httpx.post(f"{live.url}/v1/admin/reload", json={"model": str(target)}, timeout=30)
            )
        streamer.join(60)
        stop.set()
        for w in workers:
            w.join(30)
        model = httpx.get(f"{live.url}/v1/model").json()
    assert [r.status_code for r in reloads] == [200, 200, 200]
    assert [r.json()["model"]["runtime"]["generation"] for r in reloads] == [2, 3, 4]
    assert model["version"] == "2" and model["runtime"]["file"] == tiny_model.path_v2.name
    assert len(statuses) > 20 and set(statuses) == {200}
    assert versions == {"1", "2"}
    assert not [m for m in messages if m["type"] == "error"]
    assert len([m for m in messages if m["type"] == "model_changed"]) >= 1
    stats = messages[-1]
    assert stats["frames_accepted"] == 400 and stats["frames_dropped"] == 0
    assert stats["predictions"] == len([m for m in messages if m["type"] == "prediction"]) > 50


def test_a_refused_reload_keeps_the_old_model(tiny_model: TinyModel, tmp_path: Path) -> None:
    served = copy_model(tiny_model.path, tmp_path / "served.onnx")
    broken = copy_model(tiny_model.path_v2, tmp_path / "broken.onnx")
    card_path = tmp_path / "broken.card.json"
    card = json.loads(card_path.read_text())
    card["onnx_sha256"] = "0" * 64
    card_path.write_text(json.dumps(card))
    with serve(served) as live:
        reply = httpx.post(f"{live.url}/v1/admin/reload", json={"model": str(broken)})
        assert reply.status_code == 422 and reply.json()["code"] == "reload_failed"
        assert "does not match" in reply.json()["error"]
        assert "still serving the previous model" in reply.json()["error"]
        assert httpx.get(f"{live.url}/v1/model").json()["version"] == "1"
        metrics = httpx.get(f"{live.url}/metrics").text
        assert 'masksem_reloads_total{model="served",outcome="failed"} 1.0' in metrics


def test_masksem_serve_reloads_on_sighup_without_torch(
    tiny_model: TinyModel, tmp_path: Path
) -> None:
    model = copy_model(tiny_model.path, tmp_path / "served.onnx")
    process, url = start_serve(["--model", str(model)], tmp_path)
    try:
        wait_until_ready(process, url)
        maps = Path(f"/proc/{process.pid}/maps").read_text()
        assert "libtorch" not in maps  # the service never loads torch
        assert httpx.get(f"{url}/v1/model").json()["version"] == "1"
        copy_model(tiny_model.path_v2, model)  # a new export lands on the served path
        process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 30
        while httpx.get(f"{url}/v1/model").json()["version"] != "2":
            assert time.monotonic() < deadline, "SIGHUP did not reload the model"
            time.sleep(0.1)
        assert process.poll() is None
    finally:
        process.terminate()
        process.wait(30)


def test_masksem_serve_refuses_a_malformed_card(tiny_model: TinyModel, tmp_path: Path) -> None:
    model = copy_model(tiny_model.path, tmp_path / "m.onnx")
    (tmp_path / "m.card.json").write_text('{"name": "tiny",\n "labels": [}')
    result = subprocess.run(
        [sys.executable, "-m", "masksem.cli_serve", "--model", str(model)],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert f"refusing to serve {model}: {tmp_path / 'm.card.json'}: not valid JSON (line 2" in (
        result.stderr
    )


def test_masksem_serve_without_a_model_says_what_to_do(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "masksem.cli_serve", "--model", str(tmp_path / "none.onnx")],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert f"no model at {tmp_path / 'none.onnx'}: pass --model" in result.stderr
