"""REST routes: ``POST /v1/predict``, ``GET /v1/model`` and ``POST /v1/admin/reload[/{name}]``.

Each takes the served name of a model (``model`` in the query or the predict body, ``{name}``
in the reload path); without one it acts on the default model."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import APIRouter, Body, Depends, Query, Request

from service.api.body import body_schema, parse_body
from service.api.errors import ApiError
from service.api.schemas import (
    BodyPrediction,
    LabelProbability,
    PredictRequest,
    PredictResponse,
    ReloadRequest,
    ShapeError,
    frames_array,
)
from service.api.security import client_address, rate_limit
from service.api.state import ServiceState, state_dependency
from service.engine import ModelLoadError
from service.model_registry import UnknownModelError
from service.preprocess import model_window
from service.runtime import ModelSlot
from service.stream import softmax, top_k_labels
from skeleton.card import CardError
from skeleton.clip import ClipError
from skeleton.layouts import LayoutError, get_layout

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1")


ModelQuery = Query(
    None, description="the served model's name (GET /v2/models); default: the default model"
)


def model_summary(slot: ModelSlot) -> dict[str, Any]:
    runtime = slot.current
    engine = runtime.engine
    return {
        **runtime.card.to_dict(),
        "runtime": {
            "served_as": slot.name,
            "file": engine.path.name,  # never the server's folders
            "providers": list(engine.providers),
            "warmup_s": engine.warmup_seconds,
            "generation": slot.generation,
        },
    }


def served_model(state: ServiceState, *names: str | None) -> ModelSlot:
    """The model the request names (in the query, the body: they must agree), else the
    default; 404 naming the served models for an unknown name, 503 while it loads."""
    given = {n for n in names if n is not None}
    if len(given) > 1:
        raise ApiError(
            422, "conflicting_model", f"the request names two models: {sorted(given)}; name one"
        )
    try:
        slot = state.models.resolve(given.pop() if given else None)
    except UnknownModelError as err:
        raise ApiError(404, "unknown_model", str(err)) from err
    if not slot.ready:
        raise ApiError(503, "not_ready", f"the model {slot.name!r} is still loading")
    return slot


@router.get("/model", summary="The model card of a served model (default: the default model)")
async def get_model(
    model: str | None = ModelQuery, state: ServiceState = Depends(state_dependency)
) -> dict[str, Any]:
    return model_summary(served_model(state, model))


@router.post(
    "/predict",
    response_model=PredictResponse,
    dependencies=[Depends(rate_limit)],
    summary="Top-k actions for one window of frames per body",
    openapi_extra=body_schema(PredictRequest),
)
async def predict(
    http: Request, model: str | None = ModelQuery, state: ServiceState = Depends(state_dependency)
) -> PredictResponse:
    request = await parse_body(http, PredictRequest)
    slot = served_model(state, model, request.model)
    settings = state.settings
    if len(request.bodies) > settings.max_bodies_per_request:
        raise ApiError(
            413,
            "too_large",
            f"{len(request.bodies)} bodies; at most {settings.max_bodies_per_request} per request",
        )
    joints = get_layout(request.layout).num_joints
    async with slot.use() as runtime:
        card = runtime.card
        windows = []
        for i, body in enumerate(request.bodies):
            await asyncio.sleep(0)  # one body at a time: other clients get the loop between
            where = f"bodies[{i}] (id {body.id!r})"
            if len(body.frames) > settings.max_frames_per_body:
                raise ApiError(
                    413,
                    "too_large",
                    f"{where}: {len(body.frames)} frames; at most "
                    f"{settings.max_frames_per_body} per body",
                )
            try:
                frames = frames_array(body.frames, joints=joints, where=where)
                windows.append(
                    model_window(
                        frames[None],
                        request.layout,
                        card,
                        units_scale=request.units_scale,
                        where=where,
                    )
                )
            except (ShapeError, ClipError, LayoutError) as err:
                raise ApiError(422, "invalid_window", str(err)) from err
            if len(body.frames) < card.window.min_crop_frames:
                raise ApiError(
                    422,
                    "too_short",
                    f"{where}: {len(body.frames)} frames; this model needs at least "
                    f"{card.window.min_crop_frames} (the shortest clip it was trained on)",
                )
        logits = await runtime.infer(np.stack(windows), source=f"rest:{client_address(http)}")
    for i, row in enumerate(logits):
        if not np.isfinite(row).all():
            body = request.bodies[i]
            raise ApiError(
                422,
                "non_finite_output",
                f"bodies[{i}] (id {body.id!r}): the model's output is not finite for this "
                "window; its coordinates are too large (check units_scale and units)",
            )
    state.metrics.predictions.labels("rest", slot.name).inc(len(windows))
    predictions = []
    for body, row in zip(request.bodies, logits, strict=True):
        ranked = top_k_labels(softmax(row), card.labels, request.top_k)
        predictions.append(
            BodyPrediction(
                id=body.id,
                label=ranked[0][0],
                probability=ranked[0][1],
                top_k=[LabelProbability(label=lab, probability=p) for lab, p in ranked],
                frames=len(body.frames),
            )
        )
    return PredictResponse(model=slot.name, version=card.version, predictions=predictions)


@router.post(
    "/admin/reload",
    summary="Load the default model again (or another file of the folder) and swap it in",
)
async def reload_default_model(
    request: ReloadRequest | None = Body(None), state: ServiceState = Depends(state_dependency)
) -> dict[str, Any]:
    return await reload_slot(state.models.default, request, state)


@router.post(
    "/admin/reload/{name}",
    summary="Load one served model again (or another file of the folder) and swap it in",
)
async def reload_named_model(
    name: str,
    request: ReloadRequest | None = Body(None),
    state: ServiceState = Depends(state_dependency),
) -> dict[str, Any]:
    try:
        slot = state.models.get(name)
    except UnknownModelError as err:
        raise ApiError(404, "unknown_model", str(err)) from err
    return await reload_slot(slot, request, state)


async def reload_slot(
    slot: ModelSlot, request: ReloadRequest | None, state: ServiceState
) -> dict[str, Any]:
    """Reload ``slot`` alone: the other models keep serving, untouched (their own slots)."""
    folder = state.models.folder
    path = None
    if request is not None and request.model:
        path = reload_target(request.model, folder)
    started = time.perf_counter()
    try:
        await slot.reload(path)
    except (CardError, ModelLoadError, FileNotFoundError, ValueError, RuntimeError) as err:
        message = without_folder(str(err), folder)
        log.warning("reload of %r failed, still serving its previous file: %s", slot.name, message)
        raise ApiError(
            422, "reload_failed", f"{message}; still serving the previous model"
        ) from err
    return {
        "reloaded": True,
        "seconds": round(time.perf_counter() - started, 3),
        "model": model_summary(slot),
    }


def reload_target(name: str, folder: Path) -> Path:
    """The file ``name`` names inside the model folder; anything outside it is refused the
    same way whether it exists or not, so the reply tells nothing about the server's files."""
    target = (folder / name).resolve()
    if not target.is_relative_to(folder) or target == folder:
        raise ApiError(
            422,
            "reload_refused",
            "'model' must name a file in the served model's folder, e.g. 'other.onnx'",
        )
    return target


def without_folder(message: str, folder: Path) -> str:
    """``message`` with the model folder's absolute path taken out (files keep their name)."""
    return message.replace(f"{folder}/", "").replace(str(folder), "the model folder")
