"""The ROS 2 action node end to end with a real rclpy and middleware: a real NW-UCLA clip is
replayed at 30 fps as SkeletonArray and as the Azure Kinect MarkerArray, and the predictions the
node publishes equal what the service's streaming core returns for the same frames.

Each run gets its own random ROS_DOMAIN_ID and stays on this host; the three runs go in
parallel (about 15 s in all).
"""

from __future__ import annotations

import os
import random
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from masksem_ros.body_ids import body_id_for
from masksem_ros.k4a_joints import lift_to_k4a32

from service.engine import InferenceEngine
from service.stream import Frame, Prediction, StreamConfig, StreamCore
from skeleton.card import ModelCard
from tests.ros.node_runs import FPS, RosRun, start_run

FRAME_NS = round(1e9 / FPS)
# Recognition settings of the node under test, and of the reference core.
STREAM = {"stride": 8, "top_k": 3, "smoothing": 0.5, "min_frames": 16, "idle_timeout_s": 2.0}
BODY_1, BODY_2 = body_id_for(1), body_id_for(2)
pytestmark = pytest.mark.slow


# -- the messy stream: the lifted clip with a second body, defects and disorder ---------------
def messy_script(k4a: np.ndarray) -> tuple[list[dict[str, Any]], list[tuple[int, dict]]]:
    """MarkerArray steps for the harness, and the frames the node should accept, in order.

    Body 1 is the clip; body 2 (the clip 1 m to the right) is there in frames 15..50 only and
    leaves; frames 40 and 41 arrive swapped, frame 60 twice, a stale frame after frame 90; some
    messages hold a malformed body (each named in the test below).
    """
    frames = k4a.shape[0]
    right = np.array([1.0, 0.0, 0.0], dtype=np.float32)  # k4a x points right
    steps: list[dict[str, Any]] = []
    accepted: list[tuple[int, dict]] = []

    def bodies_at(t: int) -> dict[int, np.ndarray]:
        bodies = {1: k4a[t]}
        if 15 <= t <= 50:
            bodies[2] = k4a[t] + right
        return bodies

    def send(t: int, bodies: dict[int, np.ndarray], defect: str | None = None, body: int = 1):
        steps.append({
            "offset_ns": t * FRAME_NS,
            "bodies": {str(b): j.tolist() for b, j in bodies.items()},
            "defect": defect,
            "body": body,
        })  # fmt: skip

    order = list(range(frames))
    order[40], order[41] = 41, 40
    for t in order:
        bodies = bodies_at(t)
        good = {body_id_for(b): j for b, j in bodies.items()}
        if t == 5:  # a third body lacking a joint: skipped, the others stay
            send(t, {**bodies, 3: k4a[t] + 2 * right}, "missing_joint", body=3)
        elif t == 12:  # body 1 with a NaN joint: the frame holds no usable body
            send(t, bodies, "nan", body=1)
            good = {}
        elif t == 30:
            send(t, bodies, "bad_id", body=1)
        elif t == 110:
            send(t, bodies, "repeat_joint", body=1)
        else:
            send(t, bodies)
        if good:
            accepted.append((t * FRAME_NS, good))
        if t == 60:  # the same frame again: the core drops it as a duplicate
            send(t, bodies)
            accepted.append((t * FRAME_NS, good))
        if t == 90:  # a frame 2.3 s old: older than the window, dropped as too late
            send(20, bodies_at(20))
            accepted.append((20 * FRAME_NS, {body_id_for(1): k4a[20]}))
        if t == 100:
            steps.append({"defect": "empty"})
    return steps, accepted


