"""The ROS side of tests/ros, run with the ROS 2 venv's Python: publish skeleton input to the
node under test at 30 fps and record every window prediction and action event it publishes,
as JSON.

``python ros_harness.py SPEC.json`` where the spec says what to publish: ``{"replay": ...}``
replays a clip with masksem_ros.replay.ReplayNode; ``{"script": ...}`` publishes a list of
MarkerArray steps, some of them deliberately malformed.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
from masksem_msgs.msg import ActionEvent, ActionPrediction, ActionPredictionArray, CurrentActions
from masksem_ros.replay import ReplayNode, load_clip
from masksem_ros.skeleton_messages import marker_array_message, time_to_ns
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from visualization_msgs.msg import Marker, MarkerArray

RELIABLE = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
LATCHED = QoSProfile(
    depth=1000, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)


def prediction_record(msg: ActionPrediction) -> dict[str, Any]:
    return {
        "body_id": msg.body_id,
        "label": msg.label,
        "label_index": msg.label_index,
        "confidence": msg.confidence,
        "top_labels": list(msg.top_labels),
        "top_scores": list(msg.top_scores),
        "stamp_ns": time_to_ns(msg.header.stamp),
        "frame_id": msg.header.frame_id,
        "window_start_ns": time_to_ns(msg.window_start),
        "window_end_ns": time_to_ns(msg.window_end),
        "model_version": msg.model_version,
    }


def event_record(msg: ActionEvent) -> dict[str, Any]:
    return {
        "type": "started" if msg.type == ActionEvent.STARTED else "ended",
        "model": msg.model,
        "model_version": msg.model_version,
        "body_ids": list(msg.body_ids),
        "label": msg.label,
        "stamp_ns": time_to_ns(msg.header.stamp),
        "frame_id": msg.header.frame_id,
        "start_ns": time_to_ns(msg.start),
        "end_ns": time_to_ns(msg.end),
        "confidence": msg.confidence,
    }


class Listener(Node):
    """Subscribes to the aggregate topics and to the output topics of the bodies named:
    ``body_topics`` (body -> its window topic), ``event_bodies`` (body -> its topic prefix)."""

    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__("masksem_test_listener")
        self.body_topics: dict[str, str] = spec.get("body_topics", {})
        self.event_bodies: dict[str, str] = spec.get("event_bodies", {})
        self.windows_topic: str | None = spec.get("windows_topic")
        self.aggregate: list[list[dict[str, Any]]] = []
        self.events: list[dict[str, Any]] = []
        self.bodies: dict[str, list[dict[str, Any]]] = {b: [] for b in self.body_topics}
        self.body_events: dict[str, list[dict[str, Any]]] = {b: [] for b in self.event_bodies}
        self.current: dict[str, list[dict[str, Any]]] = {b: [] for b in self.event_bodies}
        self.last_message_at = time.monotonic()
        self.bodies_seen: set[str] = set()  # bodies whose topics were seen at some point
        self.bodies_left_order: list[str] = []  # bodies whose topics went, in that order
        if self.windows_topic:
            self.create_subscription(
                ActionPredictionArray, self.windows_topic, self._on_aggregate, RELIABLE
            )
        self.events_sub = self.create_subscription(
            ActionEvent, spec["events_topic"], self._on_event, RELIABLE
        )
        for body, topic in self.body_topics.items():
            self.create_subscription(
                ActionPrediction, topic, lambda m, b=body: self._on_body(b, m), LATCHED
            )
        for body, prefix in self.event_bodies.items():
            self.create_subscription(
                ActionEvent,
                f"{prefix}/actions",
                lambda m, b=body: self._on_body_event(b, m),
                RELIABLE,
            )

    def subscribe_current(self) -> None:
        """Join each body's latched current_action topic now, late, as a new node would."""
        for body, prefix in self.event_bodies.items():
            self.create_subscription(
                CurrentActions,
                f"{prefix}/current_action",
                lambda m, b=body: self._on_current(b, m),
                LATCHED,
            )

    def _on_aggregate(self, msg: ActionPredictionArray) -> None:
        self.aggregate.append([prediction_record(p) for p in msg.predictions])
        self.last_message_at = time.monotonic()

    def _on_body(self, body: str, msg: ActionPrediction) -> None:
        self.bodies[body].append(prediction_record(msg))
        self.last_message_at = time.monotonic()

    def _on_event(self, msg: ActionEvent) -> None:
        self.events.append(event_record(msg))
        self.last_message_at = time.monotonic()

    def _on_body_event(self, body: str, msg: ActionEvent) -> None:
        self.body_events[body].append(event_record(msg))
        self.last_message_at = time.monotonic()

    def _on_current(self, body: str, msg: CurrentActions) -> None:
        self.current[body].append(
            {
                "body_id": msg.body_id,
                "stamp_ns": time_to_ns(msg.header.stamp),
                "actions": [event_record(a) for a in msg.actions],
            }
        )

    def body_publishers(self) -> dict[str, int]:
        return {b: self.count_publishers(t) for b, t in self.body_topics.items()}

    def event_publishers(self) -> dict[str, int]:
        counts = {b: self.count_publishers(f"{p}/actions") for b, p in self.event_bodies.items()}
        self.bodies_seen.update(b for b, n in counts.items() if n)
        self.bodies_left_order += [
            b for b in self.bodies_seen if not counts[b] and b not in self.bodies_left_order
        ]
        return counts

    def window_publishers(self) -> int:
        """Publishers of window predictions: the windows topic and every body's."""
        topics = [f"{p}/action" for p in self.event_bodies.values()]
        topics += [self.windows_topic] if self.windows_topic else []
        return sum(self.count_publishers(t) for t in topics)


