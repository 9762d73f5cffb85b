"""The streams on which the streaming benchmark counts the gesture models' false alarms on
motion outside their vocabulary: real NW-UCLA clips the default recipe never trained on."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmarks.streaming import (
    FPS,
    NONE_ACTIVITIES,
    NONE_GAP_S,
    STILL_S,
    none_motion_streams,
)
from training.config_io import load_config
from training.data.registry import load_dataset
from training.recipes.classify import ClassifyRecipe


def test_none_motion_streams_are_held_out_nw_ucla_clips_of_the_recipes_none_activities(
    data_root: Path,
) -> None:
    recipe = load_config("utd_gesture_streams", ClassifyRecipe)
    (ucla_source,) = [s for s in recipe.none_data if s.dataset == "nw-ucla"]
    # the benchmark's activities are the ones the default recipe learns as none ...
    assert tuple(ucla_source.classes) == NONE_ACTIVITIES
    # ... from NW-UCLA's training views; the benchmark plays its test view (3) only
    ucla = load_dataset("nw-ucla", benchmark=ucla_source.benchmark)
    wanted = {ucla.classes.index(name) for name in NONE_ACTIVITIES}
    trained = {s.name for s in ucla.train if s.label in wanted}
    held_out = [s for s in ucla.test if s.label in wanted]
    assert trained and all(name.endswith(("_v01", "_v02")) for name in trained)

    streams = none_motion_streams()
    gap = round(NONE_GAP_S * FPS)
    activities, stills = streams["activities"], streams["still poses"]
    assert len(activities) == len(stills) == len(held_out)
    for stream, clip in zip(activities, held_out, strict=True):
        # one person on utd20's 20 joints: the clip, whole, between two background gaps
        assert stream.shape == (1, clip.data.shape[1] + 2 * gap, 20, 3)
        assert (stream[0, :gap] != 0).any(axis=(1, 2)).all()  # someone in view before it
    for stream in stills:
        held = stream[0, gap:-gap]
        assert held.shape[0] == round(STILL_S * FPS)
        assert np.array_equal(held, np.broadcast_to(held[:1], held.shape))
        assert not np.array_equal(stream[0, gap - 1], held[0])  # a pose, not the background
