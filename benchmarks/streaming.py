"""Continuous recognition on real untrimmed streams, through the real serving path.

    python -m benchmarks.streaming [--interaction models/interaction.onnx]
        [--gesture models/default.onnx] [--baseline-gesture PATH ...] [--splits xsub xview]

Every test video of PKU-MMD (cross-subject and cross-view) is replayed frame by frame, with
30 fps timestamps, into ``service.stream.StreamCore`` over the exported ONNX model
(``service.engine.InferenceEngine``): both persons as two bodies, and the first person alone
("actor"). The label a stream shows at each frame is scored against the instances
(``benchmarks.stream_scoring``): frame accuracy and macro F1, mAP and F1 at temporal IoU 0.5,
start latency, false alarms per background minute. ``shipped`` applies the model card's none
label and decision rule; ``baseline`` is today's behaviour: every window shows its top action.

The gesture model is replayed on streams of UTD-MHAD test clips (cross-subject, even subjects)
separated by 4 s of PKU-MMD test-video background (first person, mapped to utd20); its
baselines are the models given as ``--baseline-gesture``, each under its own card's rule
(earlier default models), or the same model with the rule off. It and its baselines are also
replayed on streams that hold nothing of its vocabulary (``none_motion``): the NW-UCLA test
clips of activities no UTD-MHAD class resembles, and still poses (a frame of each held), with
1 s of the same background around each; every action they show is a false alarm. Writes
benchmarks/results/streaming.json, a timeline plot and a RESULTS.md section.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from benchmarks.report import publish
from benchmarks.stream_scoring import runs, stream_scores
from service.engine import EngineOptions, InferenceEngine
from service.stream import (
    ActionEnded,
    ActionStarted,
    Frame,
    Prediction,
    StreamConfig,
    StreamCore,
)
from skeleton.card import ModelCard
from skeleton.clip import inference_window
from skeleton.layouts import convert
from training.data.registry import load_dataset, load_streams
from training.data.spliced import background_gaps, splice
from training.data.streams import Stream, class_lookup
from training.data.types import Sample
from training.recipes.none_data import still_pose

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).parent / "results"
FPS = 30.0
# The stream settings every replay uses (what a client would send in its WebSocket config).
STREAM = {"stride": 4, "smoothing": 0.5, "hysteresis": 0.1, "min_frames": 16, "top_k": 1}
GAP_S = 4.0  # background between two UTD-MHAD clips
# The action-event variants compared in one replay, as (StreamConfig.event_min_s, start and
# end lag): each minimum duration with the lags StreamCore applies by default (None: the
# card's plus the smoothing's delay), and the default minimum with none (an action starts when
# its label was first shown and ends when it stopped being shown).
EVENT_VARIANTS = ((0.0, None), (0.3, None), (0.6, None), (1.0, None), (0.3, 0.0))
TIMELINE_EVENTS = EVENT_VARIANTS.index((0.3, None))
# NW-UCLA activities no UTD-MHAD class resembles (its pick-ups, throw, sitting, standing,
# walking and carrying are left out): the gesture model should show none of its own.
NONE_ACTIVITIES = ("drop trash", "donning", "doffing")
STILL_S = 3.0  # a still pose: one frame held this long
NONE_GAP_S = 1.0  # background before and after each of them
NONE_EVENT_MIN_S = 0.3  # the events counted on none-motion streams: the service's default


@dataclass
class Shown:
    """Per-frame label index and its probability shown for body 1 of one video, and the
    action events of body 1 (an action open when the video ends ends with it)."""

    labels: NDArray[np.int64]
    probability: NDArray[np.float64]
    events: list[ActionStarted | ActionEnded]


def event_frames(
    events: Sequence[ActionStarted | ActionEnded], card: ModelCard, frames: int, none: int
) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.int64]]:
    """Per-frame labels of the actions ``events`` report (from start to end, with the action's
    mean confidence), and as a client knew them (from the action_started message on)."""
    reported = np.full(frames, none, dtype=np.int64)
    probability = np.zeros(frames, dtype=np.float64)
    known = np.full(frames, none, dtype=np.int64)
    decided = {(e.label, e.start): e.timestamp for e in events if isinstance(e, ActionStarted)}
    for e in events:
        if isinstance(e, ActionEnded):
            label = card.labels.index(e.label)
            start, end = round(e.start * FPS), round(e.end * FPS)
            reported[start:end], probability[start:end] = label, e.confidence
            known[round(decided[(e.label, e.start)] * FPS) : end] = label
    return reported, probability, known


class CachedInference:
    """The engine's logits per distinct window, so replays that build the same windows (the
    shipped and baseline variants, both bodies of a pair) run the model once."""

    def __init__(self, engine: InferenceEngine) -> None:
        self.engine = engine
        self.cache: dict[bytes, NDArray[np.float32]] = {}
        self.runs = 0

    def __call__(self, windows: NDArray[np.float32]) -> NDArray[np.float32]:
        keys = [hashlib.blake2b(w.tobytes(), digest_size=16).digest() for w in windows]
        missing = [i for i, k in enumerate(keys) if k not in self.cache]
        if missing:
            logits = self.engine.run(windows[missing])
            self.runs += len(missing)
            for i, row in zip(missing, logits, strict=True):
                self.cache[keys[i]] = row
        return np.stack([self.cache[k] for k in keys])

    def clear(self) -> None:
        self.cache.clear()


def none_index(card: ModelCard) -> int:
    """The label index a replay shows for none: the card's none label, or one past its labels
    for a model without one."""
    return card.labels.index(card.none_label) if card.none_label else len(card.labels)


def replay(
    data: NDArray[np.float32],
    layout: str,
    card: ModelCard,
    infer: Callable[[NDArray[np.float32]], NDArray[np.float32]],
    configs: Sequence[StreamConfig],
) -> list[Shown]:
    """Stream ``data`` (M, T, V, 3) frame by frame, persons as bodies 1..M (an all-zero person
    is not in view), into one core per config; the labels body 1 shows at every frame and its
    action events (the bodies leave when the video ends)."""
    none = none_index(card)
    frames = data.shape[1]
    now = [0.0]  # simulated time: the replay runs as if the camera sent frames at 30 fps
    cores = [StreamCore(config, card, clock=lambda: now[0]) for config in configs]
    shown = [np.full(frames, none, dtype=np.int64) for _ in cores]
    prob = [np.zeros(frames, dtype=np.float64) for _ in cores]
    current = [(none, 0.0) for _ in cores]
    actions: list[list[ActionStarted | ActionEnded]] = [[] for _ in cores]
    present = (data != 0).any(axis=(2, 3))  # (M, T)
    for t in range(frames):
        bodies = {m + 1: data[m, t] for m in range(data.shape[0]) if present[m, t]}
        frame = Frame(t / FPS, bodies)
        now[0] = t / FPS
        for c, core in enumerate(cores):
            for event in core.process(frame, infer):
                if isinstance(event, Prediction) and event.body == 1:
                    current[c] = (card.labels.index(event.label), event.probability)
                elif isinstance(event, ActionStarted | ActionEnded) and 1 in event.bodies:
                    actions[c].append(event)
            if 1 not in core.bodies:
                current[c] = (none, 0.0)
            shown[c][t], prob[c][t] = current[c]
    for c, core in enumerate(cores):
        left = core.evict_all()
        actions[c] += [e for e in left if isinstance(e, ActionEnded) and 1 in e.bodies]
    return [Shown(*out) for out in zip(shown, prob, actions, strict=True)]


def replay_all(
    engine: InferenceEngine,
    streams: Sequence[NDArray[np.float32]],
    layout: str,
    configs: Sequence[StreamConfig],
) -> list[list[Shown]]:
    """``replay`` of each of ``streams`` through ``engine``, its windows run once per stream
    for all ``configs``."""
    infer, out = CachedInference(engine), []
    for stream in streams:
        out.append(replay(stream, layout, engine.card, infer, configs))
        infer.clear()
    return out


def variant_configs(layout: str) -> list[StreamConfig]:
    """The configs of one replay: the baseline (rule off), then one per ``EVENT_VARIANTS``."""
    return [
        StreamConfig(layout=layout, fps=FPS, decision="off", **STREAM),
        *(StreamConfig(layout=layout, fps=FPS, event_min_s=m, start_lag_s=lag, end_lag_s=lag,
                       **STREAM) for m, lag in EVENT_VARIANTS),
    ]  # fmt: skip


def scored_variants(
    results: Sequence[Sequence[Shown]],
    truth: Sequence[NDArray[np.int64]],
    card: ModelCard,
    none: int,
    configs: Sequence[StreamConfig],
) -> list[dict[str, Any]]:
    """The scores of every variant of a replay whose cores ran ``configs``
    (``variant_configs``):
    ``baseline`` (no none), ``shipped`` (per-frame shown labels under the card's rule) and
    ``events`` for each of ``EVENT_VARIANTS`` (segments from action_started / action_ended)."""
    rows = []
    for variant, index in (("baseline", 0), ("shipped", 1)):
        shown = [r[index] for r in results]
        scores = stream_scores(truth, [s.labels for s in shown], [s.probability for s in shown],
                               none, FPS)  # fmt: skip
        rows.append({"variant": variant, "event_min_s": None, **scores})
    for i, (min_s, _) in enumerate(EVENT_VARIANTS):
        frames = [event_frames(r[1 + i].events, card, len(t), none) for r, t in
                  zip(results, truth, strict=True)]  # fmt: skip
        scores = stream_scores(truth, [f[0] for f in frames], [f[1] for f in frames], none, FPS,
                               known=[f[2] for f in frames])  # fmt: skip
        core = StreamCore(configs[1 + i], card)
        rows.append({"variant": "events", "event_min_s": min_s, "start_lag_s": core.start_lag_s(),
                     "end_lag_s": core.end_lag_s(), **scores})  # fmt: skip
    return rows


def truth_labels(stream: Stream, lookup: NDArray[np.int64]) -> NDArray[np.int64]:
    out: NDArray[np.int64] = lookup[stream.frame_labels()]
    return out


def pku_rows(
    engine: InferenceEngine, splits: Sequence[str], limit: int | None
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    card = engine.card
    assert card.none_label is not None, "the interaction model's card names no none label"
    none = none_index(card)
    configs = variant_configs("ntu25")
    rows: list[dict[str, Any]] = []
    timeline: dict[str, Any] = {}
    trimmed = trimmed_top1(engine, "pku-mmd")
    seen = trained_videos(card)
    for split in splits:
        data = load_streams("pku-mmd", benchmark=split)
        _, lookup = class_lookup(data.classes, list(card.labels[:none]))
        videos = data.test[:limit] if limit else data.test
        truth = [truth_labels(v, lookup) for v in videos]
        for persons in ("both", "actor"):
            started = time.perf_counter()
            clips = [v.data if persons == "both" else v.data[:1] for v in videos]
            results = replay_all(engine, clips, "ntu25", configs)
            seconds = time.perf_counter() - started
            common = {
                "model": card.name,
                "split": split,
                "persons": persons,
                "trimmed_top1": trimmed,
                "videos": len(videos),
                "test_videos_in_training": sum(v.name in seen for v in videos),
                "replay_seconds": round(seconds, 1),
            }
            for row in scored_variants(results, truth, card, none, configs):
                rows.append({**common, **row})
                print(json.dumps(rows[-1]), file=sys.stderr)
            if split == splits[0] and persons == "both":
                timeline = {
                    "video": videos[0].name,
                    "truth": truth[0],
                    "shipped": results[0][1].labels,
                    "events": event_frames(
                        results[0][1 + TIMELINE_EVENTS].events, card, len(truth[0]), none
                    )[0],
                    "baseline": results[0][0].labels,
                    "labels": card.labels,
                    "none": none,
                }
    return rows, timeline


def trained_videos(card: ModelCard) -> set[str]:
    """The PKU-MMD videos the model trained on. A model trained on the cross-subject split has
    seen most cross-view test videos: their other-subject recordings from the same sensor, and
    the same scenes from the other two."""
    source = card.training.get("source") or {}
    trained = load_streams("pku-mmd", benchmark=source.get("benchmark") or "xsub")
    return {s.name for s in trained.train}


def trimmed_top1(engine: InferenceEngine, dataset: str) -> float:
    """Top-1 on the trimmed test clips of ``dataset`` whose class the model knows (the offline
    reference), through ``inference_window`` as REST serves a clip."""
    card = engine.card
    data = load_dataset(dataset)
    known = {name: i for i, name in enumerate(card.labels)}
    clips = [(s, known[data.classes[s.label]]) for s in data.test if data.classes[s.label] in known]
    windows = np.stack(
        [inference_window(convert(s.data, data.layout, card.layout), card.window) for s, _ in clips]
    )
    logits = np.concatenate([engine.run(windows[i : i + 64]) for i in range(0, len(windows), 64)])
    labels = np.array([label for _, label in clips])
    return float((logits.argmax(axis=1) == labels).mean())


def utd_streams() -> tuple[list[Any], list[Any]]:
    """Streams of UTD-MHAD test clips, each clip followed by GAP_S s of PKU-MMD cross-subject
    test-video background (the dataset ``spliced``); with the per-frame truth (class index in
    the UTD-MHAD label order; 27 = none)."""
    data = load_streams("spliced", benchmark="xsub", gap_s=GAP_S, per_stream=27, seed=0)
    none = len(data.classes)
    labels = [s.frame_labels().astype(np.int64) for s in data.test]
    truths = [np.where(frame == 0, none, frame - 1) for frame in labels]
    return [s.data for s in data.test], truths


def model_names(engines: Sequence[InferenceEngine]) -> list[str]:
    """Each model's card name, with its version where two models share a name (a model and
    its predecessor)."""
    names = [e.card.name for e in engines]
    return [f"{n}@{e.card.version}" if names.count(n) > 1 else n
            for n, e in zip(names, engines, strict=True)]  # fmt: skip


def gesture_rows(
    engine: InferenceEngine, baselines: Sequence[InferenceEngine], limit: int | None
) -> list[dict[str, Any]]:
    """The gesture model on UTD-MHAD streams; its baselines are ``baselines`` each under its
    own card's rule when given, else the same model with the rule off."""
    streams, truths = utd_streams()
    if limit:
        streams, truths = streams[:limit], truths[:limit]
    utd_classes = load_dataset("utd-mhad").classes
    none = len(utd_classes)  # the truth's none: 27
    for card in (m.card for m in (*baselines, engine)):
        # the truth is in UTD-MHAD label order, none last: so must the models' labels be
        assert list(card.labels[:none]) == list(utd_classes), card.labels
        assert card.none_label in (None, card.labels[-1]), card.none_label

    names = model_names([*baselines, engine])
    configs = variant_configs("utd20")
    results = replay_all(engine, streams, "utd20", configs)
    top1 = trimmed_top1(engine, "utd-mhad")
    rows = [(row, names[-1], top1)
            for row in scored_variants(results, truths, engine.card, none, configs)]  # fmt: skip
    if baselines:  # each baseline under its own rule, in place of this model with the rule off
        plain = [StreamConfig(layout="utd20", fps=FPS, **STREAM)]
        previous = []
        for baseline, name in zip(baselines, names[:-1], strict=True):
            shown = [r[0] for r in replay_all(baseline, streams, "utd20", plain)]
            scores = stream_scores(truths, [s.labels for s in shown],
                                   [s.probability for s in shown], none, FPS)  # fmt: skip
            row = {"variant": "baseline", "event_min_s": None, **scores}
            previous.append((row, name, trimmed_top1(baseline, "utd-mhad")))
        rows = previous + rows[1:]
    out = []
    for row, model, trimmed in rows:
        common = {"model": model, "split": "utd-streams", "persons": "actor"}
        out.append({**common, **row, "trimmed_top1": trimmed, "videos": len(streams)})
        print(json.dumps(out[-1]), file=sys.stderr)
    return out


