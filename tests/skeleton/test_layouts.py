"""Joint layouts: structure, and every map between layouts checked joint by joint."""

import numpy as np
import pytest

from skeleton.layouts import (
    LAYOUTS,
    LayoutError,
    axes_matrix,
    can_map,
    convert,
    get_layout,
    joint_map,
)


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_layout_is_a_tree_with_five_parts_covering_every_joint(name: str) -> None:
    lay = get_layout(name)
    assert len(lay.joints) == len(lay.parents) == len(lay.ntu_twin) == lay.num_joints
    assert lay.parents.count(-1) == 1
    for joint in range(lay.num_joints):  # every joint reaches the root without a cycle
        seen, j = set(), joint
        while lay.parents[j] != -1:
            assert j not in seen
            seen.add(j)
            j = lay.parents[j]
    members = sorted(j for part in lay.parts for j in part)
    assert len(lay.parts) == 5
    assert members == list(range(lay.num_joints))


def test_ntu_parts_are_the_papers_one_based_partition() -> None:
    one_based = [[1, 2, 3, 4, 21], [5, 6, 7, 8, 22, 23], [9, 10, 11, 12, 24, 25],
                 [13, 14, 15, 16], [17, 18, 19, 20]]  # fmt: skip
    assert [[j + 1 for j in part] for part in get_layout("ntu25").parts] == one_based


# ntu <- k4a correspondences of layouts.md, written out one joint at a time.
K4A_TO_NTU = {0: 0, 1: 1, 2: 3, 3: 26, 4: 5, 5: 6, 6: 7, 7: 8, 8: 12, 9: 13, 10: 14, 11: 15,
              12: 18, 13: 19, 14: 20, 15: 21, 16: 22, 17: 23, 18: 24, 19: 25, 21: 9, 22: 10,
              23: 16, 24: 17}  # fmt: skip


def test_k4a_to_ntu_joint_by_joint_with_axes_flipped() -> None:
    rng = np.random.default_rng(0)
    k4a = rng.normal(size=(32, 3)).astype(np.float32)
    ntu = convert(k4a, "k4a32", "ntu25")
    flip = np.array([-1.0, -1.0, 1.0])
    for ntu_joint, k4a_joint in K4A_TO_NTU.items():
        np.testing.assert_allclose(ntu[ntu_joint], k4a[k4a_joint] * flip, rtol=1e-6)
    # SpineShoulder: the midpoint of the two clavicles (documented choice).
    np.testing.assert_allclose(ntu[20], (k4a[4] + k4a[11]) / 2 * flip, rtol=1e-5)


def test_k4a_millimetres_become_metres_in_kinect_axes() -> None:
    k4a = np.zeros((32, 3), dtype=np.float32)
    k4a[26] = [100.0, -500.0, 2000.0]  # head: 10 cm right, 50 cm up, 2 m ahead
    ntu = convert(k4a, "k4a32", "ntu25", scale=1e-3)
    np.testing.assert_allclose(ntu[3], [-0.1, 0.5, 2.0], rtol=1e-6)


def test_kinect_v1_orders_map_into_each_other_by_name() -> None:
    utd, ucla = get_layout("utd20"), get_layout("ucla20")
    same = {"head": "Head", "shoulder_center": "ShoulderCenter", "spine": "Spine",
            "hip_center": "HipCenter", "left_wrist": "WristLeft", "right_foot": "FootRight",
            "left_hip": "HipLeft", "right_elbow": "ElbowRight"}  # fmt: skip
    x = np.arange(60, dtype=np.float32).reshape(20, 3)
    to_ucla = convert(x, "utd20", "ucla20")
    back = convert(to_ucla, "ucla20", "utd20")
    np.testing.assert_array_equal(back, x)
    for utd_name, ucla_name in same.items():
        np.testing.assert_array_equal(to_ucla[ucla.index(ucla_name)], x[utd.index(utd_name)])


@pytest.mark.parametrize("dst", ["utd20", "ucla20", "sbu15", "ntu25"])
@pytest.mark.parametrize("src", ["k4a32", "ntu25"])
def test_camera_layouts_map_into_every_training_layout(src: str, dst: str) -> None:
    assert can_map(src, dst)
    weights = joint_map(src, dst)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0)  # each joint an average of joints


def test_ntu_to_kinect_v1_named_joints() -> None:
    ntu, utd, sbu = get_layout("ntu25"), get_layout("utd20"), get_layout("sbu15")
    x = np.random.default_rng(1).normal(size=(25, 3)).astype(np.float32)
    y = convert(x, "ntu25", "utd20")
    pairs = {"head": "Head", "shoulder_center": "SpineShoulder", "spine": "SpineMid",
             "hip_center": "SpineBase", "left_hand": "HandLeft",
             "right_ankle": "AnkleRight"}  # fmt: skip
    for utd_name, ntu_name in pairs.items():
        np.testing.assert_array_equal(y[utd.index(utd_name)], x[ntu.index(ntu_name)])
    z = convert(x, "ntu25", "sbu15")
    np.testing.assert_array_equal(z[sbu.index("neck")], x[ntu.index("SpineShoulder")])
    np.testing.assert_array_equal(z[sbu.index("torso")], x[ntu.index("SpineMid")])


@pytest.mark.parametrize(
    ("src", "dst"),
    [("utd20", "ntu25"), ("ucla20", "k4a32"), ("sbu15", "utd20"), ("ntu25", "k4a32")],
)
def test_maps_without_corresponding_joints_are_refused_with_the_joint_named(
    src: str, dst: str
) -> None:
    with pytest.raises(LayoutError, match=r"joint \d+ \(\w+\)"):
        joint_map(src, dst)


def test_absent_person_stays_zero_and_shapes_are_checked() -> None:
    clip = np.zeros((2, 5, 32, 3), dtype=np.float32)
    clip[0] = 1.0
    out = convert(clip, "k4a32", "ntu25")
    assert out.shape == (2, 5, 25, 3)
    assert not out[1].any()
    with pytest.raises(LayoutError, match="k4a32 clip needs shape"):
        convert(np.zeros((5, 25, 3)), "k4a32", "ntu25")
    with pytest.raises(LayoutError, match="unknown joint layout 'openpose'"):
        get_layout("openpose")


def test_axes_matrices_are_inverse_pairs() -> None:
    np.testing.assert_array_equal(
        axes_matrix("k4a32", "ntu25") @ axes_matrix("ntu25", "k4a32"), np.eye(3)
    )


@pytest.mark.parametrize(
    ("layout", "bone"),
    [
        ("ntu25", ("SpineBase", "SpineShoulder")),
        ("utd20", ("hip_center", "shoulder_center")),
        ("ucla20", ("HipCenter", "ShoulderCenter")),
        ("sbu15", ("torso", "neck")),
        ("k4a32", ("PELVIS", "NECK")),
    ],
)
def test_each_layout_names_its_torso_bone_for_scale_normalisation(
    layout: str, bone: tuple[str, str]
) -> None:
    spec = get_layout(layout)
    assert tuple(spec.joints[i] for i in spec.torso) == bone


@pytest.mark.parametrize("layout", ["ntu25", "utd20", "ucla20", "sbu15", "k4a32"])
def test_each_layout_names_its_shoulders_then_hips_left_to_right_for_facing(layout: str) -> None:
    spec = get_layout(layout)
    named = [(spec.joints[left].lower(), spec.joints[right].lower()) for left, right in spec.across]
    assert len(named) == 2
    for (left, right), part in zip(named, ("shoulder", "hip"), strict=True):
        assert part in left and "left" in left and part in right and "right" in right
