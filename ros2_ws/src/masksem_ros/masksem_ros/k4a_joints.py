"""Kinect v1/v2 joints placed as Azure Kinect (k4a32) joints, so that a recorded clip can stand
in for the Azure Kinect / Orbbec body tracker (replays, tests). Needs numpy only."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from skeleton.layouts import K4A32, LayoutError, axes_matrix, get_layout

K4A_LAYOUT = "k4a32"

# k4a32 joints with no twin in the Kinect v1 layouts, as mixes of ntu25 joints. The clavicles
# both sit on SpineShoulder, so k4a32's clavicle midpoint gives SpineShoulder back exactly; the
# face, hand-tip and thumb joints sit on the head and hands (a model in a Kinect v1 layout never
# reads them; an ntu25 model sees its hand tips and thumbs on the hands).
_K4A_FALLBACKS: dict[int, dict[int, float]] = {
    2: {1: 0.5, 20: 0.5},  # SPINE_CHEST between SpineMid and SpineShoulder
    3: {20: 0.5, 3: 0.5},  # NECK between SpineShoulder and Head
    4: {20: 1.0},  # CLAVICLE_LEFT
    9: {7: 1.0},  # HANDTIP_LEFT at HandLeft
    10: {7: 1.0},  # THUMB_LEFT
    11: {20: 1.0},  # CLAVICLE_RIGHT
    16: {11: 1.0},  # HANDTIP_RIGHT at HandRight
    17: {11: 1.0},  # THUMB_RIGHT
    **{face: {3: 1.0} for face in range(27, 32)},  # NOSE, EYES, EARS at Head
}


def lift_to_k4a32(x: NDArray[np.floating], src: str) -> NDArray[np.float32]:
    """Joints ``(..., V_src, 3)`` of ``src`` as k4a32 joints in k4a axes.

    Every k4a32 joint with a twin in ``src`` is that joint; the rest are placed as in
    ``_K4A_FALLBACKS``. ``convert(lift_to_k4a32(x, src), "k4a32", src)`` gives ``x`` back.
    """
    layout = get_layout(src)
    rows = layout.ntu_rows()
    weights = np.zeros((K4A32.num_joints, layout.num_joints))
    for joint, twin in enumerate(K4A32.ntu_twin):
        mix = {twin: 1.0} if twin is not None and twin in rows else _K4A_FALLBACKS.get(joint, {})
        if not mix or any(ntu not in rows for ntu in mix):
            raise LayoutError(f"cannot place k4a32 joint {K4A32.joints[joint]} from {src} joints")
        weights[joint] = sum(w * rows[ntu] for ntu, w in mix.items())
    y = np.einsum("kv,...vc,ec->...ke", weights, x, axes_matrix(src, K4A_LAYOUT))
    return np.ascontiguousarray(y, dtype=np.float32)
