"""The FastAPI application factory: ``create_app(settings)``; all state lives on the app."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from service import __version__
from service.api import oip, ops, rest, stream_ws
from service.api.errors import install_error_handlers
from service.api.limits import BodySizeLimit, RateLimiter
from service.api.ops import STATIC_DIR, RequestCounter
from service.api.security import ApiKeyGuard, QueryKeyRedactor
from service.api.state import ServiceState
from service.engine import EngineOptions
from service.http_timeouts import header_timeout_protocol
from service.metrics import ServiceMetrics
from service.model_registry import ModelRegistry, plan_models
from service.runtime import BatchingOptions, ModelSlot
from service.settings import ServiceSettings

log = logging.getLogger(__name__)


def build_state(settings: ServiceSettings) -> ServiceState:
    """Everything the routes share; raises :class:`ModelFolderError` when the settings name
    nothing servable (before any model loads)."""
    plan = plan_models(settings)
    metrics = ServiceMetrics()
    engine_options = EngineOptions(
        providers=settings.providers,
        intra_op_threads=settings.intra_op_threads or threads_per_model(len(plan.files)),
        warmup_runs=settings.warmup_runs,
        warmup_batch=settings.max_batch,
    )
    batching = BatchingOptions(
        max_batch=settings.max_batch,
        max_wait_s=settings.max_wait_ms / 1000,
        chunk=settings.max_batch_per_client,
    )
    slots = {
        name: ModelSlot(
            path,
            engine_options,
            batching,
            metrics,
            name=name,
            drain_timeout_s=settings.reload_drain_s,
        )
        for name, path in plan.files.items()
    }
    models = ModelRegistry(slots, default_name=plan.default_name, folder=plan.folder)
    limiter = RateLimiter(settings.rate_limit_per_s, settings.rate_limit_burst)
    return ServiceState(settings=settings, models=models, metrics=metrics, limiter=limiter)


def threads_per_model(models: int) -> int:
    """Each served model infers on its own worker thread at the same time as the others: the
    cores are shared among them rather than each taking all of them, which oversubscribes the
    cores and slows every call (``benchmarks/service_load.py``, events mode)."""
    return max(1, (os.cpu_count() or 1) // max(1, models))


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any interface


def exposure_warning(settings: ServiceSettings) -> str | None:
    """Why this start is reachable from the network with no key (None when it is not)."""
    if settings.api_key is not None or is_loopback(settings.host):
        return None
    return (
        f"listening on {settings.host}, not loopback, with no MASKSEM_API_KEY: anyone who "
        "reaches the port can stream, watch every stream and reload the models"
    )


def create_app(
    settings: ServiceSettings | None = None, *, reload_on_sighup: bool = False
) -> FastAPI:
    """A service over the models the settings name (service/model_registry.py); with
    ``reload_on_sighup`` SIGHUP reloads every model (only where the app runs on the main
    thread's event loop, as under ``masksem serve``)."""
    settings = settings or ServiceSettings()  # type: ignore[call-arg]  # from the environment
    if (warning := exposure_warning(settings)) is not None:
        log.warning(warning)
    state = build_state(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await state.models.start()
        loop = asyncio.get_running_loop()
        pending: set[asyncio.Task[object]] = set()

        def on_sighup() -> None:
            task = loop.create_task(_reload_logged(state))
            pending.add(task)
            task.add_done_callback(pending.discard)

        if reload_on_sighup:
            loop.add_signal_handler(signal.SIGHUP, on_sighup)
        try:
            yield
        finally:
            if reload_on_sighup:
                loop.remove_signal_handler(signal.SIGHUP)
            await state.models.close()

    app = FastAPI(
        title="MaskSem action recognition",
        version=__version__,
        lifespan=lifespan,
    )
    app.state.masksem = state
    install_error_handlers(app)
    # Last added runs first: hide the query key, count every request, then check the key,
    # then the body size.
    byte_limiter = RateLimiter(settings.rate_limit_bytes_per_s, settings.max_request_bytes)
    app.add_middleware(
        BodySizeLimit, max_bytes=settings.max_request_bytes, byte_limiter=byte_limiter
    )
    app.add_middleware(ApiKeyGuard)
    app.add_middleware(RequestCounter)
    app.add_middleware(QueryKeyRedactor)
    app.include_router(oip.health)
    app.include_router(oip.router)
    app.include_router(rest.router)
    app.include_router(stream_ws.router)
    app.include_router(ops.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


async def _reload_logged(state: ServiceState) -> None:
    for name, outcome in (await state.models.reload_all()).items():
        if isinstance(outcome, Exception):
            log.error(
                "SIGHUP reload of %r failed, still serving its previous file: %s", name, outcome
            )
        else:
            card = outcome.card
            log.info("SIGHUP reload: %r now serves %s %s", name, card.name, card.version)


def uvicorn_config(app: FastAPI, settings: ServiceSettings, **overrides: object) -> uvicorn.Config:
    """The server settings ``masksem serve`` runs the app with (message size limit included)."""
    options: dict[str, object] = {
        "host": settings.host,
        "port": settings.port,
        "ws_max_size": settings.max_ws_message_bytes,
        "ws_per_message_deflate": settings.ws_compression,
        "http": header_timeout_protocol(settings.header_timeout_s),
        "log_level": "info",
        **overrides,
    }
    return uvicorn.Config(app, **options)  # type: ignore[arg-type]
