"""The transport-free stream core: windows, stride, ordering, drops, eviction, smoothing."""

from __future__ import annotations

import numpy as np
import pytest

from service.engine import InferenceEngine
from service.preprocess import model_window
from service.stream import (
    BoundedFrameQueue,
    ClockJump,
    Eviction,
    Frame,
    FrameDropped,
    LabelSmoother,
    Prediction,
    StreamBudget,
    StreamConfig,
    StreamCore,
    StreamError,
    WindowFailed,
    resample_to_grid,
    softmax,
)
from tests.service.tiny_service import LAYOUT, TinyModel, random_clip


@pytest.fixture(scope="module")
def engine(tiny_model: TinyModel) -> InferenceEngine:
    return InferenceEngine(tiny_model.path)


def feed(core: StreamCore, engine: InferenceEngine, clip: np.ndarray, body: int = 1,
         t0: float = 0.0, fps: float = 30.0) -> list:  # fmt: skip
    events = []
    for i, joints in enumerate(clip):
        events += core.process(Frame(t0 + i / fps, {body: joints}), engine.run)
    return events


def predictions(events: list) -> list[Prediction]:
    return [e for e in events if isinstance(e, Prediction)]


def test_predicts_every_stride_frames_once_enough_frames(engine: InferenceEngine) -> None:
    core = StreamCore(StreamConfig(layout=LAYOUT, stride=5, min_frames=12), engine.card)
    events = feed(core, engine, random_clip(40))
    ends = [round(p.end * 30) for p in predictions(events)]
    # the first prediction waits for 12 frames, the next ones come every 5 new frames
    assert ends == [11, 16, 21, 26, 31, 36]
    assert core.stats.predictions == 6 and core.stats.frames_accepted == 40


def test_stream_window_is_the_offline_window_of_the_same_frames(engine: InferenceEngine) -> None:
    clip = random_clip(50)
    core = StreamCore(
        StreamConfig(layout=LAYOUT, stride=50, min_frames=1, window_s=10.0), engine.card
    )
    (prediction,) = predictions(feed(core, engine, clip))
    offline = softmax(engine.run(model_window(clip[None], LAYOUT, engine.card)[None])[0])
    streamed = dict(prediction.top_k)
    assert prediction.frames == 50 and prediction.start == 0.0
    for label, p in zip(engine.card.labels, offline, strict=True):
        if label in streamed:
            assert streamed[label] == pytest.approx(p, abs=1e-6)
    assert prediction.raw_label == engine.card.labels[int(np.argmax(offline))]


def test_window_covers_only_the_last_window_seconds(engine: InferenceEngine) -> None:
    core = StreamCore(
        StreamConfig(layout=LAYOUT, stride=90, min_frames=1, window_s=1.0), engine.card
    )
    (prediction,) = predictions(feed(core, engine, random_clip(90)))
    assert prediction.frames == 31  # 1 s at the model's 30 fps, both ends included
    assert prediction.end - prediction.start == pytest.approx(1.0)


def test_irregular_timestamps_are_resampled_to_the_model_rate() -> None:
    times = np.array([0.0, 0.05, 0.07, 0.2])
    joints = np.arange(4, dtype=np.float32)[:, None, None] * np.ones((4, 2, 3), np.float32)
    frames, start = resample_to_grid(times, joints, fps=10.0, span_s=1.0)
    assert start == pytest.approx(0.0)
    np.testing.assert_allclose(frames[:, 0, 0], [0.0, 2.2307692, 3.0], rtol=1e-6)


def test_out_of_order_frames_inside_the_window_are_inserted(engine: InferenceEngine) -> None:
    clip = random_clip(40)
    order = list(range(40))
    order[20], order[21] = order[21], order[20]
    config = StreamConfig(layout=LAYOUT, stride=1, min_frames=40, window_s=5.0)
    shuffled, in_order = StreamCore(config, engine.card), StreamCore(config, engine.card)
    events = []
    for i in order:
        events += shuffled.process(Frame(i / 30, {1: clip[i]}), engine.run)
    (late,) = predictions(events)
    (reference,) = predictions(feed(in_order, engine, clip))
    assert shuffled.stats.frames_reordered == 1 and shuffled.stats.frames_dropped == 0
    assert late.top_k == reference.top_k and late.frames == 40


