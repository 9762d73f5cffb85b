"""Action events: shown labels become action_started / action_ended, per body and model."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.engine import InferenceEngine
from service.segments import ActionSegmenter, Ended, Started
from service.stream import (
    ActionEnded,
    ActionStarted,
    Eviction,
    Frame,
    Prediction,
    StreamConfig,
    StreamCore,
    StreamError,
)
from skeleton.card import ModelCard
from tests.service.tiny_service import LAYOUT, TinyModel, random_clip

NONE = 0


@pytest.fixture(scope="module")
def engine(tiny_model: TinyModel) -> InferenceEngine:
    return InferenceEngine(tiny_model.path)


def with_none(card: ModelCard, threshold: float, name: str = "with-none") -> ModelCard:
    """The tiny model's card with its last label as the none label and a decision rule."""
    rule = {"rule": "top_probability", "threshold": threshold}
    return replace(card, name=name, none_label=card.labels[-1], decision=rule)


def runs(labels: list[int]) -> list[tuple[int, int, int]]:
    """(label, first index, end index) of the runs of labels other than NONE."""
    out, start = [], 0
    for i in range(1, len(labels) + 1):
        if i == len(labels) or labels[i] != labels[start]:
            if labels[start] != NONE:
                out.append((labels[start], start, i))
            start = i
    return out


def segments(
    labels: list[int], min_s: float, lag_s: float = 0.0, opened: float = 0.0, end_lag_s: float = 0.0
) -> list[tuple[int, float, float]]:
    """Replay ``labels`` shown at t = 0, 1, 2 ... and close at the end: (label, start, end)."""
    seg = ActionSegmenter(NONE, min_s, lag_s, opened, end_lag_s)
    started: list[Started] = []
    ended: list[Ended] = []
    for t, label in enumerate(labels):
        for change in seg.update(float(t), label, 0.5):
            (ended if isinstance(change, Ended) else started).append(change)
        assert len(started) - len(ended) == (seg.active is not None)
    last = seg.close(float(len(labels)))
    ended += [last] if last is not None else []
    assert [(s.label, s.start) for s in started] == [(e.label, e.start) for e in ended]
    return [(e.label, e.start, e.end) for e in ended]


label_runs = st.lists(st.integers(0, 3), min_size=1, max_size=80)


@given(label_runs)
@settings(max_examples=200, deadline=None)
def test_without_a_minimum_duration_actions_are_the_runs_of_shown_labels(
    labels: list[int],
) -> None:
    assert segments(labels, 0.0) == [(lab, float(a), float(b)) for lab, a, b in runs(labels)]


@given(label_runs, st.integers(1, 5))
@settings(max_examples=200, deadline=None)
def test_no_action_is_shorter_than_the_minimum_and_flicker_ends_nothing(
    labels: list[int], min_s: int
) -> None:
    found = segments(labels, float(min_s))
    # every action ended by a successor lasted at least min_s (the last one may be cut short
    # by the end of the stream)
    assert all(end - start >= min_s for _, start, end in found[:-1])
    # an action starts only on a label shown for min_s in a row
    for label, start, _ in found:
        held = labels[int(start) : int(start) + min_s + 1]
        assert len(held) == min_s + 1 and set(held) == {label}


def test_a_short_flicker_does_not_split_an_action() -> None:
    labels = [0, 1, 1, 1, 1, 2, 1, 1, 0, 1, 1, 1, 0, 0, 0, 0]
    assert segments(labels, 2.0) == [(1, 1.0, 12.0)]
    assert segments(labels, 0.0) == [(1, 1.0, 5.0), (2, 5.0, 6.0), (1, 6.0, 8.0), (1, 9.0, 12.0)]


def test_a_start_lag_moves_starts_earlier_but_never_before_the_previous_end() -> None:
    labels = [0, 0, 0, 0, 1, 1, 1, 0, 0, 2, 2, 0, 0, 0, 0, 0, 0, 1, 1]
    assert segments(labels, 0.0) == [(1, 4.0, 7.0), (2, 9.0, 11.0), (1, 17.0, 19.0)]
    assert segments(labels, 0.0, 2.0) == [(1, 2.0, 7.0), (2, 7.0, 11.0), (1, 15.0, 19.0)]
    # 3 s earlier would start action 2 at 6, before action 1 ended: it starts at 7
    assert segments(labels, 0.0, 3.0) == [(1, 1.0, 7.0), (2, 7.0, 11.0), (1, 14.0, 19.0)]
    # nor before the body came into view
    assert segments(labels, 0.0, 3.0, opened=2.5)[0] == (1, 2.5, 7.0)
    # the decision is not moved: with min_s 1 action 2 is still decided at 10
    seg = ActionSegmenter(NONE, 1.0, 5.0, opened=0.0)
    decided = [(t, c) for t, label in enumerate(labels) for c in seg.update(float(t), label, 1)]
    assert [(t, c.start) for t, c in decided if isinstance(c, Started)] == [
        (5, 0.0), (10, 7.0), (18, 12.0)
    ]  # fmt: skip


