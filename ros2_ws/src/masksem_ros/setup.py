"""ament_python package of the MaskSem action node (colcon on a robot, pip in a venv)."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "masksem_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/config", glob("config/*.yaml")),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
    ],
    install_requires=["setuptools", "numpy", "pyyaml"],
    zip_safe=True,
    maintainer="MaskSem maintainers",
    maintainer_email="masksem@example.org",
    description="ROS 2 node: skeleton topics in, per-body action labels out (MaskSem ONNX).",
    license="MIT",
    entry_points={
        "console_scripts": [
            "action_node = masksem_ros.action_node:main",
            "replay = masksem_ros.replay:main",
        ],
    },
)
