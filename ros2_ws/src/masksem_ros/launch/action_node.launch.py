"""Launch the MaskSem action node with parameters from a YAML file (default: the package's).

ros2 launch masksem_ros action_node.launch.py model_path:=/path/model.onnx [params_file:=...]
ros2 launch masksem_ros action_node.launch.py models:=/path/default.onnx,/path/interaction.onnx
model_path defaults to $MASKSEM_MODEL; models (comma-separated, each model named by its file's
stem) replaces it. When none is given, the YAML file's model_path or models hold.

Only the launch glue is here: what the arguments mean for the node is
masksem_ros.launch_params.node_launch, which is tested without launch (not on PyPI).
"""

import os
from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from masksem_ros.launch_params import node_launch


def action_node(context: LaunchContext) -> list[Node]:
    launch = node_launch(
        params_file=LaunchConfiguration("params_file").perform(context),
        model_path=LaunchConfiguration("model_path").perform(context),
        models=LaunchConfiguration("models").perform(context),
        namespace=LaunchConfiguration("namespace").perform(context),
    )
    return [
        Node(
            package="masksem_ros",
            executable="action_node",
            name="masksem_action",
            namespace=launch.namespace,
            parameters=launch.parameters,
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
