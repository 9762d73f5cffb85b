"""The service under load: N WebSocket clients replay real UTD-MHAD test clips at 30 fps
(stride 8) against ``masksem serve`` running in its own process.

    python -m benchmarks.service_load [--model models/default.onnx] [--clients 1 4 16]
                                     [--seconds 20] [--out benchmarks/results/service_load.json]

Per client count: prediction latency p50/p99 (from sending the window's last frame to
receiving its prediction), predictions per second, the server's CPU use, frames dropped (as
the server reports them), and the service's overhead over the onnxruntime time it spent
(``overhead_pct`` = mean latency over the mean onnxruntime call inside the server, minus 1:
everything but onnxruntime, from JSON parsing to the batching wait and the reply).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import websockets
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.report import publish
from service.engine import EngineOptions, InferenceEngine
from service.preprocess import model_window

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results" / "service_load.json"
DEFAULT_MODEL = REPO / "models" / "default.onnx"
TARGET = {"clients": 4, "p99_ms": 250.0, "frames_dropped": 0}


@dataclass
class ClientLog:
    latencies_ms: list[float] = field(default_factory=list)
    predictions: int = 0
    frames_sent: int = 0
    frames_dropped: int = 0
    errors: list[str] = field(default_factory=list)


def real_clips(limit: int) -> tuple[str, list[np.ndarray]]:
    from training.data.registry import load_dataset

    data = load_dataset("utd-mhad")
    return data.layout, [s.data[0] for s in data.test[:limit]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def scrape(url: str) -> dict[str, float]:
    """Unlabelled samples, and those labelled by model only summed over every served model."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if set(s.labels) <= {"model"}:
                out[s.name] = out.get(s.name, 0.0) + s.value
    return out


async def client(
    url: str, index: int, layout: str, clips: list[np.ndarray], args: argparse.Namespace,
    deadline: float, log: ClientLog,
) -> None:  # fmt: skip
    sent_at: dict[float, float] = {}
    ws_url = url.replace("http://", "ws://", 1)
    async with websockets.connect(f"{ws_url}/v1/stream", max_size=None) as ws:
        config = {"type": "config", "layout": layout, "fps": args.fps, "stride": args.stride,
                  "top_k": 3}  # fmt: skip
        await ws.send(json.dumps(config))
        assert json.loads(await ws.recv())["type"] == "configured"
        loop = asyncio.get_running_loop()

        async def receive() -> None:
            async for raw in ws:
                message = json.loads(raw)
                kind = message["type"]
                if kind == "prediction":
                    end = message["window"]["end"]
                    log.latencies_ms.append(1000 * (loop.time() - sent_at.pop(end)))
                    log.predictions += 1
                elif kind == "dropped":
                    log.frames_dropped = max(log.frames_dropped, message["frames_dropped"])
                elif kind == "stats":
                    log.frames_dropped = max(log.frames_dropped, message["frames_dropped"])
                    return
                elif kind == "error":
                    log.errors.append(message["message"])

        receiver = asyncio.create_task(receive())
        start = loop.time()
        frame_index = 0
        clip_index = index
        while loop.time() < deadline:
            clip = clips[clip_index % len(clips)]
            clip_index += 1
            for joints in clip:
                t = frame_index / args.fps
                await asyncio.sleep(max(0.0, start + t - loop.time()))
                body = [{"id": index, "joints": np.round(joints, 4).tolist()}]
                sent_at[t] = loop.time()
                await ws.send(json.dumps({"type": "frame", "timestamp": t, "bodies": body}))
                frame_index += 1
                log.frames_sent += 1
                if loop.time() >= deadline:
                    break
        await asyncio.sleep(1.0)  # let the last predictions arrive
        await ws.send(json.dumps({"type": "stats"}))
        await asyncio.wait_for(receiver, 30)