def test_duplicate_and_too_late_frames_are_dropped_and_counted(engine: InferenceEngine) -> None:
    core = StreamCore(StreamConfig(layout=LAYOUT, window_s=1.0, min_frames=16), engine.card)
    clip = random_clip(60)
    feed(core, engine, clip)
    duplicate = core.add_frame(Frame(59 / 30, {1: clip[-1]}))
    late = core.add_frame(Frame(0.0, {1: clip[0]}))
    assert not duplicate.accepted and not late.accepted
    assert [e.reason for e in duplicate.events if isinstance(e, FrameDropped)] == ["duplicate"]
    assert [e.reason for e in late.events if isinstance(e, FrameDropped)] == ["too_late"]
    assert core.stats.dropped["duplicate"] == 1 and core.stats.dropped["too_late"] == 1
    assert core.stats.frames_received == 62 == core.stats.frames_accepted + 2


def test_idle_bodies_are_evicted_by_stream_time(engine: InferenceEngine) -> None:
    core = StreamCore(StreamConfig(layout=LAYOUT, idle_timeout_s=0.5), engine.card)
    a, b = random_clip(30, seed=1), random_clip(30, seed=2)
    core.process(Frame(0.0, {"a": a[0], "b": b[0]}), engine.run)
    events = []
    for i in range(1, 30):
        events += core.process(Frame(i / 30, {"b": b[i]}), engine.run)
    evicted = [e for e in events if isinstance(e, Eviction)]
    assert [e.body for e in evicted] == ["a"] and core.bodies == ["b"]
    assert evicted[0].timestamp - evicted[0].last_seen > 0.5
    # nobody in view still moves time on, so the last body goes too
    events = core.process(Frame(2.0, {}), engine.run)
    assert [e.body for e in events if isinstance(e, Eviction)] == ["b"]


def test_bodies_beyond_the_limit_are_dropped_and_counted(engine: InferenceEngine) -> None:
    core = StreamCore(StreamConfig(layout=LAYOUT, max_bodies=2), engine.card)
    joints = random_clip(1)[0]
    update = core.add_frame(Frame(0.0, {1: joints, 2: joints, 3: joints}))
    assert update.accepted and sorted(core.bodies) == [1, 2]
    assert [(e.reason, e.body) for e in update.events if isinstance(e, FrameDropped)] == [
        ("too_many_bodies", 3)
    ]
    # issue 19 case 12: a body left out is a body drop, not a dropped frame
    assert core.stats.bodies_dropped == {"too_many_bodies": 1}
    assert core.stats.frames_dropped == 0 and core.stats.frames_accepted == 1


def test_bad_joints_raise_a_precise_error_and_count_as_dropped(engine: InferenceEngine) -> None:
    core = StreamCore(StreamConfig(layout=LAYOUT), engine.card)
    joints = random_clip(1)[0]
    with pytest.raises(StreamError, match=r"body 1.*\(20, 3\), got \(19, 3\)"):
        core.add_frame(Frame(0.0, {1: joints[:19]}))
    joints = joints.copy()
    joints[7, 2] = np.nan
    with pytest.raises(StreamError, match="joint 7"):
        core.add_frame(Frame(0.1, {1: joints}))
    assert core.stats.dropped["invalid"] == 2


def test_config_refuses_unknown_and_unmappable_layouts(engine: InferenceEngine) -> None:
    with pytest.raises(ValueError, match="unknown joint layout 'kinect'"):
        StreamConfig(layout="kinect")
    with pytest.raises(StreamError, match="'sbu15' cannot be mapped to the model's layout"):
        StreamCore(StreamConfig(layout="sbu15"), engine.card)


def test_smoothing_averages_and_hysteresis_holds_the_label() -> None:
    smoother = LabelSmoother(smoothing=0.5, hysteresis=0.2)
    probs, shown, changed = smoother.update(np.array([0.7, 0.3]))
    assert shown == 0 and not changed
    probs, shown, changed = smoother.update(np.array([0.3, 0.7]))
    np.testing.assert_allclose(probs, [0.5, 0.5])
    assert shown == 0 and not changed
    probs, shown, changed = smoother.update(np.array([0.1, 0.9]))  # 0.3 vs 0.7: lead 0.4
    assert shown == 1 and changed
    flicker = LabelSmoother(smoothing=0.0, hysteresis=0.3)
    flicker.update(np.array([0.6, 0.4]))
    assert flicker.update(np.array([0.45, 0.55]))[1] == 0  # a lead of 0.1 is not enough


