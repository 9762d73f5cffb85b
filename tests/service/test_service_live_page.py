"""The live page at / in headless Chromium: it watches a stream, draws the skeleton and shows
the body's current label. Needs Debian's chromium and chromium-driver and selenium."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import websockets

from tests.service.tiny_service import LAYOUT, LiveServer, random_clip

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
        time.sleep(0.1)


def test_live_page_draws_the_skeleton_and_label(browser: Any, server: LiveServer) -> None:
    browser.get(f"{server.url}/")
    wait_for(lambda: browser.execute_script("return window.masksemLive.parents.length") == 20)
    assert browser.find_element("id", "status").text == "watching"
    assert "tiny 1 (utd20)" in browser.find_element("id", "model").text

    def page_shows(label: str) -> None:
        item = wait_for(lambda: browser.find_elements("css selector", "#bodies li"))
        wait_for(lambda: label in item[0].text)
        assert "body 42" in item[0].text
        lit = browser.execute_script(
            """const c = document.getElementById('skeleton');
            const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let lit = 0; for (let i = 3; i < px.length; i += 4) if (px[i] > 0) lit++;
            return lit;"""
        )
        assert lit > 500  # bones, joints and the label text are on the canvas

    async def robot() -> None:
        async with websockets.connect(f"{server.ws_url}/v1/stream") as ws:
            config = {"type": "config", "layout": LAYOUT, "stride": 10, "min_frames": 10}
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
