"""A "none" class for a model trained on trimmed clips: real motion of other datasets that is
none of its actions, mapped onto its joints (``none_data:`` in a classification recipe).

Sources are the background of untrimmed recordings (frames in no instance, cut into clips of
``clip_s`` seconds), or chosen classes of trimmed datasets (only classes that match none of
the model's own), and still poses (one frame of such a clip held for ``clip_s`` seconds: a
person standing in view doing nothing). Only training splits are read. Background clips that
are not drawn for training are kept apart: the decision rule is calibrated on them, so its
false-alarm rate is measured on none windows the model never trained on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import Field

from skeleton.layouts import convert
from training.data.streams import background_starts
from training.data.types import UNKNOWN_SUBJECT, Sample
from training.recipes.common import SourceConfig

CALIBRATION_CLIPS = 400  # most held-out background clips kept for calibration per source


class NoneSource(SourceConfig):
    """Clips of another dataset that show none of the model's classes."""

    kind: Literal["background", "classes"] = "background"
    classes: list[str] = []  # kind classes: the dataset's classes to take
    clip_s: float = Field(3.0, gt=0)  # background and still clips: seconds each
    count: int = Field(200, ge=0)  # clips drawn for training (a seeded random choice)
    still: int = Field(0, ge=0)  # still poses made from further clips of this source
    persons: int = Field(1, ge=1)  # persons kept (the first ones)


@dataclass
class NoneClips:
    train: list[Sample]
    calibration: list[Sample]


def _background(source: NoneSource, fps: float) -> tuple[list[Sample], str]:
    from training.data.registry import load_streams

    data = load_streams(source.dataset, source.root, source.benchmark, **source.options)
    length = max(1, round(source.clip_s * fps))
    clips = [
        Sample(f"{stream.name}@{start}", stream.data[:, start : start + length], -1, stream.subject)
        for stream in data.train
        for start in background_starts(stream, length)
    ]
    return clips, data.layout


def _classes(source: NoneSource) -> tuple[list[Sample], str]:
    from training.data.registry import load_dataset

    data = load_dataset(source.dataset, source.root, source.benchmark, **source.options)
    unknown = sorted(set(source.classes) - set(data.classes))
    if unknown:
        raise ValueError(f"none_data {source.dataset}: no classes {unknown} ({data.classes})")
    wanted = {data.classes.index(name) for name in source.classes}
    return [s for s in data.train if s.label in wanted], data.layout


def still_pose(sample: Sample, frames: int, rng: np.random.Generator) -> Sample:
    """One frame of ``sample`` (where its first person shows) held for ``frames`` frames."""
    shown = np.flatnonzero((sample.data[0] != 0).any(axis=(1, 2)))
    frame = int(rng.choice(shown))
    held = np.repeat(sample.data[:, frame : frame + 1], frames, axis=1)
    return Sample(f"{sample.name}#still{frame}", held, -1, sample.subject)


def none_clips(
    sources: list[NoneSource], layout: str, persons: int, fps: float, label: int, seed: int
) -> NoneClips:
    """The none clips of ``sources`` on ``layout`` with ``persons`` persons, labelled
    ``label``; the background clips not drawn for training become calibration clips."""
    rng = np.random.default_rng(seed)
    train: list[Sample] = []
    calibration: list[Sample] = []
    for source in sources:
        pool, source_layout = (
            _background(source, fps) if source.kind == "background" else _classes(source)
        )
        if not pool:
            raise ValueError(f"none_data {source.dataset}: no clip to take")
        order = rng.permutation(len(pool))
        drawn = [pool[i] for i in order[: source.count]]
        rest = [pool[i] for i in order[source.count :]]
        frames = max(1, round(source.clip_s * fps))
        stills = [still_pose(s, frames, rng) for s in (rest or drawn)[: source.still]]
        held = rest[source.still :][:CALIBRATION_CLIPS] if source.kind == "background" else []
        for group, out in ((drawn + stills, train), (held, calibration)):
            for s in group:
                data = convert(s.data[: min(source.persons, persons)], source_layout, layout)
                out.append(Sample(f"{source.dataset}/{s.name}", data, label, UNKNOWN_SUBJECT))
    return NoneClips(train, calibration)
