"""Request limits: a token-bucket rate limiter per client and a request body size cap."""

from __future__ import annotations

import time
from dataclasses import dataclass

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """``rate`` requests per second per client with bursts of ``burst``; ``rate == 0``: off."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self._buckets: dict[str, _Bucket] = {}

    def acquire(self, client: str) -> float:
        """Take one token; return 0 when allowed, else the seconds until one is available."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic()
        bucket = self._buckets.get(client)
        if bucket is None:
            if len(self._buckets) > 10_000:  # forget idle clients rather than grow for ever
                refill = self.burst / self.rate
                self._buckets = {k: b for k, b in self._buckets.items() if now - b.updated < refill}
            bucket = self._buckets[client] = _Bucket(float(self.burst), now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.rate


class BodySizeLimit:
    """Refuses HTTP request bodies over ``max_bytes`` with a JSON 413 that states the limit:
    from ``Content-Length`` before a byte of the body is read, else as soon as the streamed
    body passes it. Either way the route is known by then, so the 413 is counted under it."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    def message(self, size: int) -> str:
        return f"request body of {size} bytes or more is over the limit of {self.max_bytes} bytes"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length", b"")
        seen = int(declared) if declared.isdigit() and int(declared) > self.max_bytes else 0

        async def limited_receive() -> Message:
            nonlocal seen
            if seen > self.max_bytes:  # declared too large: refused before reading it
                raise HTTPException(413, self.message(seen))
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    # FastAPI passes an HTTPException raised while reading the body through
                    # to the error handlers, which answer {"error": ..., "code": "too_large"}.
                    raise HTTPException(413, self.message(seen))
            return message

        await self.app(scope, limited_receive, send)