def test_bounded_queue_keeps_the_freshest_frames_and_counts_overflow() -> None:
    queue = BoundedFrameQueue(2)
    frames = [Frame(i, {}) for i in range(5)]
    kept_all = [queue.offer(f) for f in frames]
    assert kept_all == [True, True, False, False, False] and queue.dropped == 3
    kept, dropped = queue.drain()
    assert [f.timestamp for f in kept] == [3, 4] and dropped == [0, 1, 2] and len(queue) == 0
    assert queue.drain() == ([], [])


# -- issue 19: bounded work, timestamps, one drop accounting ------------------------------------
def test_a_config_beyond_the_budget_is_refused_with_the_limit(engine: InferenceEngine) -> None:
    """Case 1 and 7: fps 1000, 60 s windows, min_frames 10000, 64 bodies is legal JSON but no
    server budget covers it; each field is refused on its own, naming the limit."""
    budget = StreamBudget(max_bodies=16, max_buffered_frames=8192, max_windows_per_s=60)
    hostile = StreamConfig(layout=LAYOUT, fps=1000, window_s=60, min_frames=10_000, max_bodies=64)
    with pytest.raises(StreamError, match="64 bodies; this server allows at most 16"):
        StreamCore(hostile, engine.card, budget=budget)
    memory = hostile.model_copy(update={"max_bodies": 4, "min_frames": 32})
    with pytest.raises(StreamError, match=r"need 240008 buffered frames; .* allows 8192"):
        StreamCore(memory, engine.card, budget=budget)
    unreachable = StreamConfig(layout=LAYOUT, window_s=60, min_frames=10_000, max_bodies=1)
    with pytest.raises(StreamError, match="10000 can never be reached: .* at most 1801 frames"):
        StreamCore(unreachable, engine.card, budget=budget)


def test_buffers_stay_within_the_budget_whatever_the_frame_rate(engine: InferenceEngine) -> None:
    budget = StreamBudget(max_bodies=2, max_buffered_frames=256)
    core = StreamCore(StreamConfig(layout=LAYOUT, max_bodies=2, stride=10_000), engine.card,
                      budget=budget)  # fmt: skip
    clip = random_clip(600)
    for i, joints in enumerate(clip):  # 600 frames in 0.6 s: 1000 fps sent to a 30 fps config
        core.add_frame(Frame(i / 1000, {1: joints, 2: joints}))
    assert core.buffered_frames <= 256 and core.stats.frames_accepted == 600


def test_windows_beyond_the_rate_wait_for_their_turn(engine: InferenceEngine) -> None:
    """A stride-1 stream asks for a window per frame; the budget's rate (on the injected wall
    clock) holds the rest back, counted, and they come when time has passed."""
    now = [0.0]
    core = StreamCore(
        StreamConfig(layout=LAYOUT, stride=1, min_frames=16, max_bodies=1),
        engine.card,
        budget=StreamBudget(max_windows_per_s=5),
        clock=lambda: now[0],
    )
    clip = random_clip(80)

    def due(frames: range) -> int:
        """Windows due over ``frames``, each answered at once."""
        count = 0
        for i in frames:
            for request in core.add_frame(Frame(i / 30, {1: clip[i]})).due:
                core.finish(request, engine.run(request.window[None])[0])
                count += 1
        return count

    assert due(range(60)) == 1 and core.stats.windows_deferred > 0  # 60 frames in one instant
    now[0] = 1.0  # a second later: five more windows may go
    assert due(range(60, 79)) == 1  # the burst is one window per body: the rest wait
    now[0] = 1.4
    assert due(range(79, 80)) == 1


