"""REST routes: ``POST /v1/predict``, ``GET /v1/model`` and ``POST /v1/admin/reload``."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import APIRouter, Body, Depends

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
from service.api.security import rate_limit
from service.api.state import ServiceState, get_state
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
            "path": str(engine.path),
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
)
async def predict(
    request: PredictRequest, state: ServiceState = Depends(get_state)
) -> PredictResponse:
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
        logits = await runtime.infer(np.stack(windows))
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
    path = Path(request.model) if request is not None and request.model else None
    started = time.perf_counter()
    try:
        runtime = await state.slot.reload(path)
    except (CardError, FileNotFoundError, ValueError, RuntimeError) as err:
        log.warning("reload failed, still serving the previous model: %s", err)
        raise ApiError(422, "reload_failed", f"{err}; still serving the previous model") from err
    return {
        "reloaded": True,
        "seconds": round(time.perf_counter() - started, 3),
        "model": model_summary(runtime, state.slot.generation),
    }
