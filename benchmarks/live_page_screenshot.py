"""A screenshot of the live page (``/``) while a real PKU-MMD test video is replayed over the
WebSocket to both shipped models.

    python -m benchmarks.live_page_screenshot [--out service/live_page.png] [--seconds 40]

Serves the checkout's ``models/`` with ``masksem serve`` in its own process, opens the page in
headless Chromium (Debian's ``chromium`` and ``chromium-driver``, and selenium), replays the
first cross-subject test video (both persons as bodies 1 and 2, timestamps t/30) one second at
a time with ``models: ["interaction", "default"]`` and ``mode: "events"``, and saves the page
once an interaction is under way and at least ``--at`` seconds have played, so the timelines
hold earlier actions as well. The replay helpers here are shared with
``tests/service/test_service_live_page.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import websockets

from benchmarks.streaming import FPS, STREAM

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "models"
MODEL_NAMES = ["interaction", "default"]  # the first names the stream's skeleton layout
CONFIG: dict[str, Any] = {
    "layout": "ntu25",
    "fps": FPS,
    **STREAM,
    "models": MODEL_NAMES,
    "mode": "events",
    "backlog": "every",  # faster than real time: every stride answered, as offline
}
# One stream replays a video faster than real time: lift the per-stream pacing, which guards
# other clients and is not what the page shows.
SERVER_LIMITS: dict[str, int] = {
    "stream_max_windows_per_s": 10_000,
    "stream_max_messages_per_s": 100_000,
    "stream_queue_frames": 4096,
}
ACTIONS = ("action_started", "action_ended")
MAX_PNG_BYTES = 300_000


def pku_slice(seconds: float) -> tuple[str, np.ndarray]:
    """The first ``seconds`` of the first cross-subject PKU-MMD test video, ``(M, T, 25, 3)``."""
    from training.data.registry import load_streams

    video = load_streams("pku-mmd", benchmark="xsub").test[0]
    return video.name, video.data[:, : int(seconds * FPS)]


def frame_message(data: np.ndarray, t: int) -> str:
    """Frame ``t`` of a video: person m is body m + 1 (absent persons left out)."""
    bodies = [
        {"id": m + 1, "joints": data[m, t].tolist()}
        for m in range(data.shape[0])
        if data[m, t].any()
    ]
    return json.dumps({"type": "frame", "timestamp": t / FPS, "bodies": bodies})


class Replay:
    """A video streamed over one WebSocket in steps; ``received`` holds every reply but the
    ``configured`` and ``stats`` answers."""

    def __init__(self, ws_url: str, data: np.ndarray, config: dict[str, Any]) -> None:
        self.url, self.data, self.config = f"{ws_url}/v1/stream", data, config
        self.received: list[dict[str, Any]] = []
        self.configured: dict[str, Any] = {}
        self.sent = 0  # frames sent so far
        self._ws: Any = None

    async def __aenter__(self) -> Replay:
        self._ws = await websockets.connect(self.url, max_size=None)
        await self._ws.send(json.dumps({"type": "config", **self.config}))
        self.configured = json.loads(await self._ws.recv())
        if self.configured["type"] != "configured":
            raise RuntimeError(f"the service refused the stream's config: {self.configured}")
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._ws.close()

    @property
    def played_s(self) -> float:
        """Stream time of the last frame sent."""
        return (self.sent - 1) / FPS

    async def play(self, until_s: float) -> list[dict[str, Any]]:
        """Send the frames up to ``until_s`` and wait until the service has processed them
        (its ``stats`` answer comes after them); returns the messages they gave."""
        end = min(int(until_s * FPS) + 1, self.data.shape[1])
        for t in range(self.sent, end):
            await self._ws.send(frame_message(self.data, t))
        self.sent = max(self.sent, end)
        await self._ws.send(json.dumps({"type": "stats"}))
        new: list[dict[str, Any]] = []
        while True:
            message = json.loads(await asyncio.wait_for(self._ws.recv(), 120))
            if message["type"] == "stats":
                if message["frames_dropped"]:
                    raise RuntimeError(f"the service dropped frames: {message}")
                self.received.extend(new)
                return new
            new.append(message)

    @property
    def done(self) -> bool:
        return self.sent >= self.data.shape[1]


def open_actions(messages: list[dict[str, Any]]) -> dict[tuple[Any, str], dict[str, Any]]:
    """(body, model) -> the ``action_started`` still open after ``messages``."""
    open_: dict[tuple[Any, str], dict[str, Any]] = {}
    for m in messages:
        for body in m.get("bodies", []):
            if m["type"] == "action_started":
                open_[(body, m["model"])] = m
            elif m["type"] == "action_ended":
                open_.pop((body, m["model"]), None)
    return open_


def chromium(width: int = 1400, height: int = 760) -> Any:
    """Headless Chromium through selenium; RuntimeError names what is missing."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError as err:
        raise RuntimeError("needs selenium (pip install selenium)") from err
    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if binary is None or driver is None:
        raise RuntimeError(
            "needs chromium and chromium-driver (apt-get install chromium chromium-driver)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    flags = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage")
    for flag in (*flags, f"--window-size={width},{height}", "--hide-scrollbars"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(driver), options=options)