def none_motion_streams() -> dict[str, list[NDArray[np.float32]]]:
    """Streams (utd20, one person) that hold nothing of the gesture model's vocabulary, one per
    NW-UCLA test clip (view 3) of ``NONE_ACTIVITIES``: ``activities``, the clip between
    NONE_GAP_S s of PKU-MMD cross-subject test-video background before and after; ``still
    poses``, one frame of it held STILL_S s between the same background
    (training/recipes/none_data.still_pose)."""
    ucla = load_dataset("nw-ucla")
    wanted = {ucla.classes.index(name) for name in NONE_ACTIVITIES}
    rng = np.random.default_rng(0)
    clips = [Sample(s.name, convert(s.data[:1], ucla.layout, "utd20"), -1, s.subject)
             for s in ucla.test if s.label in wanted]  # fmt: skip
    stills = [still_pose(s, round(STILL_S * FPS), rng) for s in clips]
    background = load_streams("pku-mmd", benchmark="xsub")
    gap = round(NONE_GAP_S * FPS)
    out = {}
    for name, parts in (("activities", clips), ("still poses", stills)):
        gaps = background_gaps(background.test, background.layout, "utd20", 1,
                               [gap] * (len(parts) + 1), seed=0)  # fmt: skip
        # one clip per stream: each starts with the core's bodies fresh, as a person walks in
        out[name] = [s.data for s in splice(parts, gaps, 1, name)]
    return out