def test_an_end_lag_moves_ends_earlier_but_never_before_the_label_was_first_shown() -> None:
    labels = [0, 0, 0, 0, 1, 1, 1, 1, 1, 0, 0, 2, 0, 0, 1, 1, 1]
    assert segments(labels, 0.0) == [(1, 4.0, 9.0), (2, 11.0, 12.0), (1, 14.0, 17.0)]
    # action 1 ends 2 s before none was shown; action 2, shown for 1 s, ends where it was
    # first shown; a body that leaves (the end of the replay) ends its action unmoved
    assert segments(labels, 0.0, end_lag_s=2.0) == [(1, 4.0, 7.0), (2, 11.0, 11.0), (1, 14.0, 17.0)]
    # an earlier end leaves room for the next start lag: action 2 may start at 7 now
    assert segments(labels, 0.0, 5.0, end_lag_s=2.0) == [
        (1, 0.0, 7.0), (2, 7.0, 11.0), (1, 11.0, 17.0)
    ]  # fmt: skip
    # the decision is not moved: with min_s 1 action 1 still ends at t = 10, reporting 7
    seg = ActionSegmenter(NONE, 1.0, 0.0, 0.0, 2.0)
    decided = [(t, c) for t, label in enumerate(labels) for c in seg.update(float(t), label, 1)]
    assert [(t, c.end) for t, c in decided if isinstance(c, Ended)][0] == (10, 7.0)


@given(label_runs, st.integers(0, 5), st.floats(0.0, 6.0))
@settings(max_examples=200, deadline=None)
def test_lagged_actions_keep_their_order_and_ends(
    labels: list[int], min_s: int, lag: float
) -> None:
    plain, lagged = segments(labels, float(min_s)), segments(labels, float(min_s), lag)
    assert [(lab, end) for lab, _, end in lagged] == [(lab, end) for lab, _, end in plain]
    previous_end = 0.0  # opened
    for (_, start, end), (_, first_shown, _) in zip(lagged, plain, strict=True):
        assert start == max(first_shown - lag, previous_end) and start <= end
        previous_end = end


def feed(core: StreamCore, infer, clips: dict, t0: float = 0.0) -> list:  # type: ignore[no-untyped-def]
    events = []
    frames = max(len(c) for c in clips.values())
    for i in range(frames):
        bodies = {b: c[i] for b, c in clips.items() if i < len(c)}
        events += core.process(Frame(t0 + i / 30, bodies), infer)
    return events


def test_events_follow_the_shown_labels_and_end_when_the_body_leaves(
    engine: InferenceEngine,
) -> None:
    card = with_none(engine.card, 0.0)
    clip = random_clip(150, seed=4)
    config = {"layout": LAYOUT, "stride": 2, "min_frames": 8, "event_min_s": 0.0}
    windows = feed(StreamCore(StreamConfig(**config), card), engine.run, {1: clip})
    shown = [(p.end, p.label) for p in windows if isinstance(p, Prediction)]
    expected = []
    for i, (t, label) in enumerate(shown):
        if label != card.none_label and (i == 0 or shown[i - 1][1] != label):
            expected.append((label, t))
    assert expected, "the tiny model shows no action on this clip: pick another seed"
    started = [(e.label, e.start) for e in windows if isinstance(e, ActionStarted)]
    assert started == expected
    assert all(e.bodies == (1,) and e.model == card.name for e in windows
               if isinstance(e, ActionStarted | ActionEnded))  # fmt: skip

    # events only: the same actions, no window predictions; leaving ends the open one
    core = StreamCore(StreamConfig(**config, mode="events"), card)
    events = feed(core, engine.run, {1: clip})
    assert not any(isinstance(e, Prediction) for e in events)
    assert [e for e in events if isinstance(e, ActionStarted)] == [
        e for e in windows if isinstance(e, ActionStarted)
    ]
    open_action = core.current_actions()[card.name][1]
    left = core.evict_all()
    assert isinstance(left[-1], Eviction)
    if open_action is not None:
        (ended,) = left[:-1]
        assert isinstance(ended, ActionEnded) and ended.label == open_action
        assert ended.end == left[-1].last_seen == (len(clip) - 1) / 30
    assert core.stats.actions_started == core.stats.actions_ended


