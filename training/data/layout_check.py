"""Does the declared joint order look right? A check of recorded clips against their layout.

Bones are rigid: in clips recorded in the declared order, the distance between a joint and its
parent barely changes over a clip, and a left limb's bone is as long as the right one's. When
the joints are in another order, some "bones" join joints that move apart and together (a hand
and a knee) and some left/right pairs are not limbs of one length. The check measures both on a
sample of clips and names the joints of the bones that fail, so a folder declared as ``ucla20``
but written in another order is caught at load, not after a worse training run.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from skeleton.layouts import AXES, Layout, get_layout

log = logging.getLogger(__name__)

# The thresholds keep every real dataset in ../shared/data quiet with a margin (Kinect v1's
# jitter on short bones is large: NW-UCLA's noisiest single clips reach a spread of about 0.4)
# while joints in another order give spreads and ratios well beyond them.
#: A bone whose length varies more than this (median over clips of the frame-to-frame spread,
#: robust: median absolute deviation / median length) is not rigid.
MAX_LENGTH_SPREAD = 0.5
#: A left/right pair of bones whose median lengths differ by more than this factor.
MAX_SIDE_RATIO = 2.0
#: Clips checked (evenly spaced over the dataset): enough for the medians, cheap on NTU.
SAMPLE_CLIPS = 48
#: Bones shorter than this (metres, median) are too short to measure with Kinect noise.
MIN_BONE_M = 0.12


@dataclass(frozen=True)
class LayoutFinding:
    """Bones of ``layout`` that do not behave like bones in the clips checked."""

    layout: str
    unsteady: tuple[tuple[str, str, float], ...]  # (joint, parent, length spread)
    asymmetric: tuple[tuple[str, str, float], ...]  # (left joint, right joint, length ratio)
    # the trunk-and-head joints are not above the leg joints in the layout's up direction
    upside_down: tuple[str, ...] = ()

    @property
    def suspect_joints(self) -> list[str]:
        names: list[str] = []
        for a, b, _ in (*self.unsteady, *self.asymmetric):
            names += [n for n in (a, b) if n not in names]
        return names + [n for n in self.upside_down if n not in names]

    @property
    def ok(self) -> bool:
        return not self.unsteady and not self.asymmetric and not self.upside_down

    def message(self, where: str) -> str:
        parts = [f"{a}-{b} length varies by {spread:.0%}" for a, b, spread in self.unsteady] + [
            f"{a} vs {b} bone lengths differ x{ratio:.1f}" for a, b, ratio in self.asymmetric
        ]
        if self.upside_down:
            parts.append("the trunk and head joints are not above the leg joints")
        return (
            f"{where}: the joints do not look like {self.layout} in that order (suspect joints: "
            f"{', '.join(self.suspect_joints)}; {'; '.join(parts)}). Check that the clips' joint "
            "order is the layout's (README: Joint layouts)"
        )


def _mirror(name: str) -> str:
    for a, b in (("left", "right"), ("Left", "Right"), ("LEFT", "RIGHT")):
        if a in name:
            return name.replace(a, b)
        if b in name:
            return name.replace(b, a)
    return name


def _bone_lengths(clip: NDArray[np.floating], layout: Layout) -> NDArray[np.float64]:
    """(frames, joints) bone lengths of each person's valid frames (NaN for the root)."""
    rows = []
    parents = np.array(layout.parents)
    child = np.flatnonzero(parents >= 0)
    for person in clip:
        valid = person.any(axis=(1, 2))
        frames = person[valid].astype(np.float64)
        if len(frames) < 2:
            continue
        length = np.full((len(frames), layout.num_joints), np.nan)
        length[:, child] = np.linalg.norm(frames[:, child] - frames[:, parents[child]], axis=-1)
        rows.append(length)
    return np.concatenate(rows) if rows else np.empty((0, layout.num_joints))


def _trunk_height(clip: NDArray[np.floating], layout: Layout) -> float | None:
    """Median over valid frames of the trunk-and-head joints' height above the leg joints,
    in the Kinect frame (y up)."""
    up = AXES[layout.axes][1]  # the layout's coordinates -> Kinect's y
    trunk = list(layout.parts[0])
    legs = list(layout.parts[3]) + list(layout.parts[4])
    heights = []
    for person in clip:
        valid = person.any(axis=(1, 2))
        if valid.sum() < 2:
            continue
        y = person[valid].astype(np.float64) @ up
        heights.append(np.median(y[:, trunk].mean(axis=1) - y[:, legs].mean(axis=1)))
    return float(np.median(heights)) if heights else None


def check_layout(clips: Sequence[NDArray[np.floating]], layout_name: str) -> LayoutFinding:
    """Check clips ``(M, T, V, 3)`` recorded in ``layout_name``'s joint order."""
    layout = get_layout(layout_name)
    if len(clips) > SAMPLE_CLIPS:
        picks = np.linspace(0, len(clips) - 1, SAMPLE_CLIPS).round().astype(int)
        clips = [clips[i] for i in picks]
    spreads, medians, heights = [], [], []
    for clip in clips:
        height = _trunk_height(np.asarray(clip), layout)
        if height is not None:
            heights.append(height)
        length = _bone_lengths(np.asarray(clip), layout)
        if len(length) < 2:
            continue
        median = np.median(length, axis=0)
        mad = np.median(np.abs(length - median), axis=0)
        spreads.append(mad / np.maximum(median, 1e-9))
        medians.append(median)
    if not spreads:
        return LayoutFinding(layout.name, (), ())
    spread = np.median(np.stack(spreads), axis=0)
    median = np.median(np.stack(medians), axis=0)
    names = layout.joints
    unsteady = tuple(
        (names[j], names[layout.parents[j]], float(spread[j]))
        for j in range(layout.num_joints)
        if layout.parents[j] >= 0 and median[j] >= MIN_BONE_M and spread[j] > MAX_LENGTH_SPREAD
    )
    index = {name: i for i, name in enumerate(names)}
    asymmetric = []
    for j, name in enumerate(names):
        other = index.get(_mirror(name))
        if other is None or other <= j or layout.parents[j] < 0 or layout.parents[other] < 0:
            continue
        a, b = median[j], median[other]
        if max(a, b) < MIN_BONE_M:
            continue
        ratio = float(max(a, b) / max(min(a, b), 1e-9))
        if ratio > MAX_SIDE_RATIO:
            asymmetric.append((name, names[other], ratio))
    upside_down: tuple[str, ...] = ()
    if heights and np.median(heights) <= 0:
        upside_down = tuple(names[j] for j in layout.parts[0])
    return LayoutFinding(layout.name, unsteady, tuple(asymmetric), upside_down)


def warn_if_misordered(
    clips: Sequence[NDArray[np.floating]], layout_name: str, where: str
) -> LayoutFinding:
    """Log a warning naming the suspect joints when the clips do not fit the layout."""
    finding = check_layout(clips, layout_name)
    if not finding.ok:
        log.warning("%s", finding.message(where))
    return finding
