"""Operations routes: Prometheus ``/metrics``, the live page at ``/``; request counting."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.state import ServiceState, state_dependency

STATIC_DIR = Path(__file__).resolve().parents[1] / "static"

router = APIRouter()


@router.get("/metrics", include_in_schema=False)
async def metrics(state: ServiceState = Depends(state_dependency)) -> Response:
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/", include_in_schema=False)
async def live_page() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html")


class RequestCounter:
    """Counts HTTP requests by method, route template and status in the service's metrics."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            template = route_template(scope)
            state: ServiceState | None = getattr(scope["app"].state, "masksem", None)
            if state is not None:
                state.metrics.requests.labels(scope["method"], template, str(status)).inc()


def route_template(scope: Scope) -> str:
    route = scope.get("route")
    return str(getattr(route, "path", None) or "unmatched")
