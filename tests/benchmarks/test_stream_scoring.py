"""The streaming scorer against hand-worked cases."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.stream_scoring import (
    Segment,
    average_precision,
    detection_scores,
    runs,
    stream_scores,
    temporal_iou,
)

NONE = 3  # classes 0, 1, 2 and none


def video() -> np.ndarray:
    """Two instances: class 0 on frames [30, 90), class 2 on [150, 210) of 300."""
    truth = np.full(300, NONE)
    truth[30:90] = 0
    truth[150:210] = 2
    return truth


def test_a_perfect_prediction_scores_one() -> None:
    truth = video()
    scores = stream_scores([truth], [truth.copy()], [np.ones(300)], NONE, fps=30.0)
    for key in ("map_iou50", "f1_iou50", "frame_accuracy", "frame_macro_f1"):
        assert scores[key] == 1.0
    assert scores["latency_median_s"] == 0.0 and scores["missed_share"] == 0.0
    assert scores["false_alarms_per_min"] == 0.0
    assert scores["background_minutes"] == pytest.approx(180 / 30 / 60)


def test_a_shifted_prediction_scores_what_iou_says() -> None:
    truth = video()
    # shifted 15 frames late: IoU 45 / 75 = 0.6 >= 0.5, each instance found 0.5 s late
    late = np.full(300, NONE)
    late[45:105] = 0
    late[165:225] = 2
    assert temporal_iou(Segment(0, 0, 30, 90), Segment(0, 0, 45, 105)) == pytest.approx(0.6)
    scores = stream_scores([truth], [late], [np.ones(300)], NONE, fps=30.0)
    assert scores["map_iou50"] == 1.0 and scores["f1_iou50"] == 1.0
    assert scores["latency_median_s"] == pytest.approx(0.5)
    assert scores["frame_accuracy"] == pytest.approx(240 / 300)
    # shifted 30 frames: IoU 30 / 90 = 1/3 < 0.5: no instance is detected, though each is
    # shown 1 s after it starts, and the segments overlap their instances (no false alarm)
    later = np.full(300, NONE)
    later[60:120] = 0
    later[180:240] = 2
    scores = stream_scores([truth], [later], [np.ones(300)], NONE, fps=30.0)
    assert scores["map_iou50"] == 0.0 and scores["f1_iou50"] == 0.0
    assert scores["latency_median_s"] == pytest.approx(1.0) and scores["false_alarms"] == 0


def test_false_alarms_and_misses() -> None:
    truth = video()
    shown = truth.copy()
    shown[150:210] = NONE  # instance of class 2 never shown
    shown[250:280] = 1  # an action during background
    scores = stream_scores([truth], [shown], [np.ones(300)], NONE, fps=30.0)
    assert scores["missed_share"] == 0.5
    assert scores["false_alarms"] == 1
    assert scores["false_alarms_per_min"] == pytest.approx(1 / (180 / 30 / 60))
    assert scores["map_iou50"] == pytest.approx(0.5)  # class 0 AP 1, class 2 AP 0


def test_average_precision_ranks_by_confidence() -> None:
    truths = [Segment(0, 0, 0, 10), Segment(1, 0, 0, 10)]
    predictions = [
        Segment(0, 0, 0, 10, confidence=0.9),
        Segment(0, 0, 50, 60, confidence=0.8),  # a false positive ranked second
        Segment(1, 0, 0, 10, confidence=0.7),
    ]
    result = detection_scores(predictions, truths, classes=1)
    # precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1: AP = 0.5 * 1 + 0.5 * 2/3
    assert result["map"] == pytest.approx(0.5 + 1 / 3)
    assert average_precision([True, False, True], 2) == pytest.approx(0.5 + 1 / 3)
    assert runs(np.array([3, 0, 0, 3, 1]), 3) == [Segment(0, 0, 1, 3), Segment(0, 1, 4, 5)]