def test_a_frame_far_in_the_future_is_dropped_and_the_stream_goes_on(
    engine: InferenceEngine,
) -> None:
    """Case 9: one frame stamped 1e308 used to make every later frame too late."""
    core = StreamCore(StreamConfig(layout=LAYOUT, stride=8, min_frames=16), engine.card)
    clip = random_clip(60)
    events = feed(core, engine, clip[:30])
    future = core.add_frame(Frame(1e308, {1: clip[30]}))
    assert not future.accepted
    (drop,) = [e for e in future.events if isinstance(e, FrameDropped)]
    assert drop.reason == "too_early" and "ahead of the newest frame" in drop.detail
    events = feed(core, engine, clip[30:], t0=1.0)
    assert predictions(events) and core.stats.dropped == {**core.stats.dropped, "too_early": 1}
    assert core.stats.frames_dropped == 1 and core.stats.frames_accepted == 60


def test_a_clock_jump_is_followed_after_three_consistent_frames(engine: InferenceEngine) -> None:
    """A camera restarting its clock (or a first frame stamped 1e308): three frames agreeing
    on the new time move the stream there; bodies are evicted, nothing stays too late."""
    for first in (1e308, 100.0):
        core = StreamCore(StreamConfig(layout=LAYOUT, stride=8, min_frames=16), engine.card)
        clip = random_clip(60)
        core.add_frame(Frame(first, {1: clip[0]}))
        events = feed(core, engine, clip[1:])
        jumps = [e for e in events if isinstance(e, ClockJump)]
        assert [(j.previous, j.timestamp) for j in jumps] == [(first, 2 / 30)]
        assert [e.body for e in events if isinstance(e, Eviction)] == [1]
        assert core.stats.dropped["too_late"] == 2 and core.stats.clock_jumps == 1
        assert 1.5 < predictions(events)[-1].end <= 59 / 30  # the new timeline is classified


def test_non_finite_logits_are_reported_not_shown(engine: InferenceEngine) -> None:
    """Case 11: coordinates of 3e38 are finite but overflow in the model."""
    core = StreamCore(StreamConfig(layout=LAYOUT, stride=8, min_frames=16), engine.card)
    clip = random_clip(40)
    clip[:, 3] = 3e38
    events = feed(core, engine, clip)
    failed = [e for e in events if isinstance(e, WindowFailed)]
    assert failed and not predictions(events)
    assert core.stats.windows_failed == len(failed) and "not finite" in failed[0].detail


def test_transports_evict_and_count_through_the_core(engine: InferenceEngine) -> None:
    """Case 12: the ROS node evicts idle bodies and counts its queue drops with the core."""
    core = StreamCore(StreamConfig(layout=LAYOUT, idle_timeout_s=2.0), engine.card)
    clip = random_clip(3)
    for i, joints in enumerate(clip):
        core.add_frame(Frame(i / 30, {1: joints, 2: joints}))
    assert core.evict_idle(core.latest + 1.0) == []
    assert sorted(e.body for e in core.evict_idle(core.latest + 2.5)) == [1, 2]
    core.add_frame(Frame(1.0, {3: clip[0]}))
    assert [e.body for e in core.evict_all()] == [3] and core.bodies == []
    queue = BoundedFrameQueue(1)
    queue.offer(Frame(4.0, {}))
    queue.offer(Frame(4.1, {}))
    kept, dropped = queue.drain()
    for t in dropped:
        core.count_drop("queue_full", timestamp=t)
    assert core.stats.evictions == 3 and core.stats.dropped["queue_full"] == 1
    assert core.stats.frames_received == 5  # 4 seen by the core, 1 only by the queue


def with_rule(card, threshold: float):  # type: ignore[no-untyped-def]
    """The tiny model's card with its last label as the none label and a decision rule."""
    from dataclasses import replace

    rule = {"rule": "top_probability", "threshold": threshold}
    return replace(card, none_label=card.labels[-1], decision=rule)


