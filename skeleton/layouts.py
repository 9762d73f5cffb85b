"""Joint layouts (names, parents, five body parts, camera axes) and the maps between them.

Every layout names, for each of its joints, the Kinect v2 (ntu25) joint it stands for, and says
how to compute ntu25 joints from its own joints. A map ``src -> dst`` exists exactly when every
joint of ``dst`` has an ntu25 twin that ``src`` can compute; it is a ``(V_dst, V_src)`` weight
matrix, so a joint with no exact twin can be a mix (k4a32's two clavicles make ntu25's
SpineShoulder). Axes are converted separately: every layout declares its camera frame as a
matrix into the Kinect frame (y up, z along the view, x to the sensor's left).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

import numpy as np
from numpy.typing import NDArray

PART_NAMES = ("trunk", "left_arm", "right_arm", "left_leg", "right_leg")

#: Camera frames, each as the matrix that takes a point of that frame into the Kinect frame.
AXES: dict[str, NDArray[np.float64]] = {
    # Kinect v1/v2 camera space: metres, y up, z along the view, x to the sensor's left.
    "kinect": np.eye(3),
    # Azure Kinect / Orbbec depth-camera space: x right, y down, z forward.
    "k4a": np.diag([-1.0, -1.0, 1.0]),
}


class LayoutError(ValueError):
    """An unknown layout, or a map between layouts whose joints do not correspond."""


@dataclass(frozen=True)
class Layout:
    name: str
    joints: tuple[str, ...]
    parents: tuple[int, ...]  # -1 for the root
    parts: tuple[tuple[int, ...], ...]  # five tuples in PART_NAMES order
    root: int  # the joint clips are centred on
    # Two joints along the trunk, hip centre to shoulder centre where the layout has both: the
    # bone whose mean length sets the body's scale (skeleton.clip.normalise_scale).
    torso: tuple[int, int]
    # (left, right) joint pairs across the body, shoulders then hips: their right-minus-left
    # direction is where the body's right side points (skeleton.clip.face_forward).
    across: tuple[tuple[int, int], ...]
    axes: str  # key of AXES
    ntu_twin: tuple[int | None, ...]  # per joint: the ntu25 joint it is, or None
    # ntu25 joints computed as a mix of several own joints (for joints without a twin)
    ntu_mixes: dict[int, dict[int, float]] = field(default_factory=dict)

    @property
    def num_joints(self) -> int:
        return len(self.joints)

    def index(self, joint: str) -> int:
        try:
            return self.joints.index(joint)
        except ValueError:
            raise LayoutError(f"layout {self.name!r} has no joint {joint!r}") from None

    def part_of_joint(self) -> NDArray[np.int64]:
        """For each joint, the index of its body part (0..4)."""
        out = np.full(self.num_joints, -1, dtype=np.int64)
        for p, members in enumerate(self.parts):
            out[list(members)] = p
        return out

    def ntu_rows(self) -> dict[int, NDArray[np.float64]]:
        """The ntu25 joints this layout can compute, each as weights over its own joints."""
        rows: dict[int, NDArray[np.float64]] = {}
        for own, twin in enumerate(self.ntu_twin):
            if twin is not None:
                row = np.zeros(self.num_joints)
                row[own] = 1.0
                rows[twin] = row
        for ntu_joint, mix in self.ntu_mixes.items():
            row = np.zeros(self.num_joints)
            for own, weight in mix.items():
                row[own] = weight
            rows[ntu_joint] = row
        return rows


def _v1_limbs() -> tuple[str, ...]:
    return (
        "left_shoulder", "left_elbow", "left_wrist", "left_hand",
        "right_shoulder", "right_elbow", "right_wrist", "right_hand",
        "left_hip", "left_knee", "left_ankle", "left_foot",
        "right_hip", "right_knee", "right_ankle", "right_foot",
    )  # fmt: skip


_LIMB_PARTS_V1 = (
    (4, 5, 6, 7),
    (8, 9, 10, 11),
    (12, 13, 14, 15),
    (16, 17, 18, 19),
)

NTU25 = Layout(
    name="ntu25",
    joints=(
        "SpineBase",
        "SpineMid",
        "Neck",
        "Head",
        "ShoulderLeft",
        "ElbowLeft",
        "WristLeft",
        "HandLeft",
        "ShoulderRight",
        "ElbowRight",
        "WristRight",
        "HandRight",
        "HipLeft",
        "KneeLeft",
        "AnkleLeft",
        "FootLeft",
        "HipRight",
        "KneeRight",
        "AnkleRight",
        "FootRight",
        "SpineShoulder",
        "HandTipLeft",
        "ThumbLeft",
        "HandTipRight",
        "ThumbRight",
    ),  # fmt: skip
    parents=(
        -1,
        0,
        20,
        2,
        20,
        4,
        5,
        6,
        20,
        8,
        9,
        10,
        0,
        12,
        13,
        14,
        0,
        16,
        17,
        18,
        1,
        7,
        6,
        11,
        10,
    ),  # fmt: skip
    parts=((0, 1, 2, 3, 20), (4, 5, 6, 7, 21, 22), (8, 9, 10, 11, 23, 24), *_LIMB_PARTS_V1[2:]),
    root=1,  # SpineMid, the centre of the NTU preprocessing
    torso=(0, 20),  # SpineBase, SpineShoulder
    across=((4, 8), (12, 16)),  # ShoulderLeft/Right, HipLeft/Right
    axes="kinect",
    ntu_twin=tuple(range(25)),
)

UTD20 = Layout(
    name="utd20",
    joints=("head", "shoulder_center", "spine", "hip_center", *_v1_limbs()),
    parents=(1, 2, 3, -1, 1, 4, 5, 6, 1, 8, 9, 10, 3, 12, 13, 14, 3, 16, 17, 18),
    parts=((0, 1, 2, 3), *_LIMB_PARTS_V1),
    root=2,  # spine
    torso=(3, 1),  # hip_center, shoulder_center
    across=((4, 8), (12, 16)),  # left/right shoulder, left/right hip
    axes="kinect",
    ntu_twin=(3, 20, 1, 0, *range(4, 20)),
)

UCLA20 = Layout(
    name="ucla20",
    joints=(
        "HipCenter",
        "Spine",
        "ShoulderCenter",
        "Head",
        "ShoulderLeft",
        "ElbowLeft",
        "WristLeft",
        "HandLeft",
        "ShoulderRight",
        "ElbowRight",
        "WristRight",
        "HandRight",
        "HipLeft",
        "KneeLeft",
        "AnkleLeft",
        "FootLeft",
        "HipRight",
        "KneeRight",
        "AnkleRight",
        "FootRight",
    ),  # fmt: skip
    parents=(-1, 0, 1, 2, 2, 4, 5, 6, 2, 8, 9, 10, 0, 12, 13, 14, 0, 16, 17, 18),
    parts=((0, 1, 2, 3), *_LIMB_PARTS_V1),
    root=1,  # Spine
    torso=(0, 2),  # HipCenter, ShoulderCenter
    across=((4, 8), (12, 16)),  # ShoulderLeft/Right, HipLeft/Right
    axes="kinect",
    ntu_twin=(0, 1, 20, 3, *range(4, 20)),
)

SBU15 = Layout(
    name="sbu15",
    joints=(
        "head",
        "neck",
        "torso",
        "left_shoulder",
        "left_elbow",
        "left_hand",
        "right_shoulder",
        "right_elbow",
        "right_hand",
        "left_hip",
        "left_knee",
        "left_foot",
        "right_hip",
        "right_knee",
        "right_foot",
    ),  # fmt: skip
    parents=(1, 2, -1, 1, 3, 4, 1, 6, 7, 2, 9, 10, 2, 12, 13),
    parts=((0, 1, 2), (3, 4, 5), (6, 7, 8), (9, 10, 11), (12, 13, 14)),
    root=2,  # torso
    torso=(2, 1),  # torso (mid-spine), neck (between the shoulders): no hip centre in OpenNI
    across=((3, 6), (9, 12)),  # left/right shoulder, left/right hip
    axes="kinect",
    # OpenNI's neck sits between the shoulders (Kinect v2 SpineShoulder), its torso at mid-spine,
    # its hand and foot at Kinect v2's HandX and FootX.
    ntu_twin=(3, 20, 1, 4, 5, 7, 8, 9, 11, 12, 13, 15, 16, 17, 19),
)

K4A32 = Layout(
    name="k4a32",
    joints=(
        "PELVIS",
        "SPINE_NAVEL",
        "SPINE_CHEST",
        "NECK",
        "CLAVICLE_LEFT",
        "SHOULDER_LEFT",
        "ELBOW_LEFT",
        "WRIST_LEFT",
        "HAND_LEFT",
        "HANDTIP_LEFT",
        "THUMB_LEFT",
        "CLAVICLE_RIGHT",
        "SHOULDER_RIGHT",
        "ELBOW_RIGHT",
        "WRIST_RIGHT",
        "HAND_RIGHT",
        "HANDTIP_RIGHT",
        "THUMB_RIGHT",
        "HIP_LEFT",
        "KNEE_LEFT",
        "ANKLE_LEFT",
        "FOOT_LEFT",
        "HIP_RIGHT",
        "KNEE_RIGHT",
        "ANKLE_RIGHT",
        "FOOT_RIGHT",
        "HEAD",
        "NOSE",
        "EYE_LEFT",
        "EAR_LEFT",
        "EYE_RIGHT",
        "EAR_RIGHT",
    ),  # fmt: skip
    parents=(
        -1,
        0,
        1,
        2,
        2,
        4,
        5,
        6,
        7,
        8,
        7,
        2,
        11,
        12,
        13,
        14,
        15,
        14,
        0,
        18,
        19,
        20,
        0,
        22,
        23,
        24,
        3,
        26,
        26,
        26,
        26,
        26,
    ),  # fmt: skip
    parts=(
        (0, 1, 2, 3, 26, 27, 28, 29, 30, 31),
        (4, 5, 6, 7, 8, 9, 10),
        (11, 12, 13, 14, 15, 16, 17),
        (18, 19, 20, 21),
        (22, 23, 24, 25),
    ),
    root=1,  # SPINE_NAVEL, nearest to Kinect v2's SpineMid
    torso=(0, 3),  # PELVIS, NECK
    across=((5, 12), (18, 22)),  # SHOULDER_LEFT/RIGHT, HIP_LEFT/RIGHT
    axes="k4a",
    ntu_twin=(
        0,
        1,
        None,
        2,
        None,
        4,
        5,
        6,
        7,
        21,
        22,
        None,
        8,
        9,
        10,
        11,
        23,
        24,
        12,
        13,
        14,
        15,
        16,
        17,
        18,
        19,
        3,
        None,
        None,
        None,
        None,
        None,
    ),  # fmt: skip
    # Kinect v2's SpineShoulder sits between the shoulders at the base of the neck: SPINE_CHEST
    # is a hand lower and NECK higher, so take the midpoint of the two clavicle joints.
    ntu_mixes={20: {4: 0.5, 11: 0.5}},
)

LAYOUTS: dict[str, Layout] = {lay.name: lay for lay in (NTU25, UTD20, UCLA20, SBU15, K4A32)}


def get_layout(name: str) -> Layout:
    try:
        return LAYOUTS[name]
    except KeyError:
        known = ", ".join(sorted(LAYOUTS))
        raise LayoutError(f"unknown joint layout {name!r}; known layouts: {known}") from None


@cache
def joint_map(src: str, dst: str) -> NDArray[np.float64]:
    """The ``(V_dst, V_src)`` weights taking joints of ``src`` to joints of ``dst``."""
    s, d = get_layout(src), get_layout(dst)
    if s.name == d.name:
        return np.eye(s.num_joints)
    rows = s.ntu_rows()
    out = np.zeros((d.num_joints, s.num_joints))
    for j, twin in enumerate(d.ntu_twin):
        if twin is None or twin not in rows:
            raise LayoutError(
                f"no map from {src!r} to {dst!r}: {dst} joint {j} ({d.joints[j]}) has no "
                f"counterpart in {src}"
            )
        out[j] = rows[twin]
    out.setflags(write=False)
    return out


def can_map(src: str, dst: str) -> bool:
    try:
        joint_map(src, dst)
    except LayoutError:
        return False
    return True


def axes_matrix(src: str, dst: str) -> NDArray[np.float64]:
    """The 3x3 matrix taking a point of ``src``'s camera frame into ``dst``'s."""
    to_kinect = AXES[get_layout(src).axes]
    from_kinect = AXES[get_layout(dst).axes].T  # the frames are rotations or reflections
    return np.asarray(from_kinect @ to_kinect)


def convert(
    x: NDArray[np.floating], src: str, dst: str, *, scale: float = 1.0
) -> NDArray[np.float32]:
    """Map a clip ``(..., V_src, 3)`` from layout ``src`` to ``dst`` (joints, axes, units).

    ``scale`` multiplies coordinates first (``1e-3`` for Azure Kinect SDK millimetres). All-zero
    joints (an absent person) stay all-zero.
    """
    s = get_layout(src)
    if x.shape[-2:] != (s.num_joints, 3):
        raise LayoutError(
            f"a {src} clip needs shape (..., {s.num_joints}, 3), got {tuple(x.shape)}"
        )
    weights = joint_map(src, dst)
    axes = axes_matrix(src, dst) * scale
    y = np.einsum("dv,...vc,ec->...de", weights, x, axes, optimize=True)
    return np.ascontiguousarray(y, dtype=np.float32)
