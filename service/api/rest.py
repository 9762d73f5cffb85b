"""REST routes: ``POST /v1/predict``, ``GET /v1/model`` and ``POST /v1/admin/reload``."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import APIRouter, Body, Depends, Request

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
from service.api.state import ServiceState, get_state
from service.engine import ModelLoadError
from service.preprocess import model_window
from service.runtime import ModelRuntime
from service.stream import softmax, top_k_labels
from skeleton.card import CardError
from skeleton.clip import ClipError
from skeleton.layouts import LayoutError, get_layout

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1")


def model_summary(runtime: ModelRuntime, generation: int) -> dict[str, Any]:
    engine = runtime.engine
    return {
        **runtime.card.to_dict(),
        "runtime": {
            "file": engine.path.name,  # never the server's folders
            "providers": list(engine.providers),
            "warmup_s": engine.warmup_seconds,
            "generation": generation,
        },
    }


@router.get("/model", summary="The model card of the served model")
async def get_model(state: ServiceState = Depends(get_state)) -> dict[str, Any]:
    return model_summary(state.slot.current, state.slot.generation)


@router.post(
    "/predict",
    response_model=PredictResponse,
    dependencies=[Depends(rate_limit)],
    summary="Top-k actions for one window of frames per body",
    openapi_extra=body_schema(PredictRequest),
)
async def predict(http: Request, state: ServiceState = Depends(get_state)) -> PredictResponse:
    request = await parse_body(http, PredictRequest)
    settings = state.settings
    if len(request.bodies) > settings.max_bodies_per_request:
        raise ApiError(
            413,
            "too_large",
            f"{len(request.bodies)} bodies; at most {settings.max_bodies_per_request} per request",
        )
    joints = get_layout(request.layout).num_joints
    async with state.slot.use() as runtime:
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
    state.metrics.predictions.labels("rest").inc(len(windows))
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
    return PredictResponse(model=card.name, version=card.version, predictions=predictions)


@router.post("/admin/reload", summary="Load the model again (or another one) and swap it in")
async def reload_model(
    request: ReloadRequest | None = Body(None), state: ServiceState = Depends(get_state)
) -> dict[str, Any]:
    folder = state.model_folder
    path = None
    if request is not None and request.model:
        path = reload_target(request.model, folder)
    started = time.perf_counter()
    try:
        runtime = await state.slot.reload(path)
    except (CardError, ModelLoadError, FileNotFoundError, ValueError, RuntimeError) as err:
        message = without_folder(str(err), folder)
        log.warning("reload failed, still serving the previous model: %s", message)
        raise ApiError(
            422, "reload_failed", f"{message}; still serving the previous model"
        ) from err
    return {
        "reloaded": True,
        "seconds": round(time.perf_counter() - started, 3),
        "model": model_summary(runtime, state.slot.generation),
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
