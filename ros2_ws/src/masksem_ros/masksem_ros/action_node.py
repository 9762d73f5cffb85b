"""The action node: a skeleton topic in, one ActionPrediction per due body window out (on
``/humans/bodies/<id>/action`` and an aggregate topic), through ``service.stream.StreamCore``.

Callbacks only parse and queue; one worker thread runs the stream core and the ONNX model, so
a slow inference drops the oldest queued frames instead of stalling the subscription. The core
counts every drop and evicts every body, as it does for the WebSocket route.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import rclpy
from builtin_interfaces.msg import Time
from masksem_msgs.msg import ActionPrediction, ActionPredictionArray, SkeletonArray
from pydantic import ValidationError
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.publisher import Publisher
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from std_msgs.msg import Header
from visualization_msgs.msg import MarkerArray

from masksem_ros.body_ids import body_id_for
from masksem_ros.settings import NodeSettings, SettingsError, declare_settings
from masksem_ros.skeleton_messages import (
    ParsedFrame,
    ns_to_time,
    parse_marker_array,
    parse_skeleton_array,
)
from masksem_ros.throttled_log import ThrottledWarnings
from service.engine import EngineOptions, InferenceEngine
from service.stream import (
    BoundedFrameQueue,
    ClockJump,
    Eviction,
    Frame,
    FrameDropped,
    Prediction,
    StreamCore,
    StreamError,
    WindowFailed,
)
from skeleton.card import CardError
from skeleton.layouts import LayoutError

#: Longest the executor waits before the node looks at a stop request (SIGINT, SIGTERM).
STOP_POLL_S = 0.1


class ActionNode(Node):
    """Wires parameters, the input subscription and the prediction publishers to a StreamCore."""

    def __init__(self, node_name: str = "masksem_action", **node_kwargs: Any) -> None:
        node_kwargs.setdefault("automatically_declare_parameters_from_overrides", True)
        super().__init__(node_name, **node_kwargs)
        self.settings: NodeSettings = declare_settings(self)
        options = EngineOptions(providers=tuple(self.settings.providers))
        self.engine = InferenceEngine(Path(self.settings.model_path), options)
        self.engine.warm_up()
        card = self.engine.card
        self.model_version = f"{card.name}@{card.version}"
        self.core = StreamCore(self.settings.stream_config(), card)
        self.queue = BoundedFrameQueue(self.settings.queue_capacity)
        self.body_publishers: dict[str, Publisher] = {}
        self.aggregate_publisher = self.create_publisher(
            ActionPredictionArray, self.settings.aggregate_topic, QoSProfile(depth=10)
        )
        self.malformed_messages = 0
        self._warnings = ThrottledWarnings(self.get_logger(), self.settings.log_throttle_s)
        # Stamps go to the core relative to the first one: float seconds since the epoch would
        # lose the nanoseconds that window_start / window_end must give back.
        self._epoch_ns: int | None = None
        self._frame_id = ""
        self._last_bodies_at = time.monotonic()
        self._clear = threading.Event()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._subscribe()
        self._worker = threading.Thread(target=self._work, name="masksem-stream", daemon=True)
        self._worker.start()
        self.get_logger().info(
            f"model {self.model_version} ({card.layout}, {len(card.labels)} labels) on "
            f"{self.engine.provider}; reading {self.settings.input_type} "
            f"({self.settings.camera_layout}) from {self.resolve_topic_name(self.settings.topic)}"
        )

    def _subscribe(self) -> None:
        reliability = (
            ReliabilityPolicy.RELIABLE
            if self.settings.qos_reliability == "reliable"
            else ReliabilityPolicy.BEST_EFFORT
        )
        qos = QoSProfile(
            history=HistoryPolicy.KEEP_LAST, depth=self.settings.qos_depth, reliability=reliability
        )
        if self.settings.input_type == "marker_array":
            self.create_subscription(MarkerArray, self.settings.topic, self._on_markers, qos)
        else:
            self.create_subscription(SkeletonArray, self.settings.topic, self._on_skeletons, qos)

    # -- subscription callbacks (executor thread) ----------------------------------------------
    def _on_skeletons(self, msg: SkeletonArray) -> None:
        self._accept(msg, parse_skeleton_array)

    def _on_markers(self, msg: MarkerArray) -> None:
        self._accept(msg, parse_marker_array)

    def _accept(self, msg: Any, parse: Callable[[Any], ParsedFrame]) -> None:
        try:
            parsed = parse(msg)
            frame = self._frame(parsed)
        except Exception as err:  # noqa: BLE001 - a bad message must never stop the node
            self.malformed_messages += 1
            self._warnings.warn(
                "unreadable",
                f"unreadable input message ({type(err).__name__}: {err}); skipped "
                f"(malformed messages so far: {self.malformed_messages})",
            )
            return
        if parsed.clear_all:
            self._clear.set()
        if frame is not None and not self.queue.offer(frame):
            self._warnings.warn(
                "queue_full",
                f"inference is behind: oldest queued frame dropped ({self.queue.dropped} so "
                "far); raise queue_capacity or stride, or use a faster execution provider",
            )
        self._wake.set()

    def _frame(self, parsed: ParsedFrame) -> Frame | None:
        problems = list(parsed.problems)
        layout = self.settings.camera_layout
        bodies = {}
        for body in parsed.bodies:
            if body.layout != layout:
                problems.append(
                    f"body {body.tracker_id!r} has layout {body.layout}, this node reads {layout} "
                    "(parameter input_layout); body skipped"
                )
                continue
            bodies[body_id_for(body.tracker_id)] = body.joints
        if problems:
            self.malformed_messages += 1
            self._warnings.warn(
                "malformed",
                f"malformed input on {self.settings.topic}: {'; '.join(problems)} "
                f"(malformed messages so far: {self.malformed_messages})",
            )
        if not bodies:
            return None
        stamp_ns = parsed.stamp_ns
        if stamp_ns == 0:
            stamp_ns = self.get_clock().now().nanoseconds
            self._warnings.warn("no_stamp", "input messages carry no stamp; using arrival times")
        if self._epoch_ns is None:
            self._epoch_ns = stamp_ns
        self._frame_id = parsed.frame_id
        return Frame(timestamp=(stamp_ns - self._epoch_ns) / 1e9, bodies=bodies)

    # -- stream worker (own thread) -------------------------------------------------------------
    def _work(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(timeout=0.1)
            self._wake.clear()
            if self._clear.is_set():
                self._clear.clear()
                self._forget_bodies("the tracker deleted all markers")
            frames, dropped = self.queue.drain()
            for timestamp in dropped:  # counted where every other drop is
                self.core.count_drop("queue_full", timestamp=timestamp)
            for frame in frames:
                try:
                    self._process(frame)
                except Exception as err:  # noqa: BLE001 - the worker must outlive any frame
                    if self._stop.is_set():
                        return  # shutting down: the context is gone under the publishers
                    self._warnings.warn("worker", f"frame could not be published: {err}")
            idle = time.monotonic() - self._last_bodies_at
            if self.core.bodies and idle > self.settings.idle_timeout_s:
                # no frames come, so the core's clock stands still: move it on by the wall time
                for eviction in self.core.evict_idle(self.core.latest + idle):
                    self._body_left(str(eviction.body))
                self.get_logger().info(f"all bodies left (no frame for {idle:.1f} s)")

    def _process(self, frame: Frame) -> None:
        self._last_bodies_at = time.monotonic()
        try:
            events = self.core.process(frame, self.engine.run)
        except Exception as err:  # noqa: BLE001 - logged; the next frame gets a fresh try
            self._warnings.warn(
                "inference", f"frame at {frame.timestamp:.3f} s could not be classified: {err}"
            )
            return
        for body_id in self.core.bodies:
            if body_id not in self.body_publishers:
                self._body_appeared(str(body_id))
        predictions = [e for e in events if isinstance(e, Prediction)]
        for event in events:
            if isinstance(event, Eviction):
                self._body_left(str(event.body))
            elif isinstance(event, ClockJump):
                self._warnings.warn(
                    "clock_jump",
                    f"input stamps jumped from {event.previous:.3f} s to {event.timestamp:.3f} s "
                    "(relative to the first); every body restarted",
                )
            elif isinstance(event, WindowFailed):
                self._warnings.warn(
                    "non_finite", f"body {event.body}: window not classified: {event.detail}"
                )
            elif isinstance(event, FrameDropped):
                detail = f": {event.detail}" if event.detail else ""
                body = f", body {event.body}" if event.body is not None else ""
                self._warnings.warn(
                    f"dropped {event.reason}",
                    f"frame dropped ({event.reason}{detail}{body}); "
                    f"{self.core.stats.frames_dropped} dropped so far",
                )
        if predictions:
            self._publish(predictions)

    def _publish(self, predictions: list[Prediction]) -> None:
        messages = [self._message(p) for p in predictions]
        for msg in messages:
            publisher = self.body_publishers.get(msg.body_id) or self._body_appeared(msg.body_id)
            publisher.publish(msg)
        header = Header(stamp=messages[-1].header.stamp, frame_id=self._frame_id)
        self.aggregate_publisher.publish(ActionPredictionArray(header=header, predictions=messages))

    def _message(self, p: Prediction) -> ActionPrediction:
        end = self._stamp(p.end)
        return ActionPrediction(
            header=Header(stamp=end, frame_id=self._frame_id),
            body_id=str(p.body),
            label=p.label,
            label_index=self.core.card.labels.index(p.label),
            confidence=p.probability,
            top_labels=[label for label, _ in p.top_k],
            top_scores=[score for _, score in p.top_k],
            window_start=self._stamp(p.start),
            window_end=end,
            model_version=self.model_version,
        )

    def _stamp(self, seconds: float) -> Time:
        return ns_to_time((self._epoch_ns or 0) + round(seconds * 1e9))

    def _body_appeared(self, body_id: str) -> Publisher:
        # Created with the body's first frame, well before its first prediction, so that
        # subscribers have matched; transient local hands a late subscriber the current action.
        topic = f"{self.settings.body_topic_prefix}/{body_id}/action"
        qos = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        publisher = self.create_publisher(ActionPrediction, topic, qos)
        self.body_publishers[body_id] = publisher
        self.get_logger().info(f"body {body_id} appeared: predictions on {topic}")
        return publisher

    def _body_left(self, body_id: str) -> None:
        publisher = self.body_publishers.pop(body_id, None)
        if publisher is not None:
            self.destroy_publisher(publisher)
        self.get_logger().info(f"body {body_id} left")

    def _forget_bodies(self, why: str) -> None:
        """Every body has left: the core evicts them all (its counters and clock go on)."""
        for eviction in self.core.evict_all():
            self._body_left(str(eviction.body))
        for body_id in list(self.body_publishers):  # announced but never kept by the core
            self._body_left(body_id)
        self.get_logger().info(f"all bodies left ({why})")

    def close(self) -> None:
        """Stop the stream worker; call before destroy_node."""
        self._stop.set()
        self._wake.set()
        self._worker.join(timeout=5.0)


def main(argv: Sequence[str] | None = None) -> None:
    # SIGINT and SIGTERM are ours, not rclpy's: with rclpy's handlers the wake-up of the
    # executor's wait was sometimes lost (rclpy 9.1, Fast DDS: about one SIGINT in five left
    # the node blocked in wait_for_ready_callbacks with no timeout until a second SIGINT).
    # Here a signal only sets an event, and the executor waits at most STOP_POLL_S at a time,
    # so the node stops within that whatever the middleware does with the signal.
    rclpy.init(args=argv, signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()

    def request_stop(signum: int, frame: object) -> None:
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, request_stop)
    try:
        node = ActionNode()
    except (  # a wrong parameter or model: say which, no traceback
        SettingsError,
        CardError,
        LayoutError,
        StreamError,
        ValidationError,
        OSError,
        RuntimeError,
    ) as err:
        print(f"masksem action node: {err}", file=sys.stderr)
        rclpy.try_shutdown()
        sys.exit(2)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        while not stop.is_set() and rclpy.ok():
            executor.spin_once(timeout_sec=STOP_POLL_S)
    except ExternalShutdownException:
        pass
    finally:
        node.close()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
