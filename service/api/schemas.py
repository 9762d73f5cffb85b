"""Request and message bodies of the REST, Open Inference Protocol v2 and WebSocket routes."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator

from service.stream import StreamConfig
from skeleton.layouts import get_layout

BodyIdField = int | str


class ShapeError(ValueError):
    """Nested coordinates that do not form the expected array; says where."""


def joints_array(rows: list[list[float]], *, joints: int, where: str) -> NDArray[np.float64]:
    """``(V, 3)`` from nested lists, naming the first joint of the wrong length."""
    if len(rows) == joints:  # the common, well-formed case in one numpy call
        try:
            array = np.asarray(rows, dtype=np.float64)
            if array.shape == (joints, 3):
                return array
        except ValueError:
            pass
    if len(rows) != joints:
        raise ShapeError(f"{where}: {len(rows)} joints, the layout has {joints}")
    for j, point in enumerate(rows):
        if len(point) != 3:
            raise ShapeError(f"{where}, joint {j}: {len(point)} coordinates, need 3 (x, y, z)")
    return np.asarray(rows, dtype=np.float64)


def frames_array(
    frames: list[list[list[float]]], *, joints: int, where: str
) -> NDArray[np.float64]:
    """``(T, V, 3)`` from nested lists, naming the first frame or joint that does not fit."""
    if not frames:
        raise ShapeError(f"{where}: no frames")
    try:  # the common, well-formed case in one numpy call; the loop below names what is wrong
        array = np.asarray(frames, dtype=np.float64)
        if array.ndim == 3 and array.shape[1:] == (joints, 3):
            return array
    except ValueError:
        pass
    for t, rows in enumerate(frames):
        joints_array(rows, joints=joints, where=f"{where}, frame {t}")
    return np.asarray(frames, dtype=np.float64)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- REST ---------------------------------------------------------------------------------------
class BodyWindow(Strict):
    id: BodyIdField = Field(description="the camera's body id; echoed in the answer")
    frames: list[list[list[float]]] = Field(description="(frames, joints, 3) in the given layout")


class PredictRequest(Strict):
    model: str | None = Field(
        None, description="the served model's name (GET /v2/models); default: the default model"
    )
    layout: str = Field(description="joint layout of the frames: ntu25, k4a32, ...")
    units_scale: float = Field(1.0, gt=0, description="multiplies coordinates (1e-3: mm -> m)")
    top_k: int = Field(5, ge=1, le=1000)
    bodies: list[BodyWindow] = Field(min_length=1, description="one window per body")

    @field_validator("layout")
    @classmethod
    def _known_layout(cls, value: str) -> str:
        get_layout(value)
        return value


class LabelProbability(BaseModel):
    label: str
    probability: float


class BodyPrediction(BaseModel):
    id: BodyIdField
    label: str
    probability: float
    top_k: list[LabelProbability]
    frames: int


class PredictResponse(BaseModel):
    model: str = Field(description="the served name of the model that answered")
    version: str
    predictions: list[BodyPrediction]


class ReloadRequest(Strict):
    model: str | None = Field(
        None, description="another ONNX file of the served folder; default: reread its file"
    )


# -- Open Inference Protocol v2 -----------------------------------------------------------------
class InferTensor(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    data: list[Any]
    parameters: dict[str, Any] | None = None


class RequestedOutput(BaseModel):
    name: str
    parameters: dict[str, Any] | None = None


class InferRequest(BaseModel):
    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[InferTensor] = Field(min_length=1)
    outputs: list[RequestedOutput] | None = None


# -- WebSocket ----------------------------------------------------------------------------------
class ConfigMessage(StreamConfig):
    type: Literal["config"]


class BodyJoints(Strict):
    id: BodyIdField
    joints: list[list[float]] = Field(description="(joints, 3) in the configured layout")


class FrameMessage(Strict):
    type: Literal["frame"]
    timestamp: float = Field(description="seconds, any origin, increasing")
    bodies: list[BodyJoints] = Field(default_factory=list)


class StatsMessage(Strict):
    type: Literal["stats"]


class WatchMessage(Strict):
    type: Literal["watch"]


ClientMessage = TypeAdapter(
    Annotated[
        ConfigMessage | FrameMessage | StatsMessage | WatchMessage,
        Field(discriminator="type"),
    ]
)