def page_events(browser: Any) -> int:
    """Action events the page has received."""
    return int(browser.execute_script("return window.masksemLive.actionEvents"))


def wait_for(check: Callable[[], Any], timeout: float = 20.0, what: str = "the page") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not get there in {timeout:g} s")
        time.sleep(0.03)


def wait_caught_up(browser: Any, received: list[dict[str, Any]]) -> None:
    """Until the page has had every action event the stream got, and has drawn them."""
    events = sum(m["type"] in ACTIONS for m in received)
    wait_for(lambda: page_events(browser) == events, what=f"the page ({events} action events)")
    # drawing runs on the next animation frame
    browser.execute_async_script(
        "const done = arguments[0]; requestAnimationFrame(() => requestAnimationFrame(done));"
    )


def small_png(png: bytes, limit: int = MAX_PNG_BYTES) -> bytes:
    """The screenshot, reduced to a palette (and scaled down if need be) to stay under
    ``limit`` bytes."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    scale = 1.0
    while True:
        size = (round(image.width * scale), round(image.height * scale))
        small = image.resize(size, Image.Resampling.LANCZOS) if scale < 1 else image
        out = io.BytesIO()
        small.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(out, "PNG", optimize=True)
        if out.tell() < limit or scale < 0.3:
            return out.getvalue()
        scale *= 0.85


async def capture(
    browser: Any, url: str, ws_url: str, data: np.ndarray, out: Path, at_s: float
) -> dict[str, Any]:
    """Replay ``data``; once ``at_s`` seconds have played and an interaction is open, save the
    page as ``out``. Returns what the picture shows."""
    browser.get(f"{url}/")
    wait_for(lambda: browser.execute_script("return window.masksemLive.models.size") > 0)
    async with Replay(ws_url, data, CONFIG) as replay:
        second = 0
        while not replay.done:
            second += 1
            await replay.play(second)
            open_ = open_actions(replay.received)
            # an interaction under way for a while: its open bar has grown
            interactions = [
                m
                for (body, model), m in open_.items()
                if model == "interaction" and replay.played_s - m["start"] >= 2.0
            ]
            if replay.played_s >= at_s and interactions:
                await asyncio.to_thread(wait_caught_up, browser, replay.received)
                png = await asyncio.to_thread(browser.get_screenshot_as_png)
                out.write_bytes(small_png(png))
                return {
                    "at_s": round(replay.played_s, 3),
                    "open": {f"body {b} {model}": m["label"] for (b, model), m in open_.items()},
                    "action_events": sum(m["type"] in ACTIONS for m in replay.received),
                }
    raise RuntimeError(f"no interaction was under way after {at_s:g} s of the video")


def main(argv: list[str] | None = None) -> None:
    from benchmarks.service_load import free_port, wait_ready

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "service" / "live_page.png")
    parser.add_argument("--seconds", type=float, default=40.0, help="of the video to replay")
    parser.add_argument("--at", type=float, default=20.0, help="earliest second to capture")
    args = parser.parse_args(argv)
    name, data = pku_slice(args.seconds)
    try:
        browser = chromium()
    except RuntimeError as err:
        raise SystemExit(str(err)) from None
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        **{f"MASKSEM_{k.upper()}": str(v) for k, v in SERVER_LIMITS.items()},
    }
    env.pop("MASKSEM_MODEL", None)
    command = [sys.executable, "-m", "masksem.cli_serve", "--models", str(MODELS)]
    server = subprocess.Popen(
        [*command, "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_ready(url, server)
        shown = asyncio.run(
            capture(browser, url, f"ws://127.0.0.1:{port}", data, args.out, args.at)
        )
    finally:
        browser.quit()
        server.terminate()
        server.wait(30)
    size = args.out.stat().st_size
    print(f"{args.out} ({size // 1000} kB): PKU-MMD {name}, {json.dumps(shown)}")


if __name__ == "__main__":
    main()
