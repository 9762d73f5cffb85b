"""Request limits: token-bucket rate limiters per client (requests, body bytes) and a request
body size cap."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Sent with a refusal that leaves the body unread: the connection ends with the answer, so the
#: server never parses the rest of the body (a client that retries at once otherwise makes the
#: event loop read every refused body it sends) and the kernel discards it.
_CLOSE = {"Connection": "close"}


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """``rate`` units (requests, bytes) per second per client with bursts of ``burst``;
    ``rate == 0``: off."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self._buckets: dict[str, _Bucket] = {}

    def acquire(self, client: str, cost: float = 1.0) -> float:
        """Take ``cost`` tokens; return 0 when allowed, else the seconds until they are."""
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
        cost = min(cost, self.burst)  # the most a bucket ever holds: affordable once full
        if bucket.tokens >= cost:
            bucket.tokens -= cost
            return 0.0
        return (cost - bucket.tokens) / self.rate


class BodySizeLimit:
    """Refuses HTTP request bodies over ``max_bytes`` with a JSON 413 that states the limit:
    from ``Content-Length`` before a byte of the body is read, else as soon as the streamed
    body passes it. Either way the route is known by then, so the 413 is counted under it.

    With a ``byte_limiter`` a body is also charged, before it is read, to its client address
    (``Content-Length``, or ``max_bytes`` for a chunked one): parsing big bodies is the costly
    part of a request, so this bounds what one address makes the server parse per second (429
    with ``Retry-After`` beyond)."""

    def __init__(
        self, app: ASGIApp, max_bytes: int, byte_limiter: RateLimiter | None = None
    ) -> None:
        self.app, self.max_bytes, self.byte_limiter = app, max_bytes, byte_limiter

    def message(self, size: int) -> str:
        return f"request body of {size} bytes or more is over the limit of {self.max_bytes} bytes"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", []))
        declared = headers.get(b"content-length", b"")
        seen = int(declared) if declared.isdigit() and int(declared) > self.max_bytes else 0
        # a body of unknown length may be as large as allowed; no body (a GET) costs nothing
        cost = int(declared) if declared.isdigit() else 0
        if b"transfer-encoding" in headers:
            cost = self.max_bytes
        charged = cost == 0

        async def limited_receive() -> Message:
            nonlocal seen, charged
            if seen > self.max_bytes:  # declared too large: refused before reading it
                raise HTTPException(413, self.message(seen), headers=_CLOSE)
            if not charged and self.byte_limiter is not None:
                charged = True
                client = scope["client"][0] if scope.get("client") else "unknown"
                wait = self.byte_limiter.acquire(client, cost)
                if wait > 0:
                    raise HTTPException(
                        429,
                        f"more than {self.byte_limiter.rate:g} request bytes per second from "
                        f"this address; retry in {wait:.2f} s",
                        headers={"Retry-After": str(max(1, math.ceil(wait))), **_CLOSE},
                    )
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    # FastAPI passes an HTTPException raised while reading the body through
                    # to the error handlers, which answer {"error": ..., "code": "too_large"}.
                    raise HTTPException(413, self.message(seen), headers=_CLOSE)
            return message

        await self.app(scope, limited_receive, send)
