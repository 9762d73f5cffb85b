"""Action events from the ROS 2 node, end to end with a real rclpy: a real PKU-MMD test video
(two people hugging) is replayed at 30 fps as SkeletonArray and as Azure Kinect MarkerArray
through the shipped interaction model (and, in one run, the shipped gesture model beside it),
and the ActionEvents the node publishes equal the events ``StreamCore`` returns offline for
the same frames with the same config: on the aggregate topic and on each body's topic, the
latched current action a late subscriber gets, and the actions that end when a body leaves.

Three runs in parallel, each on its own random ROS_DOMAIN_ID (about 30 s in all).
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from masksem_ros.body_ids import body_id_for
from masksem_ros.k4a_joints import lift_to_k4a32

from service.engine import InferenceEngine
from service.stream import ActionEnded, ActionStarted, Frame, Prediction, StreamConfig, StreamCore
from tests.ros.node_runs import FPS, RosRun, start_run

MODELS = Path(__file__).resolve().parents[2] / "models"
INTERACTION, GESTURE = MODELS / "interaction.onnx", MODELS / "default.onnx"
#: The first cross-subject test video of PKU-MMD: two people, both in view all along. From
#: frame 300 they hug (the shipped interaction model shows the hug from frame 55, decides it
#: at frame 71 with its start reported 0.73 s in, shows none from frame 183 and ends it at
#: frame 199, its end reported 5.33 s in).
VIDEO, FIRST = "0299-L", 300
HUGGING, WHOLE = 104, 260  # slice lengths: ends while they hug; holds the hug's end too
LEAVES_AFTER = 105  # the leaving run: person 1 (the pair's first-tracked body) leaves here
# Recognition settings of the node under test, and of the reference core.
STREAM = {"stride": 8, "top_k": 3, "smoothing": 0.5, "min_frames": 16, "event_min_s": 0.3}
BODY_1, BODY_2 = body_id_for(1), body_id_for(2)
BODIES = (BODY_1, BODY_2)
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pku_video(data_root: Path) -> np.ndarray:
    """The whole test video ``VIDEO`` as (2, T, 25, 3) float32 ntu25, metres, Kinect axes."""
    from training.data.registry import load_streams

    if not (data_root / "pku-mmd").is_dir():
        pytest.skip(f"PKU-MMD not found under {data_root}")
    test = load_streams("pku-mmd", benchmark="xsub").test
    video = next(v for v in test if v.name == VIDEO)
    assert video.data.shape[0] == 2
    return video.data


def leaving(clip: np.ndarray) -> np.ndarray:
    """Person 1 out of view after frame ``LEAVES_AFTER`` (all-zero joints: not published)."""
    out = clip.copy()
    out[0, LEAVES_AFTER + 1 :] = 0.0
    return out


def run_settings(idle_timeout_s: float) -> dict[str, Any]:
    return {**STREAM, "idle_timeout_s": idle_timeout_s}


@pytest.fixture(scope="module")
def runs(
    ros_python: Path, pku_video: np.ndarray, tmp_path_factory: Any
) -> Iterator[dict[str, RosRun]]:
    root = tmp_path_factory.mktemp("ros-events")
    clips = {
        "skeletons": pku_video[:, FIRST : FIRST + HUGGING],
        "markers": pku_video[:, FIRST : FIRST + WHOLE],
        "leaving": leaving(pku_video[:, FIRST : FIRST + WHOLE]),
    }
    for name, clip in clips.items():
        np.save(root / f"{name}.npy", clip)
    domains = random.sample(range(1, 101), 3)
    prefixes = {"event_bodies": {b: f"/humans/bodies/{b}" for b in BODIES}}

    def replay(name: str, as_markers: bool) -> dict[str, Any]:
        return {"clip": str(root / f"{name}.npy"), "layout": "ntu25", "as_markers": as_markers}

    started = {
        # Both models; windows asked for; a late subscriber reads the latched current action
        # while the pair still hugs, then the idle eviction ends it.
        "skeletons": start_run(
            ros_python, root / "skeletons", domains[0],
            {"models": [str(INTERACTION), str(GESTURE)], "publish_windows": True,
             "input_type": "skeleton_array", "input_layout": "ntu25", **run_settings(6.0)},
            {**prefixes, "input_topic": "/humans/skeletons",
             "replay": replay("skeletons", False), "late_current_s": 1.0, "until_left": True},
        ),
        # One model, events only (the default for a model with a none label).
        "markers": start_run(
            ros_python, root / "markers", domains[1],
            {"model_path": str(INTERACTION), "input_type": "marker_array", **run_settings(2.0)},
            {**prefixes, "input_topic": "/body_tracking_data",
             "replay": replay("markers", True), "drain": "left"},
        ),
        "leaving": start_run(
            ros_python, root / "leaving", domains[2],
            {"model_path": str(INTERACTION), "input_type": "skeleton_array",
             "input_layout": "ntu25", **run_settings(2.0)},
            {**prefixes, "input_topic": "/humans/skeletons",
             "replay": replay("leaving", False), "drain": "left"},
        ),
    }  # fmt: skip
    yield {name: run.finish() for name, run in started.items()}


class Reference:
    """What ``StreamCore`` returns offline for the frames a replay publishes, in their order:
    the action events, the window predictions, and the events of a final eviction."""

    def __init__(
        self, models: dict[str, Path], clip: np.ndarray, layout: str, config: dict[str, Any]
    ) -> None:
        engines = {name: InferenceEngine(path) for name, path in models.items()}
        self.versions = {n: f"{e.card.name}@{e.card.version}" for n, e in engines.items()}
        core = StreamCore(
            StreamConfig(layout=layout, fps=FPS, mode="windows", **config),
            {name: engine.card for name, engine in engines.items()},
        )
        infer = {name: engine.run for name, engine in engines.items()}
        self.events: list[ActionStarted | ActionEnded] = []
        self.windows: list[Prediction] = []
        self.last_seen: dict[str, float] = {}
        for t in range(clip.shape[1]):
            # As ReplayNode stamps frame t, and as the node makes it relative to the first.
            stamp = round(t * 1e9 / FPS) / 1e9
            bodies = {body_id_for(m + 1): clip[m, t] for m in range(2) if clip[m, t].any()}
            self.last_seen.update(dict.fromkeys(bodies, stamp))
            for event in core.process(Frame(stamp, bodies), infer):
                if isinstance(event, ActionStarted | ActionEnded):
                    self.events.append(event)
                elif isinstance(event, Prediction):
                    self.windows.append(event)
        self.at_end = [e for e in core.evict_all() if isinstance(e, ActionEnded)]

    def record(self, event: ActionStarted | ActionEnded, epoch: int) -> dict[str, Any]:
        """The event as the harness records a received ActionEvent."""
        ended = isinstance(event, ActionEnded)
        return {
            "type": "ended" if ended else "started",
            "model": event.model,
            "model_version": self.versions[event.model],
            "body_ids": [str(b) for b in event.bodies],
            "label": event.label,
            "stamp_ns": epoch + round(event.timestamp * 1e9),
            "frame_id": "camera",
            "start_ns": epoch + round(event.start * 1e9),
            "end_ns": epoch + round(event.end * 1e9) if isinstance(event, ActionEnded) else 0,
            "confidence": float(np.float32(event.confidence)),  # the message's float32
        }


def open_actions(events: Sequence[dict[str, Any]], body: str) -> list[dict[str, Any]]:
    """A body's open actions after ``events``: per model, a start naming it not yet ended."""
    open_now: dict[str, dict[str, Any]] = {}
    for event in events:
        if body in event["body_ids"]:
            if event["type"] == "started":
                open_now[event["model"]] = event
            else:
                open_now.pop(event["model"], None)
    return list(open_now.values())


