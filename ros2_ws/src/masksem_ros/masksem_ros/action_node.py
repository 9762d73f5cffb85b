"""The action node: a skeleton topic in, action events out, through one
``service.stream.StreamCore`` over every model of the node.

Out: an ``ActionEvent`` whenever an action starts or ends (on ``/humans/bodies/<id>/actions``
of every body it names, and on the aggregate topic); each body's open actions, latched, on
``/humans/bodies/<id>/current_action``; and, when asked (``publish_windows``, or a model
without a none label), every window's ``ActionPrediction`` as before (on
``/humans/bodies/<id>/action`` and the windows topic). The core decides every start and end;
the node only carries them, and mirrors what it published to answer "what now" for a late
subscriber.

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
from dataclasses import dataclass
from typing import Any

import rclpy
from builtin_interfaces.msg import Time
from masksem_msgs.msg import (
    ActionEvent,
    ActionPrediction,
    ActionPredictionArray,
    CurrentActions,
    SkeletonArray,
)
from pydantic import ValidationError
from rclpy.duration import Duration
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
    ActionEnded,
    ActionStarted,
    BoundedFrameQueue,
    ClockJump,
    Eviction,
    Frame,
    FrameDropped,
    Prediction,
    StreamCore,
    StreamError,
    StreamEvent,
    WindowFailed,
)
from skeleton.card import CardError, ModelCard
from skeleton.layouts import LayoutError

#: Longest the executor waits before the node looks at a stop request (SIGINT, SIGTERM).
STOP_POLL_S = 0.1


#: Depth of the event topics: events are rare, and a subscriber that lags should still get them.
EVENT_QUEUE_DEPTH = 100
#: Longest a departed body's topics wait for their subscribers to acknowledge the last messages.
RETIRE_TIMEOUT_S = 2.0
#: Latched: a subscriber that joins late gets the last message (a body's current actions).
LATCHED = QoSProfile(
    depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)


@dataclass
class BodyTopics:
    """The output topics of one body, from its first frame until it leaves."""

    actions: Publisher  # ActionEvent
    current: Publisher  # CurrentActions, latched
    window: Publisher | None  # ActionPrediction, when windows are published


class ActionNode(Node):
    """Wires parameters, the input subscription and the output publishers to a StreamCore."""

    def __init__(self, node_name: str = "masksem_action", **node_kwargs: Any) -> None:
        node_kwargs.setdefault("automatically_declare_parameters_from_overrides", True)
        super().__init__(node_name, **node_kwargs)
        self.settings: NodeSettings = declare_settings(self)
        options = EngineOptions(providers=tuple(self.settings.providers))
        self.engines = {
            name: InferenceEngine(path, options)
            for name, path in self.settings.model_files().items()
        }
        for engine in self.engines.values():
            engine.warm_up()
        cards = {name: engine.card for name, engine in self.engines.items()}
        self.model_versions = {name: f"{c.name}@{c.version}" for name, c in cards.items()}
        self.publish_windows = self._publish_windows(cards)
        self.core = StreamCore(self.settings.stream_config(self.publish_windows), cards)
        self._infer = {name: engine.run for name, engine in self.engines.items()}
        self.queue = BoundedFrameQueue(self.settings.queue_capacity)
        self.body_topics: dict[str, BodyTopics] = {}
        # What this node last said each body is doing, per model (the STARTED event of the
        # open action): the core's decisions as published, for the latched current_action.
        self.open_actions: dict[str, dict[str, ActionEvent]] = {}
        self.event_publisher = self.create_publisher(
            ActionEvent,
            self.settings.aggregate_topic,
            QoSProfile(depth=EVENT_QUEUE_DEPTH, reliability=ReliabilityPolicy.RELIABLE),
        )
        self.windows_publisher = (
            self.create_publisher(
                ActionPredictionArray, self.settings.windows_topic, QoSProfile(depth=10)
            )
            if self.publish_windows
            else None
        )
        self.malformed_messages = 0
        self._warnings = ThrottledWarnings(self.get_logger(), self.settings.log_throttle_s)
        # Stamps go to the core relative to the first one: float seconds since the epoch would
        # lose the nanoseconds that window_start / window_end must give back.
        self._epoch_ns: int | None = None
        self._frame_id = ""
        self._last_bodies_at = time.monotonic()
        # a departed body's publishers, kept until their last messages are acknowledged
        self._retiring: list[tuple[float, list[Publisher]]] = []
        self._clear = threading.Event()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._subscribe()
        self._worker = threading.Thread(target=self._work, name="masksem-stream", daemon=True)
        self._worker.start()
        for name, engine in self.engines.items():
            card = engine.card
            self.get_logger().info(
                f"model {name}: {self.model_versions[name]} ({card.layout}, "
                f"{card.window.persons} person(s), {len(card.labels)} labels, none label "
                f"{card.none_label!r}) on {engine.provider}"
            )
        windows = f"; window predictions on {self.settings.windows_topic}"
        self.get_logger().info(
            f"reading {self.settings.input_type} ({self.settings.camera_layout}) from "
            f"{self.resolve_topic_name(self.settings.topic)}; action events on "
            f"{self.settings.aggregate_topic}{windows if self.publish_windows else ''}"
        )

    def _publish_windows(self, cards: dict[str, ModelCard]) -> bool:
        without_none = [name for name, card in cards.items() if card.none_label is None]
        wanted = self.settings.publish_windows
        if wanted == "auto":
            return bool(without_none)
        if not wanted and without_none:
            raise SettingsError(
                f"parameter publish_windows: false needs models that can say none, and the card "
                f"of {', '.join(without_none)} names no none label (it gives no action events)"
            )
        return wanted

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
                self._handle(self.core.evict_idle(self.core.latest + idle))
                self.get_logger().info(f"all bodies left (no frame for {idle:.1f} s)")
            self._retire()

    def _process(self, frame: Frame) -> None:
        self._last_bodies_at = time.monotonic()
        try:
            events = self.core.process(frame, self._infer)
        except Exception as err:  # noqa: BLE001 - logged; the next frame gets a fresh try
            self._warnings.warn(
                "inference", f"frame at {frame.timestamp:.3f} s could not be classified: {err}"
            )
            return
        for body_id in self.core.bodies:
            if str(body_id) not in self.body_topics:
                self._body_appeared(str(body_id))
        self._handle(events)

    def _handle(self, events: Sequence[StreamEvent]) -> None:
        """Publish what the core said, in its order (an eviction's ended actions come before
        the body's topics go)."""
        predictions = []
        for event in events:
            if isinstance(event, Prediction):
                predictions.append(event)
            elif isinstance(event, ActionStarted | ActionEnded):
                self._publish_event(event)
            elif isinstance(event, Eviction):
                self._body_left(str(event.body))
            elif isinstance(event, ClockJump):
                self._warnings.warn(
                    "clock_jump",
                    f"input stamps jumped from {event.previous:.3f} s to {event.timestamp:.3f} s "
                    "(relative to the first); every body restarted",
                )
            elif isinstance(event, WindowFailed):
                self._warnings.warn(
                    "non_finite",
                    f"body {event.body}, model {event.model}: window not classified: "
                    f"{event.detail}",
                )
            elif isinstance(event, FrameDropped):
                detail = f": {event.detail}" if event.detail else ""
                body = f", body {event.body}" if event.body is not None else ""
                self._warnings.warn(
                    f"dropped {event.reason}",
                    f"frame dropped ({event.reason}{detail}{body}); "
                    f"{self.core.stats.frames_dropped} dropped so far",
                )
        if predictions and self.publish_windows:
            self._publish_windows_of(predictions)

    # -- action events ----------------------------------------------------------------------------
    def _publish_event(self, event: ActionStarted | ActionEnded) -> None:
        msg = self._event_message(event)
        self.event_publisher.publish(msg)
        for body_id in msg.body_ids:
            # A body that already left (the partner of a pair, say) has no topics any more.
            topics = self.body_topics.get(body_id)
            if topics is not None:
                topics.actions.publish(msg)
            open_now = self.open_actions.setdefault(body_id, {})
            if msg.type == ActionEvent.STARTED:
                open_now[msg.model] = msg
            elif (started := open_now.get(msg.model)) is not None and started.start == msg.start:
                del open_now[msg.model]
            if topics is not None:
                topics.current.publish(self._current_message(body_id, msg.header))

    def _event_message(self, event: ActionStarted | ActionEnded) -> ActionEvent:
        ended = isinstance(event, ActionEnded)
        return ActionEvent(
            type=ActionEvent.ENDED if ended else ActionEvent.STARTED,
            header=Header(stamp=self._stamp(event.timestamp), frame_id=self._frame_id),
            model=event.model,
            model_version=self.model_versions[event.model],
            body_ids=[str(b) for b in event.bodies],
            label=event.label,
            start=self._stamp(event.start),
            end=self._stamp(event.end) if isinstance(event, ActionEnded) else Time(),
            confidence=event.confidence,
        )

    def _current_message(self, body_id: str, header: Header) -> CurrentActions:
        open_now = self.open_actions.get(body_id, {})
        actions = [open_now[name] for name in self.engines if name in open_now]
        return CurrentActions(header=header, body_id=body_id, actions=actions)

    # -- window predictions ---------------------------------------------------------------------
    def _publish_windows_of(self, predictions: list[Prediction]) -> None:
        messages = [self._window_message(p) for p in predictions]
        for msg in messages:
            topics = self.body_topics.get(msg.body_id) or self._body_appeared(msg.body_id)
            if topics.window is not None:
                topics.window.publish(msg)
        header = Header(stamp=messages[-1].header.stamp, frame_id=self._frame_id)
        assert self.windows_publisher is not None
        self.windows_publisher.publish(ActionPredictionArray(header=header, predictions=messages))

    def _window_message(self, p: Prediction) -> ActionPrediction:
        end = self._stamp(p.end)
        return ActionPrediction(
            header=Header(stamp=end, frame_id=self._frame_id),
            body_id=str(p.body),
            label=p.label,
            label_index=self.core.card_of(p.model).labels.index(p.label),
            confidence=p.probability,
            top_labels=[label for label, _ in p.top_k],
            top_scores=[score for _, score in p.top_k],
            window_start=self._stamp(p.start),
            window_end=end,
            model_version=self.model_versions[p.model],
        )

    def _stamp(self, seconds: float) -> Time:
        return ns_to_time((self._epoch_ns or 0) + round(seconds * 1e9))

    # -- bodies -----------------------------------------------------------------------------------
    def _body_appeared(self, body_id: str) -> BodyTopics:
        # Created with the body's first frame, well before its first event, so that
        # subscribers have matched; transient local hands a late subscriber the current state.
        prefix = f"{self.settings.body_topic_prefix}/{body_id}"
        topics = BodyTopics(
            actions=self.create_publisher(
                ActionEvent,
                f"{prefix}/actions",
                QoSProfile(depth=EVENT_QUEUE_DEPTH, reliability=ReliabilityPolicy.RELIABLE),
            ),
            current=self.create_publisher(CurrentActions, f"{prefix}/current_action", LATCHED),
            window=(
                self.create_publisher(ActionPrediction, f"{prefix}/action", LATCHED)
                if self.publish_windows
                else None
            ),
        )
        self.body_topics[body_id] = topics
        header = Header(stamp=self._stamp(max(self.core.latest, 0.0)), frame_id=self._frame_id)
        topics.current.publish(self._current_message(body_id, header))
        self.get_logger().info(f"body {body_id} appeared: action events on {prefix}/actions")
        return topics

    def _body_left(self, body_id: str) -> None:
        """The body's topics go once their subscribers acknowledged what was sent: destroying a
        reliable publisher right after its last publish (the body's action ended on eviction)
        could lose that message on its way (seen in the ROS test of a body leaving)."""
        topics = self.body_topics.pop(body_id, None)
        self.open_actions.pop(body_id, None)
        if topics is not None:
            publishers = [p for p in (topics.actions, topics.current, topics.window) if p]
            self._retiring.append((time.monotonic() + RETIRE_TIMEOUT_S, publishers))
            self._retire()
        self.get_logger().info(f"body {body_id} left")

    def _retire(self, *, now: bool = False) -> None:
        """Destroy the departed bodies' publishers whose messages are all acknowledged, or
        whose RETIRE_TIMEOUT_S passed (a subscriber that never acknowledges holds nothing)."""
        kept = []
        for deadline, publishers in self._retiring:
            if (
                now
                or time.monotonic() > deadline
                or all(p.wait_for_all_acked(Duration(seconds=0)) for p in publishers)
            ):
                for publisher in publishers:
                    self.destroy_publisher(publisher)
            else:
                kept.append((deadline, publishers))
        self._retiring = kept

    def _forget_bodies(self, why: str) -> None:
        """Every body has left: the core ends their actions and evicts them all (its counters
        and clock go on)."""
        self._handle(self.core.evict_all())
        for body_id in list(self.body_topics):  # announced but never kept by the core
            self._body_left(body_id)
        self.get_logger().info(f"all bodies left ({why})")

    def close(self) -> None:
        """Stop the stream worker; call before destroy_node."""
        self._stop.set()
        self._wake.set()
        self._worker.join(timeout=5.0)
        self._retire(now=True)


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