def run_level(
    url: str, pid: int, clients: int, layout: str, clips: list[np.ndarray], args: argparse.Namespace
) -> dict[str, Any]:
    logs = [ClientLog() for _ in range(clients)]
    before, cpu_before, wall_before = scrape(url), cpu_seconds(pid), time.perf_counter()

    async def all_clients() -> None:
        deadline = asyncio.get_running_loop().time() + args.seconds
        await asyncio.gather(
            *(client(url, i, layout, clips, args, deadline, logs[i]) for i in range(clients))
        )

    asyncio.run(all_clients())
    wall = time.perf_counter() - wall_before
    cpu = cpu_seconds(pid) - cpu_before
    after = scrape(url)
    calls = after["masksem_inference_seconds_count"] - before["masksem_inference_seconds_count"]
    ort_s = after["masksem_inference_seconds_sum"] - before["masksem_inference_seconds_sum"]
    windows = after["masksem_batch_size_sum"] - before["masksem_batch_size_sum"]
    latencies = sorted(x for log in logs for x in log.latencies_ms)
    p50 = float(np.percentile(latencies, 50))
    mean_ms = float(np.mean(latencies))
    ort_ms = 1000 * ort_s / max(calls, 1)
    errors = [e for log in logs for e in log.errors]
    return {
        "clients": clients,
        "p50_ms": round(p50, 1),
        "p99_ms": round(float(np.percentile(latencies, 99)), 1),
        "predictions_per_s": round(sum(log.predictions for log in logs) / args.seconds, 2),
        "frames_dropped": sum(log.frames_dropped for log in logs),
        "overhead_pct": round(100 * (mean_ms / ort_ms - 1), 1),
        "mean_ms": round(mean_ms, 1),
        "frames_sent": sum(log.frames_sent for log in logs),
        "predictions": sum(log.predictions for log in logs),
        "server_cpu_pct": round(100 * cpu / wall, 1),
        "onnxruntime_ms_per_call": round(ort_ms, 2),
        "windows_per_call": round(windows / max(calls, 1), 2),
        "errors": errors[:5],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--stride", type=int, default=8)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--clips", type=int, default=64, help="test clips to cycle through")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if not args.model.is_file():
        raise SystemExit(f"no model at {args.model}; pass --model")
    layout, clips = real_clips(args.clips)
    load_before = os.getloadavg()[0]  # other work on the machine skews every figure

    engine = InferenceEngine(args.model, EngineOptions())
    window = model_window(clips[0][None], layout, engine.card)[None]
    engine.run(window)
    raw_ms = 1000 * statistics.median(_timed(engine.run, window) for _ in range(20))

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "masksem.cli_serve",
            "--model",
            str(args.model),
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_ready(url, server)
        rows = []
        for clients in args.clients:
            row = run_level(url, server.pid, clients, layout, clips, args)
            rows.append(row)
            print(json.dumps(row), flush=True)
    finally:
        server.terminate()
        server.wait(30)
    result = {
        "model": {
            "path": str(args.model),
            "name": engine.card.name,
            "version": engine.card.version,
            "variant": engine.card.variant,
        },  # fmt: skip
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "load_average_1min": {"before": load_before, "after": os.getloadavg()[0]},
        },
        "setup": {
            "seconds": args.seconds,
            "stride": args.stride,
            "fps": args.fps,
            "clips": "utd-mhad test split",
            "raw_onnxruntime_ms_per_window": round(raw_ms, 2),
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        },  # fmt: skip
        "target": TARGET,
        "rows": rows,
    }
    publish("service_load", result, args.out, markdown_table(result))


def _timed(fn: Any, *a: Any) -> float:
    start = time.perf_counter()
    fn(*a)
    return time.perf_counter() - start


def wait_ready(url: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"masksem serve exited with {server.returncode}")
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit("masksem serve did not become ready in 120 s")


def markdown_table(result: dict[str, Any]) -> str:
    setup = result["setup"]
    lines = [
        "## The service under load",
        "",
        f"N WebSocket clients replay real UTD-MHAD test clips at {setup['fps']:g} fps, stride "
        f"{setup['stride']}, {setup['seconds']:g} s per row, against `masksem serve` in its own "
        f"process on {result['machine']['cores']} cores, {setup['date']}. Latency: last frame of "
        "a window sent -> its prediction received. Overhead: p50 latency over the mean "
        "onnxruntime call time inside the server, minus 1. Target: 4 clients, p99 <= 250 ms, "
        "no frame dropped. Reproduce: `python -m benchmarks.service_load`.",
        "",
        f"model {result['model']['name']} {result['model']['version']} "
        f"({result['model']['variant']}); raw onnxruntime "
        f"{result['setup']['raw_onnxruntime_ms_per_window']} ms per window",
        "",
        "| clients | p50 ms | p99 ms | predictions / s | frames dropped | overhead | server CPU |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['clients']} | {r['p50_ms']} | {r['p99_ms']} | {r['predictions_per_s']} | "
            f"{r['frames_dropped']} | {r['overhead_pct']} % | {r['server_cpu_pct']} % |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
