"""Optional API-key authentication (checked before a request body is even read),
per-client-address rate limiting, and keeping the key out of access logs."""

from __future__ import annotations

import math
import secrets
from urllib.parse import parse_qsl, urlencode

from fastapi import Depends
from fastapi.responses import JSONResponse
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from service.api.errors import ApiError, error_body
from service.api.state import ServiceState, get_state, state_dependency

API_KEY_HEADER = "X-API-Key"


def presented_key(conn: HTTPConnection) -> str | None:
    """The key from ``X-API-Key`` or ``Authorization: Bearer``; WebSockets may also use
    ``?api_key=`` because browsers cannot set headers on them."""
    key = conn.headers.get(API_KEY_HEADER)
    if key:
        return key
    auth = conn.headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    if conn.scope["type"] == "websocket":
        query_key: str | None = conn.scope.get(QUERY_KEY_SCOPE)
        return query_key
    return None


QUERY_KEY_SCOPE = "masksem.query_api_key"
QUERY_KEY = "api_key"


class QueryKeyRedactor:
    """Takes ``?api_key=`` out of the request's query string before anything sees it (the
    server's access log prints the query from this very scope) and keeps it aside for
    :func:`presented_key`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        query = scope.get("query_string", b"")
        if scope["type"] in ("http", "websocket") and QUERY_KEY.encode() in query:
            pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
            keys = [v for k, v in pairs if k == QUERY_KEY]
            if keys:
                scope[QUERY_KEY_SCOPE] = keys[0]
                kept = [(k, v if k != QUERY_KEY else "redacted") for k, v in pairs]
                scope["query_string"] = urlencode(kept).encode("latin-1")
        await self.app(scope, receive, send)


def key_is_valid(conn: HTTPConnection, state: ServiceState) -> bool:
    expected = state.settings.api_key
    if expected is None:
        return True
    given = presented_key(conn)
    return given is not None and secrets.compare_digest(
        given.encode(), expected.get_secret_value().encode()
    )


#: Open without a key: health probes and the live page (its WebSocket still needs the key).
PUBLIC_PATHS = ("/v2/health/", "/static/")
PUBLIC_EXACT = ("/",)


class ApiKeyGuard:
    """Answers 401 to HTTP requests without the right key, except for the public paths.
    WebSockets are checked by their route, which can then close with a reason."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        public = path in PUBLIC_EXACT or path.startswith(PUBLIC_PATHS)
        if scope["type"] != "http" or public:
            await self.app(scope, receive, send)
            return
        conn = HTTPConnection(scope)
        if key_is_valid(conn, get_state(conn)):
            await self.app(scope, receive, send)
            return
        body = error_body(
            "unauthorized", f"missing or wrong API key: send it in the {API_KEY_HEADER} header"
        )
        response = JSONResponse(body, status_code=401, headers={"WWW-Authenticate": "ApiKey"})
        await response(scope, receive, send)


def client_address(conn: HTTPConnection) -> str:
    """Who is asking, for rate limits and fair shares: the peer's address. Never a presented
    key: an unchecked one would let every request claim a bucket of its own, and one shared
    key would put every client in one bucket."""
    return conn.client.host if conn.client else "unknown"


async def rate_limit(conn: HTTPConnection, state: ServiceState = Depends(state_dependency)) -> None:
    wait = state.limiter.acquire(client_address(conn))
    if wait > 0:
        raise ApiError(
            429,
            "rate_limited",
            f"more than {state.settings.rate_limit_per_s:g} requests per second; "
            f"retry in {wait:.2f} s",
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        )
