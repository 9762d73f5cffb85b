"""The action node's settings: one typed model, declared as ROS parameters (from a YAML file)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node

from masksem_ros.skeleton_messages import DEFAULT_INPUT_TOPICS, MARKER_LAYOUT
from service.stream import StreamConfig
from skeleton.layouts import get_layout

InputType = Literal["skeleton_array", "marker_array"]


#: Parameters every rclpy node has.
ROS_OWN_PARAMETERS = frozenset({"use_sim_time", "start_type_description_service"})


class SettingsError(ValueError):
    """A parameter with a wrong value; the message names the parameter."""


class NodeSettings(BaseModel):
    """Every parameter of the action node (see config/action_node.yaml for one per line)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model_path: str = Field("", description="exported .onnx model; its .card.json lies beside it")
    models: list[str] = Field(
        default_factory=list,
        description="several exported .onnx models run on every frame (instead of model_path); "
        "each is named by its file's stem",
    )
    providers: list[str] = Field(
        default_factory=lambda: ["CPUExecutionProvider"], description="onnxruntime providers"
    )
    input_type: InputType = "skeleton_array"
    input_topic: str = Field("", description="empty: /humans/skeletons or body_tracking_data")
    input_layout: str = Field("ntu25", description="layout of SkeletonArray input")
    units_scale: float = Field(1.0, gt=0, description="multiplies coordinates into metres")
    fps: float = Field(30.0, gt=0, description="nominal camera frame rate")
    stride: int = Field(8, ge=1, description="classify after this many new frames of a body")
    top_k: int = Field(5, ge=1)
    smoothing: float = Field(0.0, ge=0.0, lt=1.0, description="EMA weight of past probabilities")
    hysteresis: float = Field(0.0, ge=0.0, le=1.0)
    min_frames: int = Field(32, ge=1, description="frames before a body's first prediction")
    window_s: float = Field(0.0, ge=0.0, description="seconds per window; 0: the model card's")
    idle_timeout_s: float = Field(2.0, gt=0, description="a body unseen this long has left")
    max_bodies: int = Field(8, ge=1)
    event_min_s: float = Field(
        0.3, ge=0.0, le=60.0, description="a label must be shown this long to start/end an action"
    )
    publish_windows: bool | Literal["auto"] = Field(
        "auto",
        description="publish every window's prediction too; auto: only when a model has no "
        "none label (so gives no action events)",
    )
    qos_reliability: Literal["best_effort", "reliable"] = "best_effort"
    qos_depth: int = Field(5, ge=1, description="input subscription history depth")
    queue_capacity: int = Field(64, ge=1, description="frames waiting for inference")
    body_topic_prefix: str = "/humans/bodies"
    aggregate_topic: str = Field("/masksem/actions", description="every action event")
    windows_topic: str = Field("/masksem/windows", description="window predictions, per frame")
    log_throttle_s: float = Field(5.0, ge=0.0)

    @model_validator(mode="after")
    def _models_given(self) -> NodeSettings:
        if bool(self.model_path) == bool(self.models):
            given = "both are set" if self.model_path else "neither is set"
            raise ValueError(
                f"set model_path to an exported .onnx file, or models to a list of them ({given})"
            )
        stems = [Path(path).stem for path in self.model_files_list]
        repeated = sorted({stem for stem in stems if stems.count(stem) > 1})
        if repeated:
            raise ValueError(
                f"models: two files share the name {', '.join(repeated)} (a model is named by "
                "its file's stem)"
            )
        return self

    @property
    def model_files_list(self) -> list[str]:
        return list(self.models) or [self.model_path]

    def model_files(self) -> dict[str, Path]:
        """The models by name (the file's stem), in the order given."""
        return {Path(path).stem: Path(path) for path in self.model_files_list}

    @field_validator("models")
    @classmethod
    def _no_blank(cls, value: list[str]) -> list[str]:
        # ROS parameters cannot hold an empty string list: [""] says "no models" (the launch
        # file's model_path:= sets it so, over a YAML file's list).
        return [path for path in value if path]

    @field_validator("input_layout")
    @classmethod
    def _known_layout(cls, value: str) -> str:
        get_layout(value)
        return value

    @property
    def camera_layout(self) -> str:
        return MARKER_LAYOUT if self.input_type == "marker_array" else self.input_layout

    @property
    def topic(self) -> str:
        return self.input_topic or DEFAULT_INPUT_TOPICS[self.input_type]

    def stream_config(self, publish_windows: bool) -> StreamConfig:
        return StreamConfig(
            layout=self.camera_layout,
            fps=self.fps,
            stride=self.stride,
            top_k=self.top_k,
            smoothing=self.smoothing,
            hysteresis=self.hysteresis,
            units_scale=self.units_scale,
            window_s=self.window_s or None,
            min_frames=self.min_frames,
            idle_timeout_s=self.idle_timeout_s,
            max_bodies=self.max_bodies,
            event_min_s=self.event_min_s,
            mode="windows" if publish_windows else "events",
        )


def declare_settings(node: Node) -> NodeSettings:
    """Declare every setting as a parameter of ``node`` and read them back, validated.

    ``node`` is created with ``automatically_declare_parameters_from_overrides=True``, so that
    a misspelt key of the YAML file shows up here (and is reported) instead of vanishing.
    """
    values: dict[str, Any] = {}
    for name, spec in NodeSettings.model_fields.items():
        if node.has_parameter(name):  # given in the YAML file or on the command line
            values[name] = node.get_parameter(name).value
            continue
        default = spec.get_default(call_default_factory=True)
        # Dynamic typing lets "8.0" for an int reach pydantic, whose error names the field.
        descriptor = ParameterDescriptor(description=spec.description or "", dynamic_typing=True)
        values[name] = node.declare_parameter(name, default, descriptor).value
    given = node.list_parameters([], 0).names
    unknown = sorted(
        n
        for n in set(given) - NodeSettings.model_fields.keys() - ROS_OWN_PARAMETERS
        if not n.startswith("qos_overrides.")  # rclpy's own QoS override parameters
    )
    if unknown:
        node.get_logger().warning(
            f"unknown parameter(s) {', '.join(unknown)} ignored; known: "
            f"{', '.join(NodeSettings.model_fields)}"
        )
    try:
        return NodeSettings(**values)
    except ValidationError as err:
        lines = [
            f"parameter {'.'.join(str(p) for p in e['loc'])}: {e['msg']} (got {e['input']!r})"
            if e["loc"]
            else f"parameters model_path, models: {e['msg']}"  # a rule over several fields
            for e in err.errors()
        ]
        raise SettingsError("; ".join(lines)) from None
