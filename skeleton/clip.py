"""Pure functions on skeleton clips: the one preprocessing path of training and serving.

A clip is a float array ``(M, T, V, 3)``: persons, frames, joints, xyz. An absent person is all
zeros; a frame is *valid* when any coordinate of any person in it is non-zero.

The crop-and-resize functions reproduce the public MAMP/CTR-GCN ``valid_crop_resize`` exactly:
the crop arithmetic, and the resize in time as bilinear interpolation with
``align_corners=False`` (half-pixel centres, source index clamped at 0).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

Clip = NDArray[np.float32]


class ClipError(ValueError):
    """A clip that cannot be used: wrong shape, no valid frame, or non-finite values."""


class ClipShapeError(ClipError):
    pass


class EmptyClipError(ClipError):
    pass


class NonFiniteClipError(ClipError):
    def __init__(self, message: str, *, person: int, frame: int, joint: int) -> None:
        super().__init__(message)
        self.person, self.frame, self.joint = person, frame, joint


def check_clip(x: NDArray[np.floating], *, where: str = "clip") -> Clip:
    """Return ``x`` as float32 ``(M, T, V, 3)``; reject other shapes and NaN or inf values."""
    arr = np.asarray(x)
    if arr.ndim != 4 or arr.shape[-1] != 3 or arr.shape[0] < 1:
        expected = "(persons, frames, joints, 3)"
        raise ClipShapeError(f"{where}: expected shape {expected}, got {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number):
        raise ClipShapeError(f"{where}: coordinates must be numbers, got dtype {arr.dtype}")
    finite = np.isfinite(arr)
    if not finite.all():
        m, t, v, _ = (int(i) for i in np.argwhere(~finite)[0])
        bad = arr[m, t, v]
        raise NonFiniteClipError(
            f"{where}: non-finite coordinate {bad.tolist()} at person {m}, frame {t}, joint {v}",
            person=m,
            frame=t,
            joint=v,
        )
    return arr.astype(np.float32, copy=False)


def valid_frame_mask(x: Clip) -> NDArray[np.bool_]:
    """``(T,)`` True where any coordinate of any person is non-zero."""
    return np.asarray((x != 0).any(axis=(0, 2, 3)))


def valid_frames(x: Clip, *, where: str = "clip") -> Clip:
    """The valid frames of ``x`` in order; raises :class:`EmptyClipError` if there are none."""
    mask = valid_frame_mask(x)
    if not mask.any():
        raise EmptyClipError(f"{where}: every frame is all zeros ({x.shape[1]} frames)")
    return x if mask.all() else x[:, mask]


def resize_time(x: Clip, frames: int) -> Clip:
    """Linear resize along time to ``frames`` (bilinear, ``align_corners=False``)."""
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    length = x.shape[1]
    if length == frames:
        return x.astype(np.float32, copy=True)
    src = (np.arange(frames, dtype=np.float64) + 0.5) * (length / frames) - 0.5
    src = np.maximum(src, 0.0)
    lo = np.minimum(np.floor(src).astype(np.int64), length - 1)
    hi = np.minimum(lo + 1, length - 1)
    w = (src - lo).astype(np.float32)[None, :, None, None]
    out: Clip = (x[:, lo] * (1.0 - w) + x[:, hi] * w).astype(np.float32, copy=False)
    return out


def centre_crop_resize(x: Clip, frames: int, *, ratio: float = 0.95) -> Clip:
    """Test-time view: the centred ``ratio`` of the frames of ``x``, resized to ``frames``."""
    length = x.shape[1]
    bias = int((1.0 - ratio) * length / 2)
    return resize_time(x[:, bias : length - bias], frames)


def random_crop_resize(
    x: Clip,
    frames: int,
    rng: np.random.Generator,
    *,
    ratio_range: tuple[float, float] = (0.5, 1.0),
    min_frames: int = 64,
) -> Clip:
    """Training view: a random contiguous ``p`` share of the frames, ``p ~ U(ratio_range)``,
    at least ``min_frames`` long (at most all of them), resized to ``frames``."""
    length = x.shape[1]
    lo, hi = ratio_range
    p = rng.random() * (hi - lo) + lo
    cropped = min(max(int(np.floor(length * p)), min_frames), length)
    start = int(rng.integers(0, length - cropped + 1))
    return resize_time(x[:, start : start + cropped], frames)


def rotation_matrix(ax: float, ay: float, az: float) -> NDArray[np.float32]:
    """``Rz @ Ry @ Rx`` with the sign conventions of the public MAMP ``random_rot``."""
    cx, sx, cy, sy, cz, sz = np.cos(ax), np.sin(ax), np.cos(ay), np.sin(ay), np.cos(az), np.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, sx], [0, -sx, cx]])
    ry = np.array([[cy, 0, -sy], [0, 1, 0], [sy, 0, cy]])
    rz = np.array([[cz, sz, 0], [-sz, cz, 0], [0, 0, 1]])
    return np.asarray(rz @ ry @ rx, dtype=np.float32)


def rotate(x: Clip, matrix: NDArray[np.floating]) -> Clip:
    """Apply one 3x3 linear map (a rotation, a shear) to every point of the clip."""
    return np.asarray(x @ np.asarray(matrix, dtype=np.float32).T, dtype=np.float32)


def random_rotation(x: Clip, rng: np.random.Generator, *, max_angle: float = 0.3) -> Clip:
    """Rotate the whole clip by angles drawn from U[-max_angle, max_angle] about x, y and z."""
    angles = rng.uniform(-max_angle, max_angle, size=3)
    return rotate(x, rotation_matrix(*angles))


def random_shear(x: Clip, rng: np.random.Generator, *, max_shear: float) -> Clip:
    """Apply ``I + S`` to every point, the six off-diagonal entries of ``S`` drawn from
    U[-max_shear, max_shear]: a random linear distortion of body proportions and posture (the
    shear augmentation of CrosSCLR and AimCLR) against over-fitting to a few people's builds.
    Linear, so absent (all-zero) joints stay zero."""
    matrix = np.eye(3) + rng.uniform(-max_shear, max_shear, size=(3, 3)) * (1.0 - np.eye(3))
    return rotate(x, matrix)


def centre_on_joint(x: Clip, joint: int) -> Clip:
    """Subtract ``joint`` of person 0 in its first non-zero frame from every present point."""
    present = (x != 0).any(axis=(2, 3))  # (M, T)
    if not present[0].any():
        raise EmptyClipError("cannot centre a clip whose first person never appears")
    first = int(np.argmax(present[0]))
    origin = x[0, first, joint]
    out: Clip = (x - origin).astype(np.float32, copy=False)
    out[~present] = 0.0
    return out


def normalise_scale(x: Clip, bone: tuple[int, int], *, where: str = "clip") -> Clip:
    """Divide every coordinate by the mean length of ``bone`` (two joint indices) of person 0
    over the frames where it shows both joints: body size and camera distance drop out.
    Translation-invariant, so it may come before or after centring."""
    a, b = x[0, :, bone[0]], x[0, :, bone[1]]
    shown = (a != 0).any(axis=-1) & (b != 0).any(axis=-1)
    lengths = np.linalg.norm(a[shown] - b[shown], axis=-1)
    if not lengths.size or float(lengths.mean()) <= 0.0:
        raise EmptyClipError(
            f"{where}: cannot normalise the scale: person 0 never shows joints {bone[0]} and "
            f"{bone[1]} apart"
        )
    out: Clip = (x / lengths.mean()).astype(np.float32)
    return out


def face_forward(x: Clip, pairs: tuple[tuple[int, int], ...], *, where: str = "clip") -> Clip:
    """Rotate the clip about the vertical (y) axis so that person 0's across-the-body direction
    (right joint minus left joint, summed over ``pairs`` and over the first quarter of
    the frames that show all of them) points along +x: in Kinect axes, the body then faces the
    sensor whatever angle the camera saw it from. One rotation for the whole clip, so turning
    during the clip is kept. Zeros (absent persons and joints) stay zeros."""
    left, right = ([pair[side] for pair in pairs] for side in (0, 1))
    joints = [j for pair in pairs for j in pair]
    frames = np.flatnonzero((x[0][:, joints] != 0).any(axis=-1).all(axis=-1))
    first = x[0, frames[: max(1, frames.size // 4)]]  # (k, V, 3); k = 0 when none shows them
    vx, _, vz = (first[:, right] - first[:, left]).sum(axis=(0, 1), dtype=np.float64)
    norm = float(np.hypot(vx, vz))
    if norm < 1e-6:
        raise EmptyClipError(
            f"{where}: cannot face the body forward: person 0 never shows joints {joints} "
            "apart across the body"
        )
    c, s = vx / norm, vz / norm
    return rotate(x, np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]]))


def fit_persons(x: Clip, persons: int) -> Clip:
    """Keep the first ``persons`` persons, adding all-zero persons where the clip has fewer."""
    m = x.shape[0]
    if m == persons:
        return x
    if m > persons:
        return x[:persons]
    pad = np.zeros((persons - m, *x.shape[1:]), dtype=np.float32)
    return np.concatenate([x, pad], axis=0)


@dataclass(frozen=True)
class WindowSpec:
    """How a clip becomes a model window; stored in the model card so serving matches training."""

    frames: int = 120
    persons: int = 2
    test_crop: float = 0.95
    train_crop: tuple[float, float] = (0.5, 1.0)
    min_crop_frames: int = 64
    max_rotation: float = 0.3
    max_shear: float = 0.0  # training only: random_shear's bound; 0 turns it off
    # Joint of person 0 (in its first present frame) moved to the origin; None keeps camera
    # coordinates (NTU's prepared files are already centred on SpineMid).
    centre_joint: int | None = None
    # Two joints (the layout's torso) whose mean length becomes 1, removing body size and camera
    # distance; None keeps metres (the papers' NTU and PKU-MMD pipelines do).
    scale_bone: tuple[int, int] | None = None
    # (left, right) joint pairs across the body (the layout's ``across``): the clip is turned
    # about the vertical axis so the body faces the sensor (face_forward), removing the camera's
    # angle to the person; None keeps the view as recorded.
    face_pairs: tuple[tuple[int, int], ...] | None = None

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> WindowSpec:
        """Read back ``dataclasses.asdict(spec)`` after a JSON round trip (lists -> tuples)."""
        fields = dict(raw)
        if "train_crop" in fields:
            lo, hi = fields["train_crop"]
            fields["train_crop"] = (float(lo), float(hi))
        if fields.get("scale_bone") is not None:
            first, second = fields["scale_bone"]
            fields["scale_bone"] = (int(first), int(second))
        if fields.get("face_pairs") is not None:
            fields["face_pairs"] = tuple((int(a), int(b)) for a, b in fields["face_pairs"])
        return cls(**fields)


def _placed(x: Clip, spec: WindowSpec, where: str) -> Clip:
    """Scale, origin, then facing: the part of the preprocessing that training and serving
    share."""
    if spec.scale_bone is not None:
        x = normalise_scale(x, spec.scale_bone, where=where)
    if spec.centre_joint is not None:
        x = centre_on_joint(x, spec.centre_joint)
    return x if spec.face_pairs is None else face_forward(x, spec.face_pairs, where=where)


def inference_window(x: NDArray[np.floating], spec: WindowSpec, *, where: str = "clip") -> Clip:
    """The test-time preprocessing: valid frames, scale, origin and facing, centred crop, resize,
    persons fitted."""
    clip = _placed(valid_frames(check_clip(x, where=where), where=where), spec, where)
    return fit_persons(centre_crop_resize(clip, spec.frames, ratio=spec.test_crop), spec.persons)


def training_window(
    x: NDArray[np.floating], spec: WindowSpec, rng: np.random.Generator, *, where: str = "clip"
) -> Clip:
    """The training augmentation: valid frames, scale, origin and facing, random crop, resize,
    random rotation, random shear."""
    clip = _placed(valid_frames(check_clip(x, where=where), where=where), spec, where)
    clip = random_crop_resize(
        clip, spec.frames, rng, ratio_range=spec.train_crop, min_frames=spec.min_crop_frames
    )
    if spec.max_rotation > 0:
        clip = random_rotation(clip, rng, max_angle=spec.max_rotation)
    if spec.max_shear > 0:
        clip = random_shear(clip, rng, max_shear=spec.max_shear)
    return fit_persons(clip, spec.persons)