@pytest.fixture(scope="module")
def runs(
    ros_python: Path, tiny_model: Path, ucla_clip: np.ndarray, tmp_path_factory: Any
) -> Iterator[dict[str, RosRun]]:
    root = tmp_path_factory.mktemp("ros")
    clip_file = root / "clip.npy"
    np.save(clip_file, ucla_clip)
    k4a = lift_to_k4a32(ucla_clip[0], "ucla20")
    steps, _ = messy_script(k4a)
    domains = random.sample(range(1, 101), 3)
    replay = {"clip": str(clip_file), "layout": "ucla20"}
    model = {"model_path": str(tiny_model), **STREAM}
    topics = {"body_topics": {b: f"/humans/bodies/{b}/action" for b in (BODY_1, BODY_2)}}
    started = {
        "skeletons": start_run(
            ros_python, root / "skeletons", domains[0],
            {**model, "input_type": "skeleton_array", "input_layout": "ucla20"},
            {**topics, "input_topic": "/humans/skeletons",
             "replay": {**replay, "as_markers": False}},
        ),
        "markers": start_run(
            ros_python, root / "markers", domains[1],
            {**model, "input_type": "marker_array"},
            {**topics, "input_topic": "/body_tracking_data",
             "replay": {**replay, "as_markers": True}},
        ),
        "messy": start_run(
            ros_python, root / "messy", domains[2],
            {**model, "input_type": "marker_array", "strid": 4},  # misspelt: reported, ignored
            {**topics, "input_topic": "/body_tracking_data", "script": steps,
             "wait_for_idle_s": 3.0},
        ),
    }  # fmt: skip
    yield {name: run.finish() for name, run in started.items()}


def core_predictions(
    model: Path, layout: str, arrivals: list[tuple[int, dict]]
) -> list[list[Prediction]]:
    """The streaming core's predictions for frames arriving in this order, grouped by frame."""
    engine = InferenceEngine(model)
    core = StreamCore(StreamConfig(layout=layout, fps=FPS, **STREAM), engine.card)
    epoch = arrivals[0][0]
    groups = []
    for stamp, bodies in arrivals:
        events = core.process(Frame((stamp - epoch) / 1e9, bodies), engine.run)
        predictions = [e for e in events if isinstance(e, Prediction)]
        if predictions:
            groups.append(predictions)
    return groups


def assert_equal(received: dict[str, Any], expected: Prediction, card: ModelCard, epoch: int):
    """A published prediction, field by field, against the core's (scores are float32)."""
    assert received["body_id"] == expected.body
    assert received["label"] == expected.label
    assert received["label_index"] == card.labels.index(expected.label)
    assert received["confidence"] == pytest.approx(expected.probability, abs=1e-6)
    assert received["top_labels"] == [label for label, _ in expected.top_k]
    assert received["top_scores"] == pytest.approx([s for _, s in expected.top_k], abs=1e-6)
    assert received["window_start_ns"] == epoch + round(expected.start * 1e9)
    assert received["window_end_ns"] == received["stamp_ns"] == epoch + round(expected.end * 1e9)
    assert received["model_version"] == f"{card.name}@{card.version}"


def check_run(run: RosRun, expected: list[list[Prediction]], card: ModelCard) -> dict[str, Any]:
    result = run.result
    assert result is not None and result["ready"], f"node never came up:\n{run.node_log}"
    assert run.node_alive_at_end, f"the node died:\n{run.node_log}"
    epoch = result["start_ns"]
    received = result["aggregate"]
    assert [len(g) for g in received] == [len(g) for g in expected]
    for got_group, want_group in zip(received, expected, strict=True):
        for got, want in zip(got_group, want_group, strict=True):
            assert_equal(got, want, card, epoch)
    for body, got_body in result["bodies"].items():
        want_body = [p for group in expected for p in group if p.body == body]
        assert len(got_body) == len(want_body), body
        for got, want in zip(got_body, want_body, strict=True):
            assert_equal(got, want, card, epoch)
    return result


def clean_arrivals(joints: np.ndarray) -> list[tuple[int, dict]]:
    """Every frame in order, stamped as ReplayNode stamps them."""
    return [(round(t * 1e9 / FPS), {BODY_1: joints[t]}) for t in range(joints.shape[0])]