def without_stamp(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """An idle eviction is decided by the wall clock: its stamp is not the stream's."""
    return [{k: v for k, v in r.items() if k != "stamp_ns"} for r in records]


def checked(run: RosRun) -> dict[str, Any]:
    result = run.result
    assert result is not None and result["ready"], f"node never came up:\n{run.node_log}"
    assert run.node_alive_at_end, f"the node died:\n{run.node_log}"
    assert "Traceback" not in run.node_log, run.node_log
    assert result["bodies_left"], f"the bodies never left:\n{run.node_log}"
    return result


def assert_events(result: dict[str, Any], want: list[dict[str, Any]], at_end: list) -> None:
    """The aggregate topic carries ``want`` then the idle eviction's ``at_end``; each body's
    topic carries those naming it, in the same order."""
    got = result["events"]
    assert got[: len(want)] == want
    assert without_stamp(got[len(want) :]) == without_stamp(at_end)
    for body in BODIES:
        mine = [e for e in got if body in e["body_ids"]]
        assert result["body_events"][body] == mine, body


def test_skeleton_array_replay_of_two_people_gets_the_cores_events_from_both_models(
    runs: dict[str, RosRun], pku_video: np.ndarray
) -> None:
    run, clip = runs["skeletons"], pku_video[:, FIRST : FIRST + HUGGING]
    ref = Reference(
        {"interaction": INTERACTION, "default": GESTURE}, clip, "ntu25", run_settings(6.0)
    )
    result = checked(run)
    epoch = result["start_ns"]
    want = [ref.record(e, epoch) for e in ref.events]
    at_end = [ref.record(e, epoch) for e in ref.at_end]
    # The slice holds an action of the pair, still open when the replay stops.
    hugs = [e for e in want if e["model"] == "interaction" and e["type"] == "started"]
    assert hugs and all(e["body_ids"] == [BODY_1, BODY_2] for e in hugs)
    assert any(e["model"] == "interaction" for e in at_end)
    assert_events(result, want, at_end)
    # A subscriber joining late gets each body's open actions (the pair's, for both bodies).
    for body in BODIES:
        current = result["current"][body]
        assert current, f"no latched current_action for {body}"
        assert current[0]["body_id"] == body
        assert current[0]["actions"] == open_actions(want, body)
    assert result["current"][BODY_2][0]["actions"], "body 2 should show the pair's action"
    # Windows were asked for: every window of both models, as the core made them.
    windows = [
        (p["model_version"], p["body_id"], p["label"], p["window_end_ns"] - epoch)
        for g in result["aggregate"]
        for p in g
    ]
    assert windows == [
        (ref.versions[p.model], p.body, p.label, round(p.end * 1e9)) for p in ref.windows
    ]
    assert {ref.versions["interaction"], ref.versions["default"]} <= {w[0] for w in windows}


def test_marker_array_replay_publishes_events_only_equal_to_the_cores(
    runs: dict[str, RosRun], pku_video: np.ndarray
) -> None:
    run = runs["markers"]
    k4a = lift_to_k4a32(pku_video[:, FIRST : FIRST + WHOLE], "ntu25")
    ref = Reference({"interaction": INTERACTION}, k4a, "k4a32", run_settings(2.0))
    result = checked(run)
    epoch = result["start_ns"]
    want = [ref.record(e, epoch) for e in ref.events]
    # The slice holds a whole action: started and ended on the stream's labels.
    assert [e["type"] for e in want if e["model"] == "interaction"][:2] == ["started", "ended"]
    assert_events(result, want, [ref.record(e, epoch) for e in ref.at_end])
    # No label for every window: no window topic, no window message.
    assert result["window_publishers_when_sent"] == 0
    assert result["aggregate"] == []
    assert result["event_publishers_when_sent"] == {BODY_1: 1, BODY_2: 1}


def test_a_body_leaving_ends_its_action_when_it_is_evicted(
    runs: dict[str, RosRun], pku_video: np.ndarray
) -> None:
    run, clip = runs["leaving"], leaving(pku_video[:, FIRST : FIRST + WHOLE])
    ref = Reference({"interaction": INTERACTION}, clip, "ntu25", run_settings(2.0))
    result = checked(run)
    epoch = result["start_ns"]
    want = [ref.record(e, epoch) for e in ref.events]
    assert_events(result, want, [ref.record(e, epoch) for e in ref.at_end])
    # The pair hugged when person 1 left: the hug ends at its last frame, once it is evicted
    # (idle_timeout_s of stream time later), before its topics go.
    last_seen_ns = epoch + round(LEAVES_AFTER * 1e9 / FPS)
    assert ref.last_seen[BODY_1] == round(LEAVES_AFTER * 1e9 / FPS) / 1e9
    (ended,) = [e for e in want if e["type"] == "ended" and BODY_1 in e["body_ids"]]
    assert ended["label"] == "hugging other person"
    assert ended["end_ns"] == last_seen_ns
    assert ended["stamp_ns"] - last_seen_ns > 2.0e9  # decided at the eviction
    assert result["body_events"][BODY_1][-1] == ended
    assert result["bodies_left_order"] == [BODY_1, BODY_2]