def test_action_starts_are_moved_by_the_cards_start_lag_unless_the_stream_says(
    engine: InferenceEngine,
) -> None:
    plain = with_none(engine.card, 0.0)
    card = replace(plain, decision={**plain.decision, "start_lag_s": 0.5})
    clip = random_clip(150, seed=4)
    config = {"layout": LAYOUT, "stride": 2, "min_frames": 8, "event_min_s": 0.0}

    def actions(card: ModelCard, **extra: float) -> list[ActionStarted | ActionEnded]:
        events = feed(StreamCore(StreamConfig(**config, **extra), card), engine.run, {1: clip})
        return [e for e in events if isinstance(e, ActionStarted | ActionEnded)]

    shown, lagged = actions(plain), actions(card)
    assert any(isinstance(e, ActionStarted) for e in shown)
    assert all(e.start == e.timestamp for e in shown if isinstance(e, ActionStarted))
    # the same actions, decided at the same times, ending where they did
    assert [(type(e), e.label, e.timestamp) for e in lagged] == [
        (type(e), e.label, e.timestamp) for e in shown
    ]  # fmt: skip
    previous_end = 0.0  # the body came into view at 0
    for mine, first in zip(lagged, shown, strict=True):
        if isinstance(mine, ActionStarted):
            assert mine.start == max(first.start - 0.5, previous_end)
        else:
            assert mine.end == first.end
            previous_end = mine.end
    assert actions(card, start_lag_s=0.0) == shown
    # and the card's end lag moves their ends, never before they were first shown
    ends = replace(plain, decision={**plain.decision, "end_lag_s": 0.2})
    for mine, first in zip(actions(ends), shown, strict=True):
        assert mine.timestamp == first.timestamp
        if isinstance(mine, ActionEnded):
            assert mine.end == max(first.end - 0.2, first.start)
    assert actions(ends, end_lag_s=0.0) == shown
    assert StreamCore(StreamConfig(**config, smoothing=0.75), ends).end_lag_s() == pytest.approx(
        0.2 + 2 * 3 / 30
    )
    assert card.start_lag_s == 0.5 and plain.start_lag_s == 0.0
    # a smoothed stream shows labels later still: its average trails by stride * a / (1 - a)
    smoothed = StreamConfig(**config, smoothing=0.75)
    assert StreamCore(smoothed, card).start_lag_s() == pytest.approx(0.5 + 2 * 3 / 30)
    assert StreamCore(smoothed, plain).start_lag_s() == 0.0
    assert StreamCore(smoothed.model_copy(update={"start_lag_s": 0.2}), card).start_lag_s() == 0.2


def test_a_pair_gets_one_event_naming_both_bodies(engine: InferenceEngine) -> None:
    card = with_none(engine.card, 0.0)
    assert card.window.persons == 2
    config = StreamConfig(layout=LAYOUT, stride=3, min_frames=8, event_min_s=0.1, mode="events")
    core = StreamCore(config, card)
    events = feed(core, engine.run, {"a": random_clip(120, seed=5),
                                     "b": random_clip(120, seed=6) + 0.5})  # fmt: skip
    started = [e for e in events if isinstance(e, ActionStarted)]
    assert started and all(e.bodies == ("a", "b") for e in started)


def test_events_need_a_model_that_can_say_none(engine: InferenceEngine) -> None:
    with pytest.raises(StreamError, match="field 'mode'.*no none label"):
        StreamCore(StreamConfig(layout=LAYOUT, mode="events"), engine.card)
    with pytest.raises(StreamError, match="'decision' is 'off'"):
        StreamCore(
            StreamConfig(layout=LAYOUT, mode="events", decision="off"),
            with_none(engine.card, 0.5),
        )
    # a model without a none label keeps today's behaviour: predictions, no events
    core = StreamCore(StreamConfig(layout=LAYOUT, stride=4, min_frames=8), engine.card)
    events = feed(core, engine.run, {1: random_clip(60, seed=1)})
    assert events and all(isinstance(e, Prediction) for e in events)


def test_one_stream_runs_several_models_on_every_frame(engine: InferenceEngine) -> None:
    cards = {"plain": engine.card, "gated": with_none(engine.card, 1.01)}
    config = StreamConfig(layout=LAYOUT, stride=5, min_frames=8)
    clip = random_clip(60, seed=2)
    core = StreamCore(config, cards)
    calls: list[str] = []

    def counted(name: str):  # type: ignore[no-untyped-def]
        def run(windows: np.ndarray) -> np.ndarray:
            calls.append(name)
            return engine.run(windows)

        return run

    events = feed(core, {name: counted(name) for name in cards}, {1: clip})
    by_model = {name: [e for e in events if isinstance(e, Prediction) and e.model == name]
                for name in cards}  # fmt: skip
    alone = [e for e in feed(StreamCore(config, engine.card), engine.run, {1: clip})
             if isinstance(e, Prediction)]  # fmt: skip
    # the same windows, decided per model: the plain model as if alone, the gated one none
    assert [(p.end, p.top_k) for p in by_model["plain"]] == [(p.end, p.top_k) for p in alone]
    assert [p.end for p in by_model["gated"]] == [p.end for p in alone]
    assert {p.label for p in by_model["gated"]} == {engine.card.labels[-1]}
    assert sorted(set(calls)) == ["gated", "plain"]
    assert core.models == ["plain", "gated"] and core.card is engine.card


