"""What action_node.launch.py makes of its arguments: the node's namespace and parameters.

Kept apart from the launch file because ``launch`` and ``launch_ros`` are not on PyPI: this
runs (and is tested) with nothing but the standard library, and the launch file only wires it
to DeclareLaunchArgument, OpaqueFunction and Node.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: One entry of launch_ros Node's ``parameters``: a parameters file, or parameters by name.
ParameterSource = str | dict[str, str | list[str]]


class LaunchArgumentError(ValueError):
    """A launch argument with a value the node cannot use; the message names the argument."""


@dataclass(frozen=True)
class NodeLaunch:
    """The action node as the launch file starts it."""

    namespace: str
    #: In launch_ros's order: later entries override earlier ones.
    parameters: list[ParameterSource]


def model_list(models: str) -> list[str]:
    """``models:=a.onnx,b.onnx`` as a list (spaces around a comma and a trailing comma ignored)."""
    return [path.strip() for path in models.split(",") if path.strip()]


def node_launch(*, params_file: str, model_path: str, models: str, namespace: str) -> NodeLaunch:
    """The node's namespace and parameters for these launch arguments (each a string, as
    launch passes them; every keyword here is a launch argument of the launch file).

    The YAML file comes first; ``models`` or else ``model_path`` override its model keys. The
    node takes one of the two keys, so the other is cleared: a YAML file naming ``models`` and
    ``model_path:=x.onnx`` on the command line must run x.onnx alone. ``models: [""]`` is how a
    ROS parameter says "no models" (a parameter cannot be an empty string list).
    """
    if not Path(params_file).is_file():
        raise LaunchArgumentError(f"launch argument params_file: no such file {params_file!r}")
    parameters: list[ParameterSource] = [params_file]
    paths = model_list(models)
    if paths:  # models wins over model_path, whose default is $MASKSEM_MODEL
        parameters.append({"models": paths, "model_path": ""})
    elif model_path:
        parameters.append({"model_path": model_path, "models": [""]})
    return NodeLaunch(namespace=namespace, parameters=parameters)