class ScriptNode(Node):
    """Publishes one prepared MarkerArray per timer tick (1/fps), then stops."""

    def __init__(self, steps: list[dict[str, Any]], topic: str, fps: float) -> None:
        super().__init__("masksem_test_script")
        self.steps, self.fps = steps, fps
        self.publisher = self.create_publisher(MarkerArray, topic, RELIABLE)
        self.start_ns = 0
        self.next_step = 0

    def start(self) -> None:
        self.start_ns = self.get_clock().now().nanoseconds
        self.create_timer(1.0 / self.fps, self._tick)

    @property
    def done(self) -> bool:
        return self.next_step >= len(self.steps)

    def _tick(self) -> None:
        if not self.done:
            self.publisher.publish(self._message(self.steps[self.next_step]))
            self.next_step += 1

    def _message(self, step: dict[str, Any]) -> MarkerArray:
        if step.get("defect") == "empty":
            return MarkerArray()
        bodies = {int(b): np.asarray(j, dtype=np.float32) for b, j in step["bodies"].items()}
        msg = marker_array_message(bodies, self.start_ns + step["offset_ns"], "depth_camera_link")
        defect, body = step.get("defect"), step.get("body")
        if defect is None:
            return msg
        ids = [m.id for m in msg.markers]
        if defect == "missing_joint":  # a body without its joint 7
            msg.markers.pop(ids.index(body * 100 + 7))
        elif defect == "nan":
            msg.markers[ids.index(body * 100 + 5)].pose.position.x = math.nan
        elif defect == "bad_id":  # joint 99 does not exist
            msg.markers.append(Marker(header=msg.markers[0].header, id=body * 100 + 99))
        elif defect == "repeat_joint":  # a second, different joint 0: the first one counts
            extra = Marker(header=msg.markers[0].header, id=body * 100)
            extra.pose.position.x = 5.0
            msg.markers.append(extra)
        else:
            raise ValueError(f"unknown defect {defect!r}")
        return msg


def publisher_for(spec: dict[str, Any]) -> ReplayNode | ScriptNode:
    if "replay" in spec:
        replay = spec["replay"]
        clip = load_clip(Path(replay["clip"]), replay["layout"])
        return ReplayNode(
            clip,
            replay["layout"],
            as_markers=replay["as_markers"],
            topic=spec["input_topic"],
            fps=spec["fps"],
            frame_id="camera",
            reliable=True,
            autostart=False,
        )
    return ScriptNode(spec["script"], spec["input_topic"], spec["fps"])


def spin_until(executor: SingleThreadedExecutor, condition: Any, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        executor.spin_once(timeout_sec=0.02)
    return bool(condition())


def until_every_body_left(
    listener: Listener, executor: SingleThreadedExecutor, timeout_s: float
) -> bool:
    """Spin until every body of ``event_bodies`` has had its topics and lost them; then a
    moment more for the messages still on their way."""

    def gone() -> bool:
        counts = listener.event_publishers()
        return len(listener.bodies_seen) == len(counts) and not any(counts.values())

    left = spin_until(executor, gone, timeout_s)
    spin_until(executor, lambda: False, 0.5)
    return left


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    rclpy.init()
    listener = Listener(spec)
    source = publisher_for(spec)
    executor = SingleThreadedExecutor()
    executor.add_node(listener)
    executor.add_node(source)
    result: dict[str, Any] = {"ready": False}
    try:
        # Reliable delivery needs both ends matched before the first frame.
        result["ready"] = spin_until(
            executor,
            lambda: (
                source.publisher.get_subscription_count() >= 1
                and listener.events_sub.get_publisher_count() >= 1
            ),
            spec["startup_timeout_s"],
        )
        if result["ready"]:
            source.start()
            result["start_ns"] = source.start_ns

            def sent_all() -> bool:
                listener.event_publishers()  # notes the bodies whose topics exist by now
                return source.done

            spin_until(executor, sent_all, spec["run_timeout_s"])
            result["published"] = source.next_frame if isinstance(source, ReplayNode) else None
            result["event_publishers_when_sent"] = listener.event_publishers()
            result["window_publishers_when_sent"] = listener.window_publishers()
            if spec.get("drain") == "left":
                # Events only: nothing comes per frame. The node has drained its queue once
                # every body's topics are gone (evicted after idle_timeout_s without frames).
                left = until_every_body_left(listener, executor, spec["run_timeout_s"])
                result["bodies_left"] = left
            else:
                # Let the node drain its queue: done when it has been quiet for a while.
                listener.last_message_at = time.monotonic()
                spin_until(
                    executor,
                    lambda: time.monotonic() - listener.last_message_at > spec["quiet_s"],
                    spec["run_timeout_s"],
                )
            result["publishers_at_end"] = listener.body_publishers()
            if spec.get("late_current_s"):
                listener.subscribe_current()
                spin_until(executor, lambda: False, spec["late_current_s"])
                result["current"] = {b: list(c) for b, c in listener.current.items()}
            if spec.get("wait_for_idle_s"):
                spin_until(executor, lambda: False, spec["wait_for_idle_s"])
                result["publishers_after_idle"] = listener.body_publishers()
            if spec.get("until_left"):
                left = until_every_body_left(listener, executor, spec["run_timeout_s"])
                result["bodies_left"] = left
        result["aggregate"] = listener.aggregate
        result["bodies"] = listener.bodies
        result["events"] = listener.events
        result["body_events"] = listener.body_events
        result["bodies_left_order"] = listener.bodies_left_order
    finally:
        Path(spec["out"]).write_text(json.dumps(result))
        executor.shutdown()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