def none_motion_rows(engines: Sequence[InferenceEngine]) -> list[dict[str, Any]]:
    """False alarms of each gesture model on ``none_motion_streams``: runs of a shown action
    (card rule) and ``action_started`` events (``NONE_EVENT_MIN_S``) per minute."""
    streams = none_motion_streams()
    config = [StreamConfig(layout="utd20", fps=FPS, event_min_s=NONE_EVENT_MIN_S, **STREAM)]
    out = []
    minutes = {kind: sum(d.shape[1] for d in data) / FPS / 60.0 for kind, data in streams.items()}
    for engine, name in zip(engines, model_names(engines), strict=True):
        none = none_index(engine.card)
        for kind, data in streams.items():
            shown = [r[0] for r in replay_all(engine, data, "utd20", config)]
            segments = sum(len(runs(s.labels, none)) for s in shown)
            started = sum(isinstance(e, ActionStarted) for s in shown for e in s.events)
            frames = np.concatenate([s.labels for s in shown])
            out.append({
                "model": name, "streams": kind, "clips": len(data),
                "minutes": round(minutes[kind], 2),
                "shown_false_alarms_per_min": segments / minutes[kind],
                "event_false_alarms_per_min": started / minutes[kind],
                "action_frame_share": float((frames != none).mean()),
            })  # fmt: skip
            print(json.dumps(out[-1]), file=sys.stderr)
    return out


