"""The standard NTU RGB+D preprocessing of SGN/CTR-GCN (method.md section 1a): denoising and
body selection, the two actors, centring; and one ``.skeleton`` file read through it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from training.data.errors import CorruptSampleError, EmptySequenceError
from training.data.ntu_skeleton import NTU_JOINTS, RawBody, RawSkeleton, read_skeleton_file

# The thresholds of the public denoising (SGN's get_raw_denoised_data.py).
NOISE_LENGTH_FRAMES = 11
NOISE_SPREAD_RATIO = 0.8
NOISE_SPREAD_SHARE = 0.69754
CENTRE_JOINT = 1  # SpineMid, joint 2 in NTU's 1-based numbering


def body_motion(joints: NDArray[np.float32]) -> float:
    """Sum over x, y, z of the variance of all joint positions (all frames and joints)."""
    return float(np.sum(np.var(joints.reshape(-1, 3), axis=0)))


def noisy_frames(joints: NDArray[np.float32]) -> NDArray[np.bool_]:
    """Frames whose x-range exceeds 0.8 x their y-range over the 25 joints."""
    x_range = joints[:, :, 0].max(axis=1) - joints[:, :, 0].min(axis=1)
    y_range = joints[:, :, 1].max(axis=1) - joints[:, :, 1].min(axis=1)
    # the public code compares float32 ranges in float64 (a NumPy 1 scalar times a Python float)
    return np.asarray(x_range.astype(np.float64) > NOISE_SPREAD_RATIO * y_range.astype(np.float64))


def select_bodies(raw: RawSkeleton) -> list[RawBody]:
    """Denoise a file with several bodies; the survivors, largest motion first (rule 3)."""
    motion = {bid: body_motion(body.joints) for bid, body in raw.bodies.items()}
    bodies = {bid: b for bid, b in raw.bodies.items() if b.length > NOISE_LENGTH_FRAMES}
    if not bodies:
        raise EmptySequenceError(
            f"{raw.name}.skeleton",
            f"no body is seen in more than {NOISE_LENGTH_FRAMES} frames",
        )
    if len(bodies) > 1:
        for bid in list(bodies):
            if len(bodies) == 1:
                break
            noisy = noisy_frames(bodies[bid].joints)
            if not noisy.any():
                continue
            if noisy.sum() / bodies[bid].length >= NOISE_SPREAD_SHARE:
                del bodies[bid]
            else:
                motion[bid] = min(motion[bid], body_motion(bodies[bid].joints[~noisy]))
    # a stable sort, so equal motions keep the order of first appearance as in the public code
    return sorted(bodies.values(), key=lambda b: motion[b.body_id], reverse=True)


def assemble_actors(raw: RawSkeleton) -> NDArray[np.float32]:
    """Rules 1-3: ``(T, persons, 25, 3)`` with persons 1 (one body) or 2, before centring."""
    if len(raw.bodies) == 1:
        (body,) = raw.bodies.values()
        out = np.zeros((raw.num_frames, 1, NTU_JOINTS, 3), dtype=np.float32)
        out[body.first_frame : body.last_frame + 1, 0] = body.joints
        return out
    survivors = select_bodies(raw)
    persons = 1 if len(survivors) == 1 else 2
    out = np.zeros((raw.num_frames, persons, NTU_JOINTS, 3), dtype=np.float32)
    actor1 = survivors[0]
    start1, end1 = actor1.first_frame, actor1.last_frame
    out[start1 : end1 + 1, 0] = actor1.joints
    start2, end2 = 0, 0  # the public code starts actor 2 with the interval [0, 0]
    for body in survivors[1:]:
        start, end = body.first_frame, body.last_frame
        # "no overlap" as the public code tests it: touching intervals count as disjoint
        if min(end1, end) - max(start1, start) <= 0:
            out[start : end + 1, 0] = body.joints
            start1, end1 = min(start, start1), max(end, end1)
        elif min(end2, end) - max(start2, start) <= 0:
            out[start : end + 1, 1] = body.joints
            start2, end2 = min(start, start2), max(end, end2)
    present = (out != 0).any(axis=(1, 2, 3))
    if not present.any():
        raise EmptySequenceError(f"{raw.name}.skeleton", "every joint of every body is zero")
    return np.asarray(out[present])


def centre_actors(joints: NDArray[np.float32]) -> NDArray[np.float32]:
    """Rule 4: subtract actor 1's SpineMid in its first non-zero frame, re-zero absent actors."""
    out = joints.copy()
    actor1_present = (out[:, 0] != 0).any(axis=(1, 2))
    if not actor1_present.any():
        raise EmptySequenceError("sequence", "actor 1 is all zeros")
    origin = out[int(np.argmax(actor1_present)), 0, CENTRE_JOINT].copy()
    if out.shape[1] == 1:
        return np.asarray(out - origin)  # a single actor: the public code re-zeroes nothing
    absent = ~(out != 0).any(axis=(2, 3))  # (T, 2), decided before the shift
    out -= origin
    out[absent] = 0.0
    return out


def preprocess(raw: RawSkeleton) -> NDArray[np.float32]:
    """The standard pipeline for one file: ``(T, 2, 25, 3)``, actor 2 zeros if there is none."""
    actors = centre_actors(assemble_actors(raw))
    if actors.shape[1] == 1:
        actors = np.concatenate([actors, np.zeros_like(actors)], axis=1)
    return actors


def read_ntu_sample(path: Path) -> NDArray[np.float32]:
    """Parse and preprocess one ``.skeleton`` file into ``(T, 150)`` (2 actors x 25 x xyz)."""
    raw = read_skeleton_file(path)
    try:
        actors = preprocess(raw)
    except CorruptSampleError as err:
        raise type(err)(path, err.problem, line=err.line, field=err.field) from None
    return actors.reshape(actors.shape[0], -1)
