"""Optional API-key authentication: everything but health and the live page needs the key."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import httpx
import pytest
import websockets

from tests.service.tiny_service import LAYOUT, LiveServer, TinyModel, random_clip, serve

KEY = "s3cret-key"


@pytest.fixture(scope="module")
def guarded(tiny_model: TinyModel) -> Iterator[LiveServer]:
    with serve(tiny_model.path, api_key=KEY) as live:
        yield live


def test_health_and_live_page_are_open(guarded: LiveServer) -> None:
    for path in ("/v2/health/live", "/v2/health/ready", "/", "/static/live.js"):
        assert httpx.get(f"{guarded.url}{path}").status_code == 200, path


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/model"),
        ("POST", "/v1/predict"),
        ("POST", "/v1/admin/reload"),
        ("POST", "/v1/admin/reload/tiny"),
        ("GET", "/v2/models"),
        ("POST", "/v2/repository/index"),
        ("GET", "/v2/models/tiny"),
        ("GET", "/v2/models/tiny/ready"),
        ("POST", "/v2/models/tiny/infer"),
        ("GET", "/metrics"),
    ],
)
def test_everything_else_needs_the_key(guarded: LiveServer, method: str, path: str) -> None:
    for headers in ({}, {"X-API-Key": "wrong"}, {"Authorization": "Bearer wrong"}):
        # the key is checked before the body is read: even malformed JSON gets a 401
        reply = httpx.request(method, f"{guarded.url}{path}", headers=headers, content=b"{x")
        assert reply.status_code == 401
        assert reply.json() == {
            "error": "missing or wrong API key: send it in the X-API-Key header",
            "code": "unauthorized",
        }
        assert reply.headers["www-authenticate"] == "ApiKey"


def test_the_key_opens_rest_by_header_or_bearer(guarded: LiveServer) -> None:
    for headers in ({"X-API-Key": KEY}, {"Authorization": f"Bearer {KEY}"}):
        assert httpx.get(f"{guarded.url}/v1/model", headers=headers).status_code == 200
        assert httpx.get(f"{guarded.url}/metrics", headers=headers).status_code == 200
    body = {"layout": LAYOUT, "bodies": [{"id": 1, "frames": random_clip(30).tolist()}]}
    reply = httpx.post(f"{guarded.url}/v1/predict", json=body, headers={"X-API-Key": KEY})
    assert reply.status_code == 200


def test_websocket_needs_the_key_by_header_or_query(guarded: LiveServer) -> None:
    async def run() -> None:
        for url in (f"{guarded.ws_url}/v1/stream", f"{guarded.ws_url}/v1/stream?api_key=no"):
            async with websockets.connect(url) as ws:
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    await ws.recv()
                assert closed.value.rcvd is not None
                assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (
                    1008,
                    "missing or wrong API key",
                )
        config = json.dumps({"type": "config", "layout": LAYOUT})
        for url, headers in (
            (f"{guarded.ws_url}/v1/stream?api_key={KEY}", None),
            (f"{guarded.ws_url}/v1/stream", {"X-API-Key": KEY}),
        ):
            async with websockets.connect(url, additional_headers=headers) as ws:
                await ws.send(config)
                assert json.loads(await ws.recv())["type"] == "configured"

    asyncio.run(run())