def plot_timeline(timeline: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, none = timeline["labels"], timeline["none"]
    colours = plt.get_cmap("tab10")
    fig, axes = plt.subplots(4, 1, figsize=(14, 4.6), sharex=True)
    for ax, key, title in zip(
        axes, ("truth", "events", "shipped", "baseline"),
        ("ground truth", "action events (min 0.3 s)", "shown (card rule)",
         "shown (baseline: no none)"), strict=True,
    ):  # fmt: skip
        series = np.asarray(timeline[key])
        for label in range(len(labels)):
            if label == none:
                continue
            name = labels[label] if key == "truth" else None
            seconds = np.arange(len(series)) / FPS
            ax.fill_between(
                seconds, 0, 1, where=series == label, color=colours(label), step="mid", label=name
            )
        ax.set_yticks([])
        ax.set_ylabel(title, rotation=0, ha="right", va="center")
    axes[-1].set_xlabel("seconds")
    axes[0].set_title(f"PKU-MMD {timeline['video']} (cross-subject test): white = none")
    fig.legend(loc="center right", fontsize=7)
    fig.tight_layout(rect=(0, 0, 0.8, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def variant_name(row: dict[str, Any]) -> str:
    min_s = row.get("event_min_s")
    if min_s is None:
        return str(row["variant"])
    start, end = row.get("start_lag_s", 0.0), row.get("end_lag_s", 0.0)
    return f"events, min {min_s:g} s, start lag {start:.3g} s, end lag {end:.3g} s"


def none_motion_markdown(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    body = "".join(
        f"| {r['model']} | {r['streams']} | {r['clips']} | {r['minutes']:.1f} "
        f"| {r['shown_false_alarms_per_min']:.2f} | {r['event_false_alarms_per_min']:.2f} "
        f"| {r['action_frame_share']:.3f} |\n"
        for r in rows
    )
    return (
        "\nThe gesture models on streams that hold nothing of their vocabulary (`none_motion`): "
        f"one stream per NW-UCLA test clip (view 3) of {', '.join(NONE_ACTIVITIES)} (activities "
        "no UTD-MHAD class resembles), and one per still pose (a frame of such a clip held "
        f"{STILL_S:g} s), each between {NONE_GAP_S:g} s of PKU-MMD test background; every "
        "action shown is a false alarm (shown: runs of an action label under the card's rule; "
        f"events: `action_started` with `event_min_s` {NONE_EVENT_MIN_S:g} s).\n\n"
        "| model | streams | clips | minutes | shown false alarms / min "
        "| action_started / min | frames showing an action |\n"
        "| --- | --- | --- | --- | --- | --- | --- |\n" + body
    )


def markdown(
    rows: list[dict[str, Any]],
    commands: dict[str, str],
    machine: str,
    none_motion: list[dict[str, Any]],
) -> str:
    head = (
        "| model | split | persons | variant | mAP@0.5 | F1@0.5 | frame acc | frame macro F1 "
        "| latency median / p90 (s) | missed | false alarms / bg min | trimmed top-1 "
        "| test videos seen in training |\n"
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n"
    )
    body = "".join(
        f"| {r['model']} | {r['split']} | {r['persons']} | {variant_name(r)} "
        f"| {r['map_iou50']:.3f} "
        f"| {r['f1_iou50']:.3f} | {r['frame_accuracy']:.3f} | {r['frame_macro_f1']:.3f} "
        f"| {r['latency_median_s']:.2f} / {r['latency_p90_s']:.2f} | {r['missed_share']:.3f} "
        f"| {r['false_alarms_per_min']:.2f} | {r['trimmed_top1']:.3f} "
        f"| {r.get('test_videos_in_training', '-')} of {r['videos']} |\n"
        for r in rows
    )
    settings = ", ".join(f"{k} {v}" for k, v in STREAM.items())
    if len(set(commands.values())) == 1:
        ran = f"`{next(iter(commands.values()))}`"
    else:
        ran = "; ".join(f"{model} rows: `{c}`" for model, c in commands.items())
    return (
        "## Continuous recognition on untrimmed streams\n\n"
        f"{ran} ({machine}). The gesture `baseline` rows are the models given as "
        "`--baseline-gesture`, each under its own card's rule (earlier default models, named "
        "`name@version` where two share a name; models/README.md says which). "
        "Every test video replayed at 30 fps through `StreamCore` and "
        f"the exported ONNX model (stream settings: {settings}). `shipped`: the label shown "
        "at each frame under the card's none label and decision rule; `events, min x s, "
        "start lag y s, end lag z s`: the actions of the `action_started` / `action_ended` "
        "events with `event_min_s` x, `start_lag_s` y and `end_lag_s` z (scored from the start "
        "and end they report: the start y s before the label was first shown, the end z s "
        "before it stopped being shown, y and z the card's `decision.start_lag_s` and "
        "`decision.end_lag_s` plus the smoothing's delay, stride x a / (1 - a) frames, unless "
        "0; latency from the `action_started` message); "
        "interaction `baseline`: every window shows its top action (no none). `actor`: only "
        "the first person is sent. `utd-streams`: UTD-MHAD test "
        f"clips separated by {GAP_S:g} s of PKU-MMD test background.\n\n"
        + head
        + body
        + none_motion_markdown(none_motion)
        + "\n![timeline](results/streaming_timeline.png)\n"
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--interaction", type=Path, default=ROOT / "models" / "interaction.onnx")
    parser.add_argument("--gesture", type=Path, default=ROOT / "models" / "default.onnx")
    parser.add_argument("--baseline-gesture", type=Path, nargs="+", default=[])
    parser.add_argument("--splits", nargs="+", default=["xsub", "xview"])
    parser.add_argument("--limit", type=int, default=None, help="videos per split (quick runs)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS / "streaming.json")
    parser.add_argument(
        "--only", choices=("interaction", "gesture"), default=None,
        help="re-run one model's rows; the other model's rows are kept from --out",
    )  # fmt: skip
    args = parser.parse_args(argv)
    options = EngineOptions(intra_op_threads=args.threads)
    rows: list[dict[str, Any]] = []
    none_motion: list[dict[str, Any]] = []
    timeline: dict[str, Any] = {}
    command = ("python -m benchmarks.streaming " + " ".join(argv or sys.argv[1:])).strip()
    commands = {"interaction": command, "gesture": command}
    if args.only and args.out.is_file():
        kept = "utd-streams" if args.only == "interaction" else None
        previous = json.loads(args.out.read_text())
        rows = [r for r in previous["rows"] if (r["split"] == "utd-streams") == (kept is not None)]
        other = "gesture" if args.only == "interaction" else "interaction"
        commands[other] = previous.get("commands", {}).get(other, previous.get("command", ""))
        if args.only == "interaction":
            none_motion = previous.get("none_motion", [])
    if args.only != "gesture" and args.interaction.is_file():
        pku, timeline = pku_rows(
            InferenceEngine(args.interaction, options), args.splits, args.limit
        )
        rows = pku + rows
    if args.only != "interaction" and args.gesture.is_file():
        gesture = InferenceEngine(args.gesture, options)
        baselines = [InferenceEngine(path, options) for path in args.baseline_gesture]
        rows += gesture_rows(gesture, baselines, args.limit)
        none_motion = none_motion_rows([*baselines, gesture])
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, {args.threads} onnxruntime threads"
    if timeline:
        plot_timeline(timeline, args.out.with_name("streaming_timeline.png"))
    result = {
        "commands": commands,
        "machine": machine,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "stream_settings": STREAM,
        "rows": rows,
        "none_motion": none_motion,
    }
    publish("streaming", result, args.out, markdown(rows, commands, machine, none_motion))


if __name__ == "__main__":
    main()
