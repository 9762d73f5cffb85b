"""A real Kinect v1 clip placed as Azure Kinect joints maps back onto itself exactly."""

from __future__ import annotations

import numpy as np
import pytest
from masksem_ros.k4a_joints import lift_to_k4a32

from skeleton.layouts import K4A32, LayoutError, convert, get_layout


def test_lifted_real_clip_converts_back_to_the_same_joints(ucla_clip: np.ndarray) -> None:
    k4a = lift_to_k4a32(ucla_clip, "ucla20")
    assert k4a.shape == (*ucla_clip.shape[:2], 32, 3) and k4a.dtype == np.float32
    np.testing.assert_array_equal(convert(k4a, "k4a32", "ucla20"), ucla_clip)


def test_lifted_joints_sit_where_the_azure_kinect_puts_them(ucla_clip: np.ndarray) -> None:
    ucla, k4a = get_layout("ucla20"), lift_to_k4a32(ucla_clip[0], "ucla20")
    kinect_to_k4a = np.array([-1.0, -1.0, 1.0], dtype=np.float32)  # k4a: x right, y down
    for k4a_joint, ucla_joint in [("PELVIS", "HipCenter"), ("HEAD", "Head"),
                                  ("WRIST_LEFT", "WristLeft"), ("FOOT_RIGHT", "FootRight"),
                                  ("CLAVICLE_LEFT", "ShoulderCenter"), ("NOSE", "Head"),
                                  ("HANDTIP_RIGHT", "HandRight")]:  # fmt: skip
        np.testing.assert_array_equal(
            k4a[:, K4A32.index(k4a_joint)], ucla_clip[0][:, ucla.index(ucla_joint)] * kinect_to_k4a
        )
    chest = k4a[:, K4A32.index("SPINE_CHEST")]
    between = (k4a[:, K4A32.index("SPINE_NAVEL")] + k4a[:, K4A32.index("CLAVICLE_LEFT")]) / 2
    np.testing.assert_allclose(chest, between, atol=1e-6)


def test_a_layout_without_a_pelvis_cannot_be_lifted() -> None:
    with pytest.raises(LayoutError, match="PELVIS"):
        lift_to_k4a32(np.zeros((4, 15, 3), dtype=np.float32), "sbu15")
