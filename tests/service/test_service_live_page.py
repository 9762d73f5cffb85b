"""The live page at / in headless Chromium: it watches a stream, draws the skeleton and shows
the body's current label; during a real PKU-MMD replay to both shipped models it shows each
body's current action per model and a timeline of the action events. Needs Debian's chromium
and chromium-driver and selenium."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import websockets

from benchmarks.live_page_screenshot import (
    ACTIONS,
    CONFIG,
    MODEL_NAMES,
    MODELS,
    SERVER_LIMITS,
    Replay,
    open_actions,
    pku_slice,
    wait_caught_up,
)
from tests.service.tiny_service import LAYOUT, LiveServer, random_clip, serve_folder

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or DRIVER is None,
    reason="needs chromium and chromium-driver (apt-get install chromium chromium-driver)",
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


def wait_for(check: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, "the page did not get there in time"
        time.sleep(0.05)


def test_live_page_draws_the_skeleton_and_label(browser: Any, server: LiveServer) -> None:
    browser.get(f"{server.url}/")
    wait_for(lambda: browser.execute_script("return window.masksemLive.parents.length") == 20)
    assert browser.find_element("id", "status").text == "watching"
    assert "tiny 1 (utd20)" in browser.find_element("id", "model").text

    def page_shows(label: str) -> None:
        item = wait_for(lambda: browser.find_elements("css selector", "#bodies li"))
        wait_for(lambda: label in item[0].text)
        assert "body 42" in item[0].text
        # a model without a none label: its timeline is the runs of the shown label
        bars = item[0].find_elements("css selector", "svg.timeline svg.entry")
        assert bars and bars[-1].get_attribute("data-open") == "true"
        assert bars[-1].get_attribute("data-label") == label
        lit = browser.execute_script(
            """const c = document.getElementById('skeleton');
            const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let lit = 0; for (let i = 3; i < px.length; i += 4) if (px[i] > 0) lit++;
            return lit;"""
        )
        assert lit > 500  # bones, joints and the label text are on the canvas

    async def robot() -> None:
        async with websockets.connect(f"{server.ws_url}/v1/stream") as ws:
            config = {
                "type": "config",
                "layout": LAYOUT,
                "stride": 10,
                "min_frames": 10,
                "backlog": "every",
            }  # a burst: the window ending on frame 30 comes
            await ws.send(json.dumps(config))
            for i, joints in enumerate(random_clip(30)):
                body = {"id": 42, "joints": joints.tolist()}
                await ws.send(json.dumps({"type": "frame", "timestamp": i / 30, "bodies": [body]}))
            while True:
                message = json.loads(await ws.recv())
                if message["type"] == "prediction" and message["window"]["frames"] >= 30:
                    break
            await asyncio.to_thread(page_shows, message["label"])  # still connected

    asyncio.run(robot())
    # the robot has hung up: its bodies leave the page
    wait_for(lambda: not browser.find_elements("css selector", "#bodies li"))


SECONDS = 40  # of the first cross-subject test video: three interactions, background between
STEP_S = 1  # the page is checked after every step of the replay
PAGE = """return [...document.querySelectorAll('#bodies li')].map((li) => ({
  stream: Number(li.dataset.stream), body: Number(li.dataset.body),
  rows: [...li.querySelectorAll('.model')].map((row) => {
    const current = row.querySelector('.current'), line = row.querySelector('svg.timeline');
    return {
      model: row.dataset.model, action: current.dataset.action, text: current.textContent,
      now: Number(line.dataset.now), from: Number(line.dataset.from),
      entries: [...line.querySelectorAll('svg.entry')].map((e) => ({
        label: e.dataset.label, start: Number(e.dataset.start),
        end: e.dataset.end === '' ? null : Number(e.dataset.end),
        open: e.dataset.open === 'true', text: e.querySelector('text').textContent,
        width: Number(e.getAttribute('width')),
      })),
    };
  }),
}));"""


@pytest.fixture(scope="module")
def shipped() -> Iterator[LiveServer]:
    with serve_folder(MODELS, **SERVER_LIMITS) as live:
        yield live


def timeline(received: list[dict], body: int, model: str, since: float) -> list[dict]:
    """What a body's timeline for ``model`` must hold after ``received``: every action of the
    events, open ones with no end, those ended before ``since`` gone."""
    entries: list[dict] = []
    for m in received:
        if m["type"] not in ACTIONS or m["model"] != model or body not in m["bodies"]:
            continue
        if m["type"] == "action_started":
            entries.append({"label": m["label"], "start": m["start"], "end": None})
            continue
        started = [e for e in entries if (e["label"], e["start"]) == (m["label"], m["start"])]
        assert started and started[0]["end"] is None, f"an end without its start: {m}"
        started[0]["end"] = m["end"]
    return [e for e in entries if e["end"] is None or e["end"] >= since]


def check_page(browser: Any, replay: Replay) -> dict[tuple[int, str], dict]:
    """The page shows, for both persons and both models, the current action (or none) and
    the timeline that the stream's action events give; returns its rows by (body, model)."""
    stream = replay.configured["stream"]
    wait_caught_up(browser, replay.received)

    def rows() -> dict[tuple[int, str], dict]:
        page = browser.execute_script(PAGE)
        return {
            (b["body"], r["model"]): r for b in page if b["stream"] == stream for r in b["rows"]
        }

    # skeletons come at 15 per second of stream time: the page's clock is the last one's
    shown = wait_for(
        lambda: (r := rows()) and min(x["now"] for x in r.values()) > replay.played_s - 0.1 and r
    )
    assert sorted(shown) == sorted((body, model) for body in (1, 2) for model in MODEL_NAMES)
    open_ = open_actions(replay.received)
    for (body, model), row in shown.items():
        assert row["now"] <= replay.played_s and row["from"] == row["now"] - 30
        expected = open_[(body, model)]["label"] if (body, model) in open_ else "none"
        assert row["action"] == expected and row["text"].startswith(expected), (body, model)
        entries = [{k: e[k] for k in ("label", "start", "end")} for e in row["entries"]]
        assert entries == timeline(replay.received, body, model, row["from"]), (body, model)
        assert all(
            e["text"] == e["label"] and e["open"] == (e["end"] is None) for e in row["entries"]
        )
    return shown


