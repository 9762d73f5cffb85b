"""Replay a recorded clip as a live tracker would publish it: SkeletonArray or the Azure Kinect
``body_tracking_data`` MarkerArray, one frame every 1/fps seconds (for demos and tests).

A Kinect v1/v2 clip stands in for Azure Kinect output through ``k4a_joints.lift_to_k4a32``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import rclpy
from masksem_msgs.msg import SkeletonArray
from numpy.typing import NDArray
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.timer import Timer
from visualization_msgs.msg import MarkerArray

from masksem_ros.body_ids import body_id_for
from masksem_ros.k4a_joints import lift_to_k4a32
from masksem_ros.skeleton_messages import (
    DEFAULT_INPUT_TOPICS,
    MARKER_LAYOUT,
    marker_array_message,
    skeleton_array_message,
)
from skeleton.clip import check_clip
from skeleton.layouts import get_layout


def load_clip(path: Path, layout: str) -> NDArray[np.float32]:
    """A clip of the project's folder format: ``.npy``, ``(T, V, 3)`` or ``(M, T, V, 3)``."""
    data = np.load(path, allow_pickle=False)
    clip = check_clip(data[None] if data.ndim == 3 else data, where=str(path))
    joints = get_layout(layout).num_joints
    if clip.shape[2] != joints:
        raise ValueError(f"{path}: {clip.shape[2]} joints per frame, layout {layout} has {joints}")
    return clip


class ReplayNode(Node):
    """Publishes frame ``t`` of a clip stamped ``start + t / fps``; each person is one body."""

    def __init__(
        self,
        clip: NDArray[np.float32],
        layout: str,
        *,
        as_markers: bool,
        topic: str,
        fps: float = 30.0,
        frame_id: str = "camera",
        reliable: bool = False,
        loop: bool = False,
        autostart: bool = True,
    ) -> None:
        super().__init__("masksem_replay")
        self.clip = lift_to_k4a32(clip, layout) if as_markers else clip
        self.layout = MARKER_LAYOUT if as_markers else layout
        self.as_markers, self.fps, self.frame_id, self.loop = as_markers, fps, frame_id, loop
        qos = QoSProfile(depth=10)
        qos.reliability = ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT
        msg_type = MarkerArray if as_markers else SkeletonArray
        self.publisher = self.create_publisher(msg_type, topic, qos)
        self.next_frame = 0
        self.start_ns = 0
        self.timer: Timer | None = None
        if autostart:
            self.start()

    def start(self) -> None:
        """Begin publishing (a test first waits for the node under test to subscribe)."""
        self.start_ns = self.get_clock().now().nanoseconds
        self.timer = self.create_timer(1.0 / self.fps, self.publish_next)

    @property
    def done(self) -> bool:
        return self.next_frame >= self.clip.shape[1] and not self.loop

    def stamp_ns(self, frame: int) -> int:
        return self.start_ns + round(frame * 1e9 / self.fps)

    def publish_next(self) -> None:
        if self.done:
            if self.timer is not None:
                self.timer.cancel()
            return
        t = self.next_frame % self.clip.shape[1]
        stamp = self.stamp_ns(self.next_frame)
        # Person m is the tracker's body m + 1; an all-zero person is not in view.
        present = {m + 1: joints for m, joints in enumerate(self.clip[:, t]) if joints.any()}
        if self.as_markers:
            msg = marker_array_message(present, stamp, self.frame_id)
        else:
            bodies = {body_id_for(m): joints for m, joints in present.items()}
            msg = skeleton_array_message(bodies, self.layout, stamp, self.frame_id)
        self.publisher.publish(msg)
        self.next_frame += 1


def main(argv: Sequence[str] | None = None) -> None:
    args = rclpy.utilities.remove_ros_args(list(sys.argv if argv is None else argv))
    parser = argparse.ArgumentParser(prog="replay", description=__doc__)
    parser.add_argument("clip", type=Path, help=".npy clip, (T, V, 3) or (M, T, V, 3), metres")
    parser.add_argument("--layout", required=True, help="joint layout of the clip, e.g. ucla20")
    parser.add_argument("--as", dest="kind", choices=("skeletons", "markers"), default="skeletons")
    parser.add_argument("--topic", help="default: the action node's default input topic")
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--frame-id", default="camera")
    parser.add_argument("--reliable", action="store_true", help="default: best effort")
    parser.add_argument("--loop", action="store_true")
    opts = parser.parse_args(args[1:])
    clip, layout = load_clip(opts.clip, opts.layout), opts.layout
    as_markers = opts.kind == "markers"
    topic = opts.topic or DEFAULT_INPUT_TOPICS["marker_array" if as_markers else "skeleton_array"]
    rclpy.init(args=list(sys.argv if argv is None else argv))
    node = ReplayNode(
        clip, layout, as_markers=as_markers, topic=topic, fps=opts.fps,
        frame_id=opts.frame_id, reliable=opts.reliable, loop=opts.loop,
    )  # fmt: skip
    try:
        while rclpy.ok() and not node.done:
            rclpy.spin_once(node, timeout_sec=0.1)
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
