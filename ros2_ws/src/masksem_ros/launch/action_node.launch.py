"""Launch the MaskSem action node with parameters from a YAML file (default: the package's).

ros2 launch masksem_ros action_node.launch.py model_path:=/path/model.onnx [params_file:=...]
ros2 launch masksem_ros action_node.launch.py models:=/path/default.onnx,/path/interaction.onnx
model_path defaults to $MASKSEM_MODEL; models (comma-separated, each model named by its file's
stem) replaces it. When none is given, the YAML file's model_path or models hold.
"""

import os
from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def action_node(context: LaunchContext) -> list[Node]:
    parameters: list[object] = [LaunchConfiguration("params_file").perform(context)]
    model_path = LaunchConfiguration("model_path").perform(context)
    models = [m.strip() for m in LaunchConfiguration("models").perform(context).split(",")]
    models = [m for m in models if m]
    if models:  # the node takes model_path or models, not both
        parameters.append({"models": models, "model_path": ""})
    elif model_path:
        parameters.append({"model_path": model_path, "models": [""]})
    return [
        Node(
            package="masksem_ros",
            executable="action_node",
            name="masksem_action",
            namespace=LaunchConfiguration("namespace"),
            parameters=parameters,
            output="screen",
            emulate_tty=True,
        )
    ]


def generate_launch_description() -> LaunchDescription:
    share = Path(get_package_share_directory("masksem_ros"))
    return LaunchDescription(
        [
            DeclareLaunchArgument(
                "params_file",
                default_value=str(share / "config" / "action_node.yaml"),
                description="YAML file of the node's parameters",
            ),
            DeclareLaunchArgument(
                "model_path",
                default_value=os.environ.get("MASKSEM_MODEL", ""),
                description="exported .onnx model (its .card.json beside it)",
            ),
            DeclareLaunchArgument(
                "models",
                default_value="",
                description="several .onnx models, comma-separated (instead of model_path)",
            ),
            DeclareLaunchArgument("namespace", default_value=""),
            OpaqueFunction(function=action_node),
        ]
    )