def test_the_cards_decision_rule_shows_none_below_its_threshold(engine: InferenceEngine) -> None:
    clip = random_clip(90, seed=3)
    none = engine.card.labels[-1]
    settings = {"layout": LAYOUT, "stride": 4, "min_frames": 12}

    def shown(card, **config: object) -> list[Prediction]:  # type: ignore[no-untyped-def]
        core = StreamCore(StreamConfig(**settings, **config), card)  # type: ignore[arg-type]
        return predictions(feed(core, engine, clip))

    plain = shown(engine.card)
    assert {p.label for p in plain} != {none}
    # a threshold no probability reaches: every window shows none, and says so only once
    silent = shown(with_rule(engine.card, 1.01))
    assert [p.label for p in silent] == [none] * len(plain)
    assert sum(p.changed for p in silent) == 0
    # threshold 0: the top label whenever it is an action, none where none itself is on top
    open_rule = shown(with_rule(engine.card, 0.0))
    assert [p.label for p in open_rule] == [p.label for p in plain]
    # the stream's own threshold replaces the card's; "off" never shows none
    overridden = shown(with_rule(engine.card, 1.01), threshold=0.0)
    assert [p.label for p in overridden] == [p.label for p in plain]
    off = shown(with_rule(engine.card, 1.01), decision="off")
    assert none not in {p.label for p in off} and len(off) == len(plain)
    gated = shown(with_rule(engine.card, 0.2))
    for p, q in zip(gated, plain, strict=True):
        assert p.label == (q.label if q.probability >= 0.2 else none)


def test_two_person_model_pairs_the_bodies_in_one_window(engine: InferenceEngine) -> None:
    first, second = random_clip(40, seed=1), random_clip(40, seed=2) + 0.5
    settings = {"layout": LAYOUT, "stride": 39, "min_frames": 1, "window_s": 10.0}
    core = StreamCore(StreamConfig(**settings), engine.card)  # type: ignore[arg-type]
    events = []
    for i in range(40):
        frame = Frame(i / 30, {"b": second[i], "a": first[i]} if i else {"a": first[i]})
        events += core.process(frame, engine.run)
    first_of_a = [p for p in predictions(events) if p.body == "a"][0]
    first_of_b = [p for p in predictions(events) if p.body == "b"][0]
    assert (first_of_a.partner, first_of_b.partner) == ("b", "a")
    # one window for the pair, built when its first-tracked body "a" is due (frames 0-38, "b"
    # absent at frame 0), reported for both bodies
    assert (first_of_b.label, first_of_b.top_k, first_of_b.end) == (
        first_of_a.label, first_of_a.top_k, first_of_a.end,
    )  # fmt: skip
    assert len(predictions(events)) == 2  # "b" due at frame 39 waits for its partner's window
    pair = np.stack([first[:39], np.concatenate([np.zeros_like(second[:1]), second[1:39]])])
    offline = softmax(engine.run(model_window(pair, LAYOUT, engine.card)[None])[0])
    for label, probability in first_of_a.top_k:
        assert probability == pytest.approx(offline[engine.card.labels.index(label)], abs=1e-5)
    # alone, a body's window has no second person
    alone = StreamCore(StreamConfig(**{**settings, "stride": 40}), engine.card)  # type: ignore[arg-type]
    (solo,) = predictions(feed(alone, engine, first, body="a"))
    single = softmax(engine.run(model_window(first[None], LAYOUT, engine.card)[None])[0])
    assert solo.partner is None
    for label, probability in solo.top_k:
        assert probability == pytest.approx(single[engine.card.labels.index(label)], abs=1e-5)


def test_a_body_waits_for_its_answer_and_then_gets_its_freshest_window(
    engine: InferenceEngine,
) -> None:
    """While a body's window is being answered it gets no other; once the answer is in, the
    strides that passed meanwhile become one window that ends on the newest frame."""
    core = StreamCore(StreamConfig(layout=LAYOUT, stride=4, min_frames=16), engine.card)
    clip = random_clip(60)
    asked = [r for i in range(16) for r in core.add_frame(Frame(i / 30, {1: clip[i]})).due]
    assert [round(r.end * 30) for r in asked] == [15]
    # 20 frames (5 strides) arrive while that window is being answered: no window is due
    assert not [r for i in range(16, 36) for r in core.add_frame(Frame(i / 30, {1: clip[i]})).due]
    assert core.due_now() == []
    core.finish(asked[0], engine.run(asked[0].window[None])[0])
    (fresh,) = core.due_now()
    assert round(fresh.end * 30) == 35 and core.stats.windows_skipped == 4
    assert core.due_now() == []  # that one is in flight now
    core.abandon(fresh)  # the transport could not run it: the body has its next stride
    later = [r for i in range(36, 40) for r in core.add_frame(Frame(i / 30, {1: clip[i]})).due]
    assert [round(r.end * 30) for r in later] == [39]
    assert core.stats.frames_dropped == 0