def test_live_page_shows_the_actions_of_a_pku_mmd_replay(browser: Any, shipped: LiveServer) -> None:
    name, data = pku_slice(SECONDS)
    browser.get(f"{shipped.url}/")
    wait_for(lambda: browser.execute_script("return window.masksemLive.models.size") == 2)
    assert len(browser.execute_script("return window.masksemLive.layouts.ntu25.parents")) == 25

    async def run() -> Replay:
        async with Replay(shipped.ws_url, data, CONFIG) as replay:
            open_bar: dict | None = None  # of body 1's interaction timeline, last step
            grew = 0
            for second in range(STEP_S, SECONDS + 1, STEP_S):
                await replay.play(second)
                shown = await asyncio.to_thread(check_page, browser, replay)
                row = shown[(1, "interaction")]
                bar = next((e for e in row["entries"] if e["open"]), None)
                if bar and open_bar and bar["start"] == open_bar["start"]:
                    assert bar["width"] > open_bar["width"]  # an open action grows until it ends
                    grew += 1
                open_bar = bar
                if second == 30:  # mid-replay, both persons in view: the canvas draws them
                    lit = browser.execute_script(
                        """const c = document.getElementById('skeleton');
                        const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                        let lit = 0; for (let i = 3; i < px.length; i += 4) if (px[i] > 0) lit++;
                        return lit;"""
                    )
                    assert lit > 1000
            assert grew, "no interaction was seen under way twice"
            final = await asyncio.to_thread(check_page, browser, replay)
        events = [m for m in replay.received if m["type"] in ACTIONS]
        assert len(events) >= 4, f"{name}: the slice should hold interactions"
        labels = {e["label"] for row in final.values() for e in row["entries"]}
        assert labels, f"{name}: the last 30 s should show actions"
        return replay

    replay = asyncio.run(run())
    assert {m["type"] for m in replay.received} <= {*ACTIONS, "error"}
    # the replay has hung up: its bodies leave the page
    wait_for(lambda: not browser.find_elements("css selector", "#bodies li"))
