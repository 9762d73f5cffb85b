"""Fixtures of the ROS 2 tests: the ROS venv's interpreter, a tiny exported model, a real clip.

rclpy lives in its own venv (scripts/ros_setup.sh builds it): these tests run in the project's
venv and start the node under test and the publishing harness with that venv's Python.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
ROS_PACKAGE = REPO / "ros2_ws" / "src" / "masksem_ros"
# masksem_ros's numpy-only modules (body ids, k4a32 lifting) are tested here without rclpy.
sys.path.insert(0, str(ROS_PACKAGE))

#: A real NW-UCLA clip, 131 frames (4.4 s at 30 fps) of subject 1 dropping trash, view 1.
CLIP_NAME = "a03_s01_e01_v01"


@pytest.fixture(scope="session")
def ros_python() -> Path:
    """The ROS venv's Python (MASKSEM_ROS_PYTHON, default .venv-ros); skip if rclpy is absent."""
    python = Path(os.environ.get("MASKSEM_ROS_PYTHON", REPO / ".venv-ros" / "bin" / "python"))
    how = "build it with scripts/ros_setup.sh .venv-ros, or set MASKSEM_ROS_PYTHON"
    if not python.exists():
        pytest.skip(f"rclpy is not importable: no ROS 2 venv at {python} ({how})")
    probe = subprocess.run(
        [str(python), "-c", "import rclpy, masksem_msgs.msg, masksem_ros.action_node"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if probe.returncode != 0:
        tail = probe.stderr.strip().splitlines()[-1:] or ["no error output"]
        pytest.skip(f"rclpy or masksem_msgs is not importable with {python}: {tail[0]} ({how})")
    return python


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Classifier in the ucla20 layout, exported with its card (ONNX + card)."""
    torch = pytest.importorskip("torch")
    from skeleton.card import CardContent
    from skeleton.clip import WindowSpec
    from training.data.ucla import UCLA_CLASSES
    from training.export import export_onnx
    from training.model.config import ModelConfig
    from training.model.encoder import Encoder
    from training.model.heads import Classifier, LinearHead

    torch.manual_seed(0)
    cfg = ModelConfig(
        persons=2, frames=32, joints=20, patch=4, width=16, depth=1, heads=2,
        decoder_width=16, decoder_depth=1,
    )  # fmt: skip
    head = LinearHead(cfg.width, len(UCLA_CLASSES))
    # Large random weights, so that labels differ from window to window and body to body.
    torch.nn.init.normal_(head.fc.weight, std=1.0)
    fields = CardContent(
        name="tiny-random",
        version="0.0.1",
        labels=tuple(UCLA_CLASSES),
        layout="ucla20",
        window=WindowSpec(frames=32, persons=2, centre_joint=1),
        fps=30.0,
    )
    path = tmp_path_factory.mktemp("model") / "tiny.onnx"
    export_onnx(Classifier(Encoder(cfg), head).eval(), fields, path)
    return path


@pytest.fixture(scope="session")
def ucla_clip(data_root: Path) -> np.ndarray:
    """The real clip ``CLIP_NAME`` as (1, T, 20, 3) float32 in ucla20, metres, Kinect axes."""
    from training.data.ucla import read_ucla_sample

    path = data_root / "nw-ucla" / f"{CLIP_NAME}.json"
    if not path.is_file():
        pytest.skip(f"NW-UCLA clip not found at {path}")
    return read_ucla_sample(path)[0].data