def test_skeleton_array_replay_gets_the_stream_cores_predictions(
    runs: dict[str, RosRun], tiny_model: Path, ucla_clip: np.ndarray
) -> None:
    card = InferenceEngine(tiny_model).card
    expected = core_predictions(tiny_model, "ucla20", clean_arrivals(ucla_clip[0]))
    # (131 - 16) / 8 + 1 windows of a 131-frame clip: one every 8 frames after the first 16.
    assert sum(len(g) for g in expected) == 15
    result = check_run(runs["skeletons"], expected, card)
    assert result["published"] == ucla_clip.shape[1]
    assert all(p["frame_id"] == "camera" for g in result["aggregate"] for p in g)


def test_marker_array_replay_of_the_lifted_clip_gets_the_same_predictions(
    runs: dict[str, RosRun], tiny_model: Path, ucla_clip: np.ndarray
) -> None:
    card = InferenceEngine(tiny_model).card
    k4a = lift_to_k4a32(ucla_clip[0], "ucla20")
    expected = core_predictions(tiny_model, "k4a32", clean_arrivals(k4a))
    result = check_run(runs["markers"], expected, card)
    # k4a32 metres in k4a axes map back onto the model's ucla20 exactly: the Azure Kinect path
    # predicts what the canonical path predicts for the same real clip.
    canonical = runs["skeletons"].result
    assert canonical is not None

    def relative(run: dict[str, Any]) -> list[tuple[Any, ...]]:
        return [
            (p["label"], p["top_labels"], p["top_scores"], p["window_end_ns"] - run["start_ns"])
            for g in run["aggregate"]
            for p in g
        ]

    assert relative(result) == relative(canonical)


def test_messy_marker_stream_survives_and_matches_the_core_on_the_valid_frames(
    runs: dict[str, RosRun], tiny_model: Path, ucla_clip: np.ndarray
) -> None:
    card = InferenceEngine(tiny_model).card
    k4a = lift_to_k4a32(ucla_clip[0], "ucla20")
    _, accepted = messy_script(k4a)
    expected = core_predictions(tiny_model, "k4a32", accepted)
    run = runs["messy"]
    result = check_run(run, expected, card)
    assert any(p.body == BODY_2 for g in expected for p in g)  # body 2 was classified too
    # Body 2 left (evicted by the stamps), body 1 was still there; then every body left.
    assert result["publishers_at_end"] == {BODY_1: 1, BODY_2: 0}
    assert result["publishers_after_idle"] == {BODY_1: 0, BODY_2: 0}
    log = run.node_log
    assert f"body {BODY_2} left" in log and "all bodies left" in log
    assert "Traceback" not in log
    assert "unknown parameter(s) strid ignored" in log
    # Four malformed messages, logged at most once a second: fewer warnings than messages.
    malformed = [line for line in log.splitlines() if "malformed input" in line]
    assert 1 <= len(malformed) < 4, malformed
    assert "marker body 3: missing joint(s) WRIST_LEFT; body skipped" in malformed[0]
    assert "frame dropped (duplicate" in log and "frame dropped (too_late" in log
    assert run.node.returncode == 0, log  # a clean exit on SIGINT


@pytest.mark.parametrize(
    ("params", "messages"),
    [
        (
            ["stride:=0", "input_layout:=kinect9"],
            ["parameter stride: Input should be greater than or equal to 1 (got 0)",
             "parameter input_layout: Value error, unknown joint layout 'kinect9'"],
        ),
        (["model_path:=/nonexistent/model.onnx"], ["/nonexistent/model.onnx: no such model file"]),
        (["publish_windows:=false"],
         ["parameter publish_windows: false needs models that can say none, and the card of "
          "tiny names no none label"]),
    ],
)  # fmt: skip
def test_bad_parameters_stop_the_node_with_a_message_naming_them(
    ros_python: Path, tiny_model: Path, params: list[str], messages: list[str]
) -> None:
    overrides = [f"model_path:={tiny_model}", *params]
    env = dict(os.environ, ROS_DOMAIN_ID=str(random.randint(1, 100)))
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    done = subprocess.run(
        [str(ros_python), "-m", "masksem_ros.action_node", "--ros-args",
         *[arg for p in overrides for arg in ("-p", p)]],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    for message in messages:
        assert message in done.stderr
