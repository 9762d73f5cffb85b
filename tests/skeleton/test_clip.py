"""Clip operations, pinned against the public CTR-GCN/MAMP reference where one exists."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skeleton.clip import (
    EmptyClipError,
    NonFiniteClipError,
    WindowSpec,
    centre_crop_resize,
    centre_on_joint,
    check_clip,
    face_forward,
    fit_persons,
    inference_window,
    normalise_scale,
    random_crop_resize,
    random_shear,
    resize_time,
    rotate,
    rotation_matrix,
    training_window,
    valid_frames,
)

torch = pytest.importorskip("torch")


def reference_resize(x: np.ndarray, frames: int) -> np.ndarray:
    """The public ``valid_crop_resize`` resize step: F.interpolate bilinear, align_corners=False."""
    m, t, v, c = x.shape
    data = torch.tensor(x).permute(3, 2, 0, 1).reshape(1, 1, c * v * m, t)
    out = torch.nn.functional.interpolate(
        data, size=(c * v * m, frames), mode="bilinear", align_corners=False
    )
    return out.reshape(c, v, m, frames).permute(2, 3, 1, 0).numpy()


@pytest.mark.parametrize(("length", "frames"), [(1, 120), (31, 120), (64, 120), (300, 120), (7, 3)])
def test_resize_equals_the_reference_interpolation(length: int, frames: int) -> None:
    x = np.random.default_rng(length).normal(size=(2, length, 25, 3)).astype(np.float32)
    np.testing.assert_allclose(resize_time(x, frames), reference_resize(x, frames), atol=5e-5)


@settings(max_examples=40, deadline=None)
@given(length=st.integers(1, 80), frames=st.integers(1, 130))
def test_resize_stays_within_the_range_of_the_input(length: int, frames: int) -> None:
    x = np.random.default_rng(length * 131 + frames).normal(size=(1, length, 2, 3))
    x = x.astype(np.float32)
    y = resize_time(x, frames)
    assert y.shape == (1, frames, 2, 3)
    assert (y >= x.min(axis=1, keepdims=True) - 1e-5).all()
    assert (y <= x.max(axis=1, keepdims=True) + 1e-5).all()


def test_centre_crop_takes_the_middle_95_percent() -> None:
    x = np.arange(100, dtype=np.float32)[None, :, None, None] * np.ones((1, 100, 1, 3), np.float32)
    # int(0.05 * 100 / 2) = 2 frames off each end, then resized from 96 frames.
    np.testing.assert_allclose(centre_crop_resize(x, 96), x[:, 2:98])


def test_random_crop_is_at_least_64_frames_and_contiguous() -> None:
    ramp = np.arange(200, dtype=np.float32)[None, :, None, None] * np.ones(
        (1, 200, 1, 3), np.float32
    )
    rng = np.random.default_rng(0)
    for _ in range(50):
        out = random_crop_resize(ramp, 200, rng, ratio_range=(0.1, 0.2))
        span = out[0, -1, 0, 0] - out[0, 0, 0, 0]
        assert span >= 63 - 1  # a 64-frame crop stretched back to 200 frames
        assert (np.diff(out[0, :, 0, 0]) >= -1e-4).all()


def test_short_clips_keep_all_their_frames_and_one_frame_becomes_constant() -> None:
    one = np.ones((1, 1, 20, 3), dtype=np.float32)
    spec = WindowSpec(frames=120, persons=2)
    rng = np.random.default_rng(0)
    for window in (inference_window(one, spec), training_window(one, spec, rng)):
        assert window.shape == (2, 120, 20, 3)
        assert not window[1].any()  # the absent second person stays absent
        np.testing.assert_allclose(window[0], window[0, :1].repeat(120, axis=0), atol=1e-6)


def test_valid_frames_drop_zero_frames_and_refuse_an_empty_clip() -> None:
    x = np.zeros((2, 10, 3, 3), dtype=np.float32)
    x[1, 3] = 1.0  # only the second person appears, in one frame
    assert valid_frames(x).shape == (2, 1, 3, 3)
    with pytest.raises(EmptyClipError, match="every frame is all zeros"):
        valid_frames(np.zeros((1, 5, 3, 3), np.float32), where="a01_s01")


def test_non_finite_coordinates_are_rejected_naming_person_frame_and_joint() -> None:
    x = np.ones((2, 6, 20, 3), dtype=np.float32)
    x[1, 4, 7, 2] = np.nan
    with pytest.raises(NonFiniteClipError, match="person 1, frame 4, joint 7") as info:
        check_clip(x, where="upload")
    assert (info.value.person, info.value.frame, info.value.joint) == (1, 4, 7)
    x[1, 4, 7, 2] = np.inf
    with pytest.raises(NonFiniteClipError):
        inference_window(x, WindowSpec())


def test_rotation_matches_the_reference_convention() -> None:
    # Rz(pi/2) in the reference random_rot takes x to -y.
    np.testing.assert_allclose(rotation_matrix(0, 0, np.pi / 2) @ [1, 0, 0], [0, -1, 0], atol=1e-6)
    r = rotation_matrix(0.3, -0.2, 0.1)
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-6)


def test_training_window_keeps_bone_lengths_and_absent_persons() -> None:
    rng = np.random.default_rng(3)
    x = np.zeros((2, 90, 25, 3), dtype=np.float32)
    x[0] = rng.normal(size=(90, 25, 3))
    out = training_window(x, WindowSpec(min_crop_frames=90), rng)
    assert not out[1].any()
    # rotation is rigid, so the spread of joints in a frame stays the same
    before = np.linalg.norm(resize_time(x, 120)[0] - resize_time(x, 120)[0, :, :1], axis=-1)
    after = np.linalg.norm(out[0] - out[0, :, :1], axis=-1)
    np.testing.assert_allclose(np.sort(before.ravel()), np.sort(after.ravel()), rtol=1e-4)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), bound=st.floats(0.01, 0.5))
def test_shear_distorts_within_its_bound_and_keeps_absent_joints_absent(
    seed: int, bound: float
) -> None:
    x = np.zeros((2, 5, 4, 3), dtype=np.float32)
    x[0, :, :3] = np.eye(3, dtype=np.float32)  # joints 0-2 of person 0 are the unit axes
    out = random_shear(x, np.random.default_rng(seed), max_shear=bound)
    matrix = out[0, 0, :3].T  # column k is where the axis k went
    np.testing.assert_allclose(np.diag(matrix), 1.0, atol=1e-6)
    off = matrix[~np.eye(3, dtype=bool)]
    assert np.all(np.abs(off) <= bound + 1e-6) and np.any(off != 0)
    assert not out[0, :, 3].any() and not out[1].any()
    np.testing.assert_array_equal(out[0], np.broadcast_to(out[0, :1], out[0].shape))


def test_training_window_shears_only_when_asked() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(1, 80, 25, 3)).astype(np.float32)
    plain = WindowSpec(persons=1, min_crop_frames=80, max_rotation=0.0)
    sheared = WindowSpec(persons=1, min_crop_frames=80, max_rotation=0.0, max_shear=0.3)
    same_crop = training_window(x, plain, np.random.default_rng(9))
    out = training_window(x, sheared, np.random.default_rng(9))
    assert not np.allclose(out, same_crop)
    # a linear map of the same crop: solve for it and find it within the bound
    matrix, *_ = np.linalg.lstsq(same_crop.reshape(-1, 3), out.reshape(-1, 3), rcond=None)
    np.testing.assert_allclose(same_crop.reshape(-1, 3) @ matrix, out.reshape(-1, 3), atol=1e-4)
    assert np.abs(matrix - np.eye(3)).max() <= 0.3 + 1e-4
    np.testing.assert_array_equal(inference_window(x, sheared), inference_window(x, plain))


def test_centring_moves_the_root_of_the_first_present_frame_to_the_origin() -> None:
    x = np.zeros((2, 4, 3, 3), dtype=np.float32)
    x[0, 1:] = [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
    x[1, 2] = 1.0
    out = centre_on_joint(x, 1)
    np.testing.assert_array_equal(out[0, 1, 1], 0)
    assert not out[0, 0].any() and not out[1, 0].any() and not out[1, 3].any()
    np.testing.assert_array_equal(out[1, 2, 0], [-3, -4, -5])


def test_fit_persons_pads_and_truncates() -> None:
    x = np.ones((1, 5, 4, 3), dtype=np.float32)
    assert fit_persons(x, 2).shape == (2, 5, 4, 3)
    assert fit_persons(np.ones((3, 5, 4, 3), np.float32), 2).shape == (2, 5, 4, 3)


def test_scale_normalisation_removes_body_size_and_camera_distance() -> None:
    """A tall person far away and a short one close by give the same window."""
    rng = np.random.default_rng(5)
    x = np.zeros((2, 40, 20, 3), dtype=np.float32)
    x[0] = rng.normal(size=(40, 20, 3)) + [0.0, 0.0, 2.5]
    x[1, 5:30] = rng.normal(size=(25, 20, 3))
    spec = WindowSpec(frames=32, min_crop_frames=32, centre_joint=2, scale_bone=(3, 1))
    bigger = (x * 1.3 + np.array([0.4, -0.2, 1.0], np.float32)) * (x != 0)
    np.testing.assert_allclose(
        inference_window(bigger, spec), inference_window(x, spec), rtol=1e-4, atol=1e-5
    )
    torso = np.linalg.norm(x[0, :, 3] - x[0, :, 1], axis=-1).mean()
    np.testing.assert_allclose(normalise_scale(x, (3, 1)), x / torso, rtol=1e-6)
    # the absent second person stays all zeros where it was absent
    assert not inference_window(x, WindowSpec(frames=40, persons=2, scale_bone=(3, 1)))[1, :4].any()


def test_scale_normalisation_refuses_a_clip_without_its_bone() -> None:
    x = np.zeros((1, 10, 20, 3), dtype=np.float32)
    x[0, :, :3] = 1.0  # joint 3 never shown
    with pytest.raises(EmptyClipError, match="clip7: cannot normalise the scale.*joints 3 and 1"):
        inference_window(x, WindowSpec(frames=8, scale_bone=(3, 1)), where="clip7")


def test_window_spec_with_a_scale_bone_survives_a_json_round_trip() -> None:
    import dataclasses
    import json

    spec = WindowSpec(frames=32, centre_joint=2, scale_bone=(3, 1))
    again = WindowSpec.from_dict(json.loads(json.dumps(dataclasses.asdict(spec))))
    assert again == spec
    assert WindowSpec.from_dict({"frames": 32}).scale_bone is None  # cards written before it


ACROSS = ((4, 8), (12, 16))  # utd20/ucla20 shoulders and hips, left then right


def body_facing_the_sensor(rng: np.random.Generator, frames: int = 40) -> np.ndarray:
    """A moving person whose right shoulder and hip lie along +x of their left ones."""
    x = np.zeros((2, frames, 20, 3), dtype=np.float32)
    x[0] = rng.normal(scale=0.3, size=(frames, 20, 3)) + [0.0, 0.0, 2.5]
    x[0, :, 8] = x[0, :, 4] + [0.35, 0.0, 0.0]
    x[0, :, 16] = x[0, :, 12] + [0.2, 0.0, 0.0]
    return x


@settings(max_examples=25, deadline=None)
@given(yaw=st.floats(-3.1, 3.1), seed=st.integers(0, 2**16))
def test_facing_forward_removes_the_cameras_angle_to_the_person(yaw: float, seed: int) -> None:
    """The same motion seen from a camera turned by any angle about the vertical gives the
    same window; the turn is about the vertical only, so height is untouched."""
    x = body_facing_the_sensor(np.random.default_rng(seed))
    seen = rotate(x, rotation_matrix(0.0, yaw, 0.0))
    spec = WindowSpec(frames=32, persons=1, min_crop_frames=32, centre_joint=2, face_pairs=ACROSS)
    np.testing.assert_allclose(inference_window(seen, spec), inference_window(x, spec), atol=1e-4)
    faced = face_forward(seen, ACROSS)
    np.testing.assert_allclose(faced[..., 1], seen[..., 1], atol=1e-6)
    assert not faced[1].any()  # the absent second person stays all zeros


def test_facing_forward_keeps_turning_during_the_clip() -> None:
    """One rotation per clip: a person who turns round still turns round in the window."""
    x = body_facing_the_sensor(np.random.default_rng(3), frames=80)
    x[0, 40:] = rotate(x[0, 40:], rotation_matrix(0.0, np.pi, 0.0))  # half way, turns about
    faced = face_forward(x, ACROSS)
    start, end = faced[0, 0, 8] - faced[0, 0, 4], faced[0, -1, 8] - faced[0, -1, 4]
    assert start[0] > 0.3 and end[0] < -0.3


def test_facing_forward_refuses_a_clip_without_its_shoulders_and_hips() -> None:
    x = np.zeros((1, 10, 20, 3), dtype=np.float32)
    x[0, :, :4] = 1.0  # head and trunk only
    with pytest.raises(EmptyClipError, match="clip9: cannot face the body forward.*4, 8, 12, 16"):
        inference_window(x, WindowSpec(frames=8, face_pairs=ACROSS), where="clip9")


def test_window_spec_with_face_pairs_survives_a_json_round_trip() -> None:
    import dataclasses
    import json

    spec = WindowSpec(frames=32, centre_joint=2, face_pairs=ACROSS)
    again = WindowSpec.from_dict(json.loads(json.dumps(dataclasses.asdict(spec))))
    assert again == spec
    assert WindowSpec.from_dict({"frames": 32}).face_pairs is None  # cards written before it
