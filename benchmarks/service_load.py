"""The service under load: N WebSocket clients stream real skeletons at 30 fps against
``masksem serve`` running in its own process.

    python -m benchmarks.service_load [--model models/default.onnx] [--clients 1 4 16]
                                     [--seconds 20] [--out benchmarks/results/service_load.json]
    python -m benchmarks.service_load --mode events [--clients 4 16]

``windows`` (default): each client replays UTD-MHAD test clips (stride 8) to one model and gets
every window's prediction; latency runs from sending a window's last frame to receiving its
prediction. ``events``: the checkout's ``models/`` folder is served and each client replays a
PKU-MMD cross-subject test video (both persons) to every served model at once (stride 4,
``mode: events``); latency runs from sending the frame an action event was decided on to
receiving the event. A run of one mode keeps the other mode's rows in ``--out``; every row
names its ``models`` and ``mode``.

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
TARGET = {
    "windows": {"clients": 4, "p99_ms": 250.0, "frames_dropped": 0},
    "events": {"clients": 16, "p99_ms": 250.0, "frames_dropped": 0},
}
MODELS = REPO / "models"


@dataclass
class ClientLog:
    latencies_ms: list[float] = field(default_factory=list)
    predictions: int = 0
    frames_sent: int = 0
    frames_dropped: int = 0
    windows_answered: int = 0
    windows_skipped: int = 0
    errors: list[str] = field(default_factory=list)


def real_clips(limit: int) -> tuple[str, list[np.ndarray]]:
    """UTD-MHAD test clips, one person each: (T, V, 3)."""
    from training.data.registry import load_dataset

    data = load_dataset("utd-mhad")
    return data.layout, [s.data[0] for s in data.test[:limit]]


def real_videos(limit: int) -> tuple[str, list[np.ndarray]]:
    """PKU-MMD cross-subject test videos, both persons: (M, T, V, 3)."""
    from training.data.registry import load_streams

    data = load_streams("pku-mmd", benchmark="xsub")
    return "ntu25", [v.data for v in data.test[:limit]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def scrape(url: str) -> dict[str, float]:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            # summed over the served models (histograms without a bucket label)
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
        if args.mode == "events":
            config.update(mode="events", models=args.served, smoothing=0.5, hysteresis=0.1)
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
                elif kind in ("action_started", "action_ended"):
                    decided = sent_at.get(message["timestamp"])
                    if decided is not None:  # not an action ended by its body leaving
                        log.latencies_ms.append(1000 * (loop.time() - decided))
                    log.predictions += 1
                elif kind == "dropped":
                    log.frames_dropped = max(log.frames_dropped, message["frames_dropped"])
                elif kind == "stats":
                    log.frames_dropped = max(log.frames_dropped, message["frames_dropped"])
                    log.windows_answered = message["predictions"]
                    log.windows_skipped = message["windows_skipped"]
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
            persons = clip if clip.ndim == 4 else clip[None]
            for f in range(persons.shape[1]):
                t = frame_index / args.fps
                await asyncio.sleep(max(0.0, start + t - loop.time()))
                body = [
                    {"id": 10 * index + m, "joints": np.round(persons[m, f], 4).tolist()}
                    for m in range(persons.shape[0])
                    if persons[m, f].any()
                ]
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
    answered = sum(log.windows_answered for log in logs)
    skipped = sum(log.windows_skipped for log in logs)
    p50 = float(np.percentile(latencies, 50))
    mean_ms = float(np.mean(latencies))
    ort_ms = 1000 * ort_s / max(calls, 1)
    errors = [e for log in logs for e in log.errors]
    return {
        "clients": clients,
        "p50_ms": round(p50, 1),
        "p99_ms": round(float(np.percentile(latencies, 99)), 1),
        "latency_samples": len(latencies),
        "predictions_per_s": round(sum(log.predictions for log in logs) / args.seconds, 2),
        "frames_dropped": sum(log.frames_dropped for log in logs),
        # strides that got no window of their own (backlog "latest": the body's previous
        # window was still being answered), as a share of all strides
        "windows_skipped_pct": round(100 * skipped / max(skipped + answered, 1), 1),
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
    parser.add_argument("--mode", choices=("windows", "events"), default="windows")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="windows mode")
    parser.add_argument("--clients", type=int, nargs="+", default=None)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--stride", type=int, default=None, help="8 (windows), 4 (events)")
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--clips", type=int, default=64, help="test clips to cycle through")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    events = args.mode == "events"
    args.clients = args.clients or ([4, 16] if events else [1, 4, 16])
    default_stride = 4 if events else 8
    args.stride = args.stride or default_stride
    # a run replaces the earlier run of its mode and stride; the others are kept
    run_key = args.mode if args.stride == default_stride else f"{args.mode}, stride {args.stride}"
    if events:
        args.served = sorted(p.stem for p in MODELS.glob("*.onnx"))
        layout, clips = real_videos(args.clips)
        serve_args = ["--models", str(MODELS)]
        engine = InferenceEngine(MODELS / "default.onnx", EngineOptions())
    else:
        if not args.model.is_file():
            raise SystemExit(f"no model at {args.model}; pass --model")
        args.served = [args.model.stem]
        layout, clips = real_clips(args.clips)
        serve_args = ["--model", str(args.model)]
        engine = InferenceEngine(args.model, EngineOptions())
    load_before = os.getloadavg()[0]  # other work on the machine skews every figure

    first = clips[0][:1, :64] if events else clips[0][None]  # one person, as a window
    window = model_window(first, layout, engine.card)[None]
    engine.run(window)
    raw_ms = 1000 * statistics.median(_timed(engine.run, window) for _ in range(20))

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    server = subprocess.Popen(
        [sys.executable, "-m", "masksem.cli_serve", *serve_args, "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_ready(url, server)
        rows = []
        for clients in args.clients:
            row = run_level(url, server.pid, clients, layout, clips, args)
            rows.append({"models": args.served, "mode": args.mode, "stride": args.stride, **row})
            print(json.dumps(rows[-1]), flush=True)
    finally:
        server.terminate()
        server.wait(30)
    runs = {}
    if args.out.is_file():
        previous = json.loads(args.out.read_text())
        runs = previous.get("runs", {})
    runs[run_key] = {
        "models": args.served,
        "model": {
            "name": engine.card.name,
            "version": engine.card.version,
            "variant": engine.card.variant,
        },  # fmt: skip
        "command": "python -m benchmarks.service_load " + " ".join(sys.argv[1:]),
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "load_average_1min": {"before": load_before, "after": os.getloadavg()[0]},
        },
        "setup": {
            "seconds": args.seconds,
            "stride": args.stride,
            "fps": args.fps,
            "data": "pku-mmd xsub test videos" if events else "utd-mhad test split",
            "raw_onnxruntime_ms_per_window": round(raw_ms, 2),
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        },
        "target": TARGET[args.mode],
        "mode": args.mode,
        "rows": rows,
    }
    every = [row for run in runs.values() for row in run["rows"]]
    result = {"runs": runs, "rows": every, "target": TARGET}
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
    lines = [
        "## The service under load",
        "",
        "N WebSocket clients stream real skeletons at 30 fps against `masksem serve` in its own "
        "process. `windows`: UTD-MHAD test clips to one model, every window's prediction; "
        "latency from a window's last frame sent to its prediction received; target 4 clients, "
        "p99 <= 250 ms, no frame dropped. `events`: PKU-MMD test videos (two persons) to every "
        "shipped model at once, only action events; latency from the frame an event was "
        "decided on to the event received; target 16 clients, p99 <= 250 ms, none dropped. "
        "Streams use the default `backlog: latest`: a body whose window is still being answered "
        "gets its next one from the freshest frames when the answer is in, so under load "
        "strides are skipped (the skipped column, a share of all strides) instead of frames "
        "queuing up and being dropped. Overhead: mean latency over the mean onnxruntime call "
        "time inside the server, minus 1.",
        "",
    ]
    for mode, run in result["runs"].items():
        setup = run["setup"]
        load = run["machine"]["load_average_1min"]
        lines += [
            f"**{mode}** (`{run['command']}`, {setup['date']}, {run['machine']['cores']} cores, "
            f"load average {load['before']:.1f} before, {load['after']:.1f} after): models "
            f"{', '.join(run['models'])}, stride {setup['stride']}, {setup['seconds']:g} s per "
            f"row; raw onnxruntime {setup['raw_onnxruntime_ms_per_window']} ms per window of "
            f"{run['model']['name']}.",
            "",
            "| clients | p50 ms | p99 ms | messages / s | latency samples | frames dropped "
            "| strides skipped | overhead | server CPU |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for r in run["rows"]:
            lines.append(
                f"| {r['clients']} | {r['p50_ms']} | {r['p99_ms']} | {r['predictions_per_s']} | "
                f"{r.get('latency_samples', '-')} | {r['frames_dropped']} | "
                f"{r.get('windows_skipped_pct', '-')} % | {r['overhead_pct']} % | "
                f"{r['server_cpu_pct']} % |"
            )
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
