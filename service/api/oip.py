"""Open Inference Protocol v2 (KServe, Triton clients): health, model list, metadata, infer.

Every served model is reachable by its served name (its file stem, service/model_registry.py).
``infer`` takes the model input as it is, preprocessed windows ``(N, persons, frames, V, 3)``,
and returns the raw ``logits``; REST ``/v1/predict`` is the route that preprocesses.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from service import __version__
from service.api.body import body_schema, parse_body
from service.api.errors import ApiError
from service.api.schemas import InferRequest
from service.api.security import client_address, rate_limit
from service.api.state import ServiceState, state_dependency
from service.engine import WindowShapeError
from service.model_registry import UnknownModelError
from service.runtime import ModelSlot
from skeleton.card import INPUT_NAME, OUTPUT_NAME

health = APIRouter(prefix="/v2/health", tags=["health"])
router = APIRouter(prefix="/v2")


@health.get("/live")
async def live() -> dict[str, bool]:
    return {"live": True}


@health.get("/ready")
async def ready(state: ServiceState = Depends(state_dependency)) -> JSONResponse:
    """Ready once every served model has loaded and run its warm-up."""
    ok = state.models.ready
    return JSONResponse({"ready": ok}, status_code=200 if ok else 503)


@router.get("")
async def server_metadata() -> dict[str, Any]:
    return {"name": "masksem", "version": __version__, "extensions": []}


def slot_for(name: str, state: ServiceState) -> ModelSlot:
    """The served model ``name``: 404 naming the served models when there is none."""
    try:
        return state.models.get(name)
    except UnknownModelError as err:
        raise ApiError(404, "unknown_model", str(err)) from err


def ready_slot(name: str, state: ServiceState) -> ModelSlot:
    slot = slot_for(name, state)
    if not slot.ready:
        raise ApiError(503, "not_ready", f"the model {name!r} is still loading")
    return slot


def model_entry(slot: ModelSlot) -> dict[str, Any]:
    """One model of the list: Triton's repository index fields plus the platform."""
    version = slot.current.card.version if slot.ready else ""
    return {
        "name": slot.name,
        "version": version,
        "platform": "onnxruntime_onnx",
        "state": "READY" if slot.ready else "LOADING",
        "ready": slot.ready,
    }


@router.get("/models", summary="Every served model, its version and readiness")
async def list_models(state: ServiceState = Depends(state_dependency)) -> dict[str, Any]:
    return {
        "models": [model_entry(slot) for slot in state.models.slots.values()],
        "default": state.models.default_name,
    }


@router.post("/repository/index", summary="The served models, as KServe and Triton list them")
async def repository_index(state: ServiceState = Depends(state_dependency)) -> list[dict[str, Any]]:
    return [model_entry(slot) for slot in state.models.slots.values()]


@router.get("/models/{name}")
async def model_metadata(
    name: str, state: ServiceState = Depends(state_dependency)
) -> dict[str, Any]:
    card = ready_slot(name, state).current.card
    _, persons, frames, joints, _ = card.input_shape
    return {
        "name": name,
        "versions": [card.version],
        "platform": "onnxruntime_onnx",
        "inputs": [
            {
                "name": INPUT_NAME,
                "datatype": "FP32",
                "shape": [-1, -1 if card.single_person_input else persons, frames, joints, 3],
            }
        ],
        "outputs": [{"name": OUTPUT_NAME, "datatype": "FP32", "shape": [-1, len(card.labels)]}],
    }


@router.get("/models/{name}/ready")
async def model_ready(name: str, state: ServiceState = Depends(state_dependency)) -> JSONResponse:
    ok = slot_for(name, state).ready
    return JSONResponse({"name": name, "ready": ok}, status_code=200 if ok else 503)


def _input_array(request: InferRequest) -> np.ndarray:
    tensors = {t.name: t for t in request.inputs}
    if set(tensors) != {INPUT_NAME} or len(request.inputs) != 1:
        raise ApiError(
            400,
            "bad_input",
            f"expected exactly one input named {INPUT_NAME!r}, got {list(tensors)}",
        )
    tensor = tensors[INPUT_NAME]
    if tensor.datatype != "FP32":
        raise ApiError(400, "bad_input", f"input {INPUT_NAME!r}: datatype must be FP32")
    try:
        flat = np.asarray(tensor.data, dtype=np.float32).reshape(-1)
    except (ValueError, TypeError) as err:
        raise ApiError(
            400,
            "bad_input",
            f"input {INPUT_NAME!r}: data must be numbers in a flat or regular nested list ({err})",
        ) from err
    # math.prod on Python ints cannot overflow, unlike numpy's int64 product
    if any(d < 0 for d in tensor.shape) or flat.size != math.prod(tensor.shape):
        raise ApiError(
            400,
            "bad_input",
            f"input {INPUT_NAME!r}: shape {tensor.shape} needs {math.prod(tensor.shape)} "
            f"values, data has {flat.size}",
        )
    try:
        x = flat.reshape(tensor.shape)
    except ValueError as err:  # e.g. an axis beyond what numpy can index, with no values
        message = f"input {INPUT_NAME!r}: shape {tensor.shape}: {err}"
        raise ApiError(400, "bad_input", message) from err
    if not np.isfinite(x).all():
        where = tuple(int(i) for i in np.argwhere(~np.isfinite(x))[0])
        raise ApiError(400, "bad_input", f"input {INPUT_NAME!r}: non-finite value at {where}")
    return x


@router.post(
    "/models/{name}/infer",
    dependencies=[Depends(rate_limit)],
    openapi_extra=body_schema(InferRequest),
)
async def infer(
    name: str, http: Request, state: ServiceState = Depends(state_dependency)
) -> dict[str, Any]:
    slot = ready_slot(name, state)
    request = await parse_body(http, InferRequest)
    if request.outputs and [o.name for o in request.outputs] != [OUTPUT_NAME]:
        raise ApiError(
            400,
            "bad_output",
            f"the only output is {OUTPUT_NAME!r}, asked for {[o.name for o in request.outputs]}",
        )
    x = _input_array(request)
    cap = state.settings.max_infer_windows
    if x.ndim >= 1 and x.shape[0] > cap:
        raise ApiError(
            413, "too_large", f"{x.shape[0]} windows in one request; at most {cap} (split it)"
        )
    async with slot.use() as runtime:
        try:
            logits = await runtime.infer(x, source=f"oip:{client_address(http)}")
        except WindowShapeError as err:
            raise ApiError(400, "bad_input", f"input {INPUT_NAME!r}: {err}") from err
        card = runtime.card
    if not np.isfinite(logits).all():
        row = int(np.argwhere(~np.isfinite(logits))[0][0])
        raise ApiError(
            422,
            "non_finite_output",
            f"the model's output for window {row} is not finite: its values are too large "
            "for the model's arithmetic",
        )
    state.metrics.predictions.labels("oip", name).inc(len(logits))
    reply: dict[str, Any] = {
        "model_name": name,
        "model_version": card.version,
        "outputs": [
            {
                "name": OUTPUT_NAME,
                "datatype": "FP32",
                "shape": list(logits.shape),
                "data": logits.reshape(-1).tolist(),
            }
        ],
    }
    if request.id is not None:
        reply["id"] = request.id
    return reply