def test_a_pairs_action_ends_when_either_body_leaves(engine: InferenceEngine) -> None:
    card = with_none(engine.card, 0.0)
    config = StreamConfig(layout=LAYOUT, stride=3, min_frames=8, event_min_s=0.1,
                          mode="events", idle_timeout_s=0.5)  # fmt: skip
    core = StreamCore(config, card)
    # "b" (second-tracked) leaves after 60 frames; "a" stays
    events = feed(core, engine.run, {"a": random_clip(120, seed=5),
                                     "b": random_clip(60, seed=6) + 0.5})  # fmt: skip
    pair = [e for e in events if isinstance(e, ActionStarted | ActionEnded)
            and e.bodies == ("a", "b")]  # fmt: skip
    assert pair and isinstance(pair[-1], ActionEnded), "the pair's action ended"
    (gone,) = [e for e in events if isinstance(e, Eviction)]
    assert gone.body == "b" and pair[-1].end <= gone.last_seen
    assert events.index(pair[-1]) < events.index(gone)  # ended before the body is gone
    # while a pair acts, both its bodies have that action
    core = StreamCore(config, card)
    a, b = random_clip(40, seed=5), random_clip(40, seed=6) + 0.5
    checked = 0
    for i in range(40):
        for event in core.process(Frame(i / 30, {"a": a[i], "b": b[i]}), engine.run):
            if isinstance(event, ActionStarted):
                current = core.current_actions()[card.name]
                assert current == {"a": event.label, "b": event.label}
                checked += 1
    assert checked


def test_a_third_body_beside_a_pair_is_classified_alone(engine: InferenceEngine) -> None:
    config = StreamConfig(layout=LAYOUT, stride=10, min_frames=8)
    core = StreamCore(config, with_none(engine.card, 0.0))
    clips = {"a": random_clip(30, seed=1), "b": random_clip(30, seed=2) + 0.3,
             "c": random_clip(30, seed=3) + 3.0}  # fmt: skip
    windows = [e for e in feed(core, engine.run, clips) if isinstance(e, Prediction)]
    partners = {p.body: p.partner for p in windows}
    # the nearest two pair up; the far one has no partner left and is alone in its window
    assert partners == {"a": "b", "b": "a", "c": None}


def test_a_reloaded_model_with_other_labels_ends_the_open_actions(engine: InferenceEngine) -> None:
    card = with_none(engine.card, 0.0)
    config = StreamConfig(layout=LAYOUT, stride=2, min_frames=8, event_min_s=0.0, mode="events")
    core = StreamCore(config, card)
    for i, joints in enumerate(random_clip(60, seed=4)):
        core.process(Frame(i / 30, {1: joints}), engine.run)
        if core.current_actions()[card.name][1] is not None:
            break
    open_label = core.current_actions()[card.name][1]
    assert open_label is not None
    # the same labels: nothing ends; other labels: the open action ends now
    assert core.set_card(replace(card, version="2")) == []
    renamed = replace(card, labels=(*card.labels[:-1], "nothing"), none_label="nothing")
    (ended,) = core.set_card(renamed)
    assert (ended.label, ended.end) == (open_label, core.latest)
    assert core.current_actions()[card.name][1] is None


def test_a_slow_watcher_skips_skeletons_but_never_an_action_event() -> None:
    import asyncio

    from service.api.state import StreamHub

    hub = StreamHub(queue_size=8)
    inbox = hub.subscribe()
    sent = []
    for i in range(200):  # nobody reads meanwhile
        hub.publish({"type": "skeleton", "timestamp": i})
        if i % 20 == 0:
            event = {"type": "action_started" if i % 40 == 0 else "action_ended", "i": i}
            hub.publish(event)
            sent.append(event)

    async def drain() -> list[dict]:
        return [await inbox.get() for _ in range(len(inbox))]

    received = asyncio.run(drain())
    assert [m for m in received if m["type"].startswith("action")] == sent  # all, in order
    skeletons = [m["timestamp"] for m in received if m["type"] == "skeleton"]
    assert skeletons == list(range(8)) and inbox.skipped == 192
