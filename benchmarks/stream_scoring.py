"""Scores of continuous recognition on untrimmed streams, from per-frame labels.

A video's truth and prediction are ``(T,)`` integer arrays of model classes in which ``none``
marks "no action of the vocabulary". Predicted segments are runs of one shown label other than
``none``; their confidence is the mean shown probability over the run.

- frame scores: per-frame accuracy and macro F1 over every class, ``none`` included;
- PKU-MMD's instance metric: per-class average precision of predicted segments at temporal
  IoU >= ``iou`` (greedy matching in decreasing confidence, each ground-truth instance matched
  once; all-point interpolated precision), their mean over classes with instances (mAP), and
  F1 of all segments at the same IoU;
- start latency: seconds from an instance's first frame to the first frame inside it at which
  its label is shown (never shown inside it: missed);
- false alarms: predicted segments that overlap no instance of their class, per minute of
  background (frames labelled ``none``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class Segment:
    """Frames ``[start, end)`` of video ``video`` show class ``label``."""

    video: int
    label: int
    start: int
    end: int
    confidence: float = 1.0


def runs(labels: NDArray[np.integer], none: int, video: int = 0) -> list[Segment]:
    """The runs of one label other than ``none`` in a per-frame label array."""
    labels = np.asarray(labels)
    if labels.size == 0:
        return []
    edges = np.flatnonzero(np.diff(labels)) + 1
    starts = np.concatenate([[0], edges])
    ends = np.concatenate([edges, [labels.size]])
    return [
        Segment(video, int(labels[a]), int(a), int(b))
        for a, b in zip(starts, ends, strict=True)
        if labels[a] != none
    ]


def predicted_segments(
    labels: NDArray[np.integer], probability: NDArray[np.floating], none: int, video: int = 0
) -> list[Segment]:
    """Runs of the shown labels, each with its mean shown probability as confidence."""
    probability = np.asarray(probability, dtype=np.float64)
    return [
        Segment(s.video, s.label, s.start, s.end, float(probability[s.start : s.end].mean()))
        for s in runs(labels, none, video)
    ]


def temporal_iou(a: Segment, b: Segment) -> float:
    inter = max(0, min(a.end, b.end) - max(a.start, b.start))
    union = (a.end - a.start) + (b.end - b.start) - inter
    return inter / union if union else 0.0


def match(predictions: Sequence[Segment], truths: Sequence[Segment], iou: float) -> list[bool]:
    """For each prediction in decreasing confidence: True when it takes a so-far unmatched
    ground-truth instance of its class and video with IoU >= ``iou`` (the best such)."""
    taken: set[int] = set()
    hits: list[bool] = []
    for p in predictions:
        best, best_iou = None, iou
        for index, t in enumerate(truths):
            if index in taken or t.video != p.video or t.label != p.label:
                continue
            overlap = temporal_iou(p, t)
            if overlap >= best_iou:
                best, best_iou = index, overlap
        if best is not None:
            taken.add(best)
        hits.append(best is not None)
    return hits


def average_precision(hits: Sequence[bool], positives: int) -> float:
    """All-point interpolated AP of ranked hits against ``positives`` instances."""
    if positives == 0:
        return float("nan")
    if not hits:
        return 0.0
    tp = np.cumsum(hits, dtype=np.float64)
    precision = tp / np.arange(1, len(hits) + 1)
    recall = tp / positives
    # precision made monotone from the right, summed over the steps in recall
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.diff(np.concatenate([[0.0], recall]))
    return float((envelope * steps).sum())


def detection_scores(
    predictions: Sequence[Segment], truths: Sequence[Segment], classes: int, iou: float = 0.5
) -> dict[str, object]:
    """Per-class AP, mAP over classes that have instances, and F1 at temporal IoU ``iou``."""
    per_class: dict[int, float] = {}
    matched = 0
    for label in range(classes):
        mine = sorted((p for p in predictions if p.label == label), key=lambda p: -p.confidence)
        theirs = [t for t in truths if t.label == label]
        hits = match(mine, theirs, iou)
        matched += sum(hits)
        if theirs:
            per_class[label] = average_precision(hits, len(theirs))
    precision = matched / len(predictions) if predictions else 0.0
    recall = matched / len(truths) if truths else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "map": float(np.mean(list(per_class.values()))) if per_class else float("nan"),
        "ap_per_class": per_class,
        "precision": precision,
        "recall": recall,
        "f1": f1,
    }


def frame_scores(
    truth: NDArray[np.integer], predicted: NDArray[np.integer], classes: int
) -> dict[str, float]:
    """Per-frame accuracy and macro F1 over the classes present in the truth or prediction."""
    truth, predicted = np.asarray(truth), np.asarray(predicted)
    f1s = []
    for label in range(classes):
        t, p = truth == label, predicted == label
        if not t.any() and not p.any():
            continue
        tp = float((t & p).sum())
        f1s.append(2 * tp / (t.sum() + p.sum()))
    return {
        "accuracy": float((truth == predicted).mean()) if truth.size else float("nan"),
        "macro_f1": float(np.mean(f1s)) if f1s else float("nan"),
    }


def start_latencies(
    truths: Sequence[Segment], shown: Sequence[NDArray[np.integer]], fps: float
) -> list[float | None]:
    """For each instance: seconds until its label is first shown inside it; None if never."""
    out: list[float | None] = []
    for t in truths:
        inside = np.flatnonzero(np.asarray(shown[t.video][t.start : t.end]) == t.label)
        out.append(float(inside[0]) / fps if inside.size else None)
    return out


def false_alarms(predictions: Sequence[Segment], truths: Sequence[Segment]) -> int:
    """Predicted segments that overlap no ground-truth instance of their class and video."""
    count = 0
    for p in predictions:
        if not any(
            t.video == p.video and t.label == p.label and min(p.end, t.end) > max(p.start, t.start)
            for t in truths
        ):
            count += 1
    return count


def stream_scores(
    truth: Sequence[NDArray[np.integer]],
    shown: Sequence[NDArray[np.integer]],
    probability: Sequence[NDArray[np.floating]],
    none: int,
    fps: float,
    iou: float = 0.5,
    known: Sequence[NDArray[np.integer]] | None = None,
) -> dict[str, float]:
    """Every score of the module for a set of videos (truth and shown per-frame labels).

    ``known``: per-frame labels as a client learnt them, when that is later than ``shown``
    says (action events are decided ``event_min_s`` after the start they report); latency is
    measured on them."""
    classes = none + 1
    truths = [s for v, labels in enumerate(truth) for s in runs(labels, none, v)]
    predictions = [
        s for v, (labels, p) in enumerate(zip(shown, probability, strict=True))
        for s in predicted_segments(labels, p, none, v)
    ]  # fmt: skip
    detection = detection_scores(predictions, truths, none, iou)
    frames = frame_scores(np.concatenate(truth), np.concatenate(shown), classes)
    latencies = start_latencies(truths, shown if known is None else known, fps)
    found = [x for x in latencies if x is not None]
    background_min = float(sum(int((t == none).sum()) for t in truth)) / fps / 60.0
    alarms = false_alarms(predictions, truths)
    return {
        "map_iou50": float(detection["map"]),  # type: ignore[arg-type]
        "f1_iou50": float(detection["f1"]),  # type: ignore[arg-type]
        "frame_accuracy": frames["accuracy"],
        "frame_macro_f1": frames["macro_f1"],
        "latency_median_s": float(np.median(found)) if found else float("nan"),
        "latency_p90_s": float(np.percentile(found, 90)) if found else float("nan"),
        "missed_share": 1.0 - len(found) / len(latencies) if latencies else float("nan"),
        "false_alarms": float(alarms),
        "background_minutes": background_min,
        "false_alarms_per_min": alarms / background_min if background_min else float("nan"),
        "instances": float(len(truths)),
        "predicted_segments": float(len(predictions)),
    }
