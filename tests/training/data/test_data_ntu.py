"""NTU RGB+D: real-format .skeleton files written here, parsed and preprocessed; every expected
array is built by hand from the rules of method.md section 1a, not by the code under test."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from masksem.cli_data import data_app
from training.data.errors import (
    CorruptSampleError,
    EmptySequenceError,
    NonNumericFieldError,
    TruncatedFileError,
    WrongJointCountError,
)
from training.data.ntu_names import NtuName
from training.data.ntu_npz import load_ntu_npz
from training.data.ntu_prepare import prepare_ntu, select_ntu_files
from training.data.ntu_preprocess import read_ntu_sample
from training.data.ntu_skeleton import read_skeleton_file

SHARED_MISSING = Path(__file__).resolve().parents[3].parent / "shared/data/ntu"
MISSING_NAME = "S001C002P005R002A008"  # the first entry of NTU's missing-skeleton list

Frame = list[tuple[str, np.ndarray]]  # (body id, (25, 3) joints) per body present


def decimals(values: np.ndarray) -> np.ndarray:
    """Values exactly as the file will spell them (4 decimals)."""
    return np.vectorize(lambda v: float(f"{v:.4f}"))(values)


def joint_line(xyz: np.ndarray) -> str:
    x, y, z = xyz
    return f"{x:.4f} {y:.4f} {z:.4f} 261.8 193.4 923.6 521.7 0.2561 -0.0113 0.9663 -0.0121 2"


def skeleton_text(frames: list[Frame], joints: int = 25) -> str:
    lines = [str(len(frames))]
    for bodies in frames:
        lines.append(str(len(bodies)))
        for body_id, xyz in bodies:
            lines.append(f"{body_id} 0 1 1 1 1 0 0.0349 -0.1105 2")
            lines.append(str(joints))
            lines.extend(joint_line(j) for j in xyz[:joints])
    return "\n".join(lines) + "\n"


def person(rng: np.random.Generator, frames: int, *, x0: float, drift: float) -> np.ndarray:
    """An upright body (tall in y, narrow in x) walking along x by ``drift`` per frame."""
    out = np.empty((frames, 25, 3))
    for t in range(frames):
        out[t, :, 0] = x0 + drift * t + rng.uniform(-0.2, 0.2, 25)
        out[t, :, 1] = np.linspace(-0.8, 0.8, 25) + rng.uniform(-0.01, 0.01, 25)
        out[t, :, 2] = 3.0 + rng.uniform(-0.1, 0.1, 25)
    return decimals(out)


def wide_frame(rng: np.random.Generator, x0: float) -> np.ndarray:
    """A noisy frame: its x-range (1.35) is 0.9 x its y-range (1.5), above the 0.8 limit."""
    xyz = np.stack(
        [
            x0 + rng.uniform(-0.675, 0.675, 25),
            np.linspace(-0.75, 0.75, 25),
            3.2 + rng.uniform(-0.1, 0.1, 25),
        ],
        axis=1,
    )
    xyz[0, 0], xyz[1, 0] = x0 - 0.675, x0 + 0.675
    return decimals(xyz)


def motion(joints: np.ndarray) -> float:
    """Sum over x, y, z of the variance of all joint positions."""
    return float(joints.reshape(-1, 3).astype(np.float32).var(axis=0).sum())


def f32(a: np.ndarray) -> np.ndarray:
    return a.astype(np.float32)


def write(path: Path, frames: list[Frame]) -> Path:
    path.write_text(skeleton_text(frames))
    return path


# --- scenarios -------------------------------------------------------------------------------


def single_body(tmp: Path, name: str = "S001C001P001R001A001") -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(1)
    body = person(rng, 4, x0=0.3, drift=0.02)
    frames: list[Frame] = [[]] + [[("72057594037927935", body[t])] for t in range(4)]
    path = write(tmp / f"{name}.skeleton", frames)
    # one body: the empty first frame is dropped, the clip is centred on SpineMid of frame 0,
    # and actor 2 is all zeros
    expected = np.zeros((4, 2, 25, 3), np.float32)
    expected[:, 0] = f32(body) - f32(body)[0, 1]
    return path, expected


def two_bodies_with_noise(tmp: Path, name: str = "S001C002P003R001A050") -> tuple[Path, np.ndarray]:
    """Main actor A (86 frames), second actor B (12 frames), a noisy body N (60 of its 86 frames
    wider than 0.8 x their height) and a body D seen in only 11 frames, alone, after the others."""
    rng = np.random.default_rng(2)
    a = person(rng, 86, x0=-0.5, drift=0.04)
    b = person(rng, 12, x0=0.6, drift=0.0)
    n = person(rng, 86, x0=1.5, drift=0.05)
    for t in range(60):
        n[t] = wide_frame(rng, 1.5)
    d = person(rng, 11, x0=0.0, drift=0.0)
    # premises: A has the most motion; N, were it kept, would outrank B and take actor 2
    assert motion(a) > min(motion(n), motion(n[60:])) > motion(b)
    frames: list[Frame] = [[]]
    for t in range(97):
        bodies: Frame = []
        if t < 86:
            bodies += [("300", n[t]), ("100", a[t])]
        if t < 12:
            bodies.append(("200", b[t]))
        if t >= 86:
            bodies.append(("400", d[t - 86]))
        frames.append(bodies)
    path = write(tmp / f"{name}.skeleton", frames)
    # N is dropped by the spread rule (60/86 = 0.6977 >= 0.69754), D by length (11 <= 11, while
    # B's 12 frames keep B); the frames only D held are then empty for both actors and dropped
    origin = f32(a)[0, 1]
    expected = np.zeros((86, 2, 25, 3), np.float32)
    expected[:, 0] = f32(a) - origin
    expected[:12, 1] = f32(b) - origin  # frames 12..85: B absent, so zero after centring
    return path, expected


# --- the parser ------------------------------------------------------------------------------


def test_parser_reads_bodies_intervals_and_coordinates(tmp_path: Path) -> None:
    path, _ = two_bodies_with_noise(tmp_path)
    raw = read_skeleton_file(path)
    assert raw.name == "S001C002P003R001A050"
    assert raw.num_frames == 97  # the frame without any body is not counted
    assert list(raw.bodies) == ["300", "100", "200", "400"]  # order of first appearance
    intervals = {bid: (b.first_frame, b.last_frame) for bid, b in raw.bodies.items()}
    assert intervals == {"300": (0, 85), "100": (0, 85), "200": (0, 11), "400": (86, 96)}
    text = path.read_text().splitlines()
    # line 1 frame count, 2 empty frame's body count, 3 body count, 4 info of N, 5 joints, 6..
    first_joint = [float(v) for v in text[5].split()[:3]]
    np.testing.assert_array_equal(raw.bodies["300"].joints[0, 0], np.float32(first_joint))


def test_single_body_is_centred_and_padded_with_a_zero_second_actor(tmp_path: Path) -> None:
    path, expected = single_body(tmp_path)
    out = read_ntu_sample(path)
    assert out.dtype == np.float32 and out.shape == (4, 150)
    np.testing.assert_array_equal(out, expected.reshape(4, 150))


def test_two_actors_noisy_and_short_bodies_follow_the_published_rules(tmp_path: Path) -> None:
    path, expected = two_bodies_with_noise(tmp_path)
    np.testing.assert_array_equal(read_ntu_sample(path), expected.reshape(86, 150))


def test_spread_rule_lowers_the_motion_of_a_body_with_some_noisy_frames(tmp_path: Path) -> None:
    """P moves a lot only in its 5 noisy frames (5/15 < 0.69754, so it is kept); its motion is
    then measured on the clean frames, which makes the steadily walking Q actor 1."""
    rng = np.random.default_rng(3)
    p = person(rng, 15, x0=0.0, drift=0.0)
    for t in (3, 6, 9, 12, 14):
        p[t] = wide_frame(rng, 0.0)
    q = person(rng, 15, x0=1.0, drift=0.03)
    clean = np.ones(15, bool)
    clean[[3, 6, 9, 12, 14]] = False
    assert motion(p) > motion(q) > motion(p[clean])
    frames: list[Frame] = [[("1", p[t]), ("2", q[t])] for t in range(15)]
    path = write(tmp_path / "S002C001P007R002A051.skeleton", frames)
    origin = f32(q)[0, 1]
    expected = np.stack([f32(q) - origin, f32(p) - origin], axis=1)
    np.testing.assert_array_equal(read_ntu_sample(path), expected.reshape(15, 150))


def test_bodies_that_do_not_overlap_actor_1_are_appended_to_it(tmp_path: Path) -> None:
    """A (frames 0-14, most motion) is actor 1; C (0-29) overlaps it and becomes actor 2;
    B (15-29) does not overlap A, so it continues actor 1."""
    rng = np.random.default_rng(4)
    a = person(rng, 15, x0=-1.0, drift=0.08)
    c = person(rng, 30, x0=0.5, drift=0.01)
    b = person(rng, 15, x0=-0.2, drift=0.0)
    assert motion(a) > motion(c) > motion(b)
    frames: list[Frame] = []
    for t in range(30):
        frames.append([("1", a[t]), ("3", c[t])] if t < 15 else [("3", c[t]), ("2", b[t - 15])])
    path = write(tmp_path / "S003C001P008R001A055.skeleton", frames)
    origin = f32(a)[0, 1]
    expected = np.zeros((30, 2, 25, 3), np.float32)
    expected[:15, 0] = f32(a) - origin
    expected[15:, 0] = f32(b) - origin
    expected[:, 1] = f32(c) - origin
    np.testing.assert_array_equal(read_ntu_sample(path), expected.reshape(30, 150))


# --- corrupt files ---------------------------------------------------------------------------


def test_truncated_file_names_file_and_line(tmp_path: Path) -> None:
    path, _ = single_body(tmp_path)
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:40]) + "\n")
    with pytest.raises(TruncatedFileError) as caught:
        read_skeleton_file(path)
    assert caught.value.path == path and caught.value.line == 41
    assert str(path) in str(caught.value) and "line 41" in str(caught.value)


def test_file_cut_in_the_middle_of_a_line_is_truncated(tmp_path: Path) -> None:
    path, _ = single_body(tmp_path)
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:12]) + "\n" + lines[12][:15])
    with pytest.raises(TruncatedFileError, match="ends in the middle") as caught:
        read_skeleton_file(path)
    assert caught.value.line == 13


def test_wrong_joint_count_names_the_joint_count_line(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    path = tmp_path / "S001C001P001R001A002.skeleton"
    path.write_text(skeleton_text([[("7", person(rng, 1, x0=0, drift=0)[0])]], joints=24))
    with pytest.raises(WrongJointCountError) as caught:
        read_skeleton_file(path)
    assert (caught.value.line, caught.value.field) == (4, "jointCount")
    assert "24 joints" in str(caught.value) and str(path) in str(caught.value)


def test_non_numeric_field_names_line_and_field(tmp_path: Path) -> None:
    path, _ = single_body(tmp_path)
    lines = path.read_text().splitlines()
    fields = lines[9].split()
    fields[1] = "0.3x"  # the y of a joint
    lines[9] = " ".join(fields)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(NonNumericFieldError) as caught:
        read_skeleton_file(path)
    assert (caught.value.line, caught.value.field) == (10, "y")
    assert "'0.3x'" in str(caught.value) and "line 10" in str(caught.value)


@pytest.mark.parametrize(
    ("text", "line"),
    [("", 1), ("0\n", 1), ("3\n0\n0\n0\n", 1)],
    ids=["empty-file", "zero-frames", "no-body-in-any-frame"],
)
def test_empty_sequences_are_rejected(tmp_path: Path, text: str, line: int) -> None:
    path = tmp_path / "S001C001P001R001A003.skeleton"
    path.write_text(text)
    with pytest.raises(EmptySequenceError) as caught:
        read_skeleton_file(path)
    assert caught.value.line == line and caught.value.path == path


def test_file_whose_bodies_are_all_too_short_is_an_empty_sequence(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    a, b = person(rng, 5, x0=0, drift=0), person(rng, 5, x0=1, drift=0)
    path = write(
        tmp_path / "S001C001P001R001A004.skeleton", [[("1", a[t]), ("2", b[t])] for t in range(5)]
    )
    with pytest.raises(EmptySequenceError, match="11 frames") as caught:
        read_ntu_sample(path)
    assert caught.value.path == path


# --- benchmarks and the npz files ------------------------------------------------------------


def missing_list(tmp: Path) -> Path:
    shared = SHARED_MISSING / "samples_with_missing_skeletons.txt"
    if shared.is_file():
        return shared
    local = tmp / "samples_with_missing_skeletons.txt"
    local.write_text(f"{MISSING_NAME}\nS001C003P002R001A055\n")
    return local


def raw_folder(tmp: Path) -> tuple[Path, dict[str, np.ndarray]]:
    raw = tmp / "nturgb+d_skeletons"
    raw.mkdir()
    _, single = single_body(raw, "S001C001P001R001A001")  # xsub train (P001), xview test (C001)
    _, double = two_bodies_with_noise(raw, "S001C002P003R001A050")  # xsub test, xview train
    single_body(raw, MISSING_NAME)  # listed as missing: skipped even though readable
    corrupt, _ = single_body(raw, "S001C003P002R001A003")
    corrupt.write_text(corrupt.read_text()[:500])  # truncated: skipped and reported
    single_body(raw, "S018C001P001R001A061")  # NTU120 only
    return raw, {"S001C001P001R001A001": single, "S001C002P003R001A050": double}


def test_benchmarks_select_and_split_samples(tmp_path: Path) -> None:
    raw, _ = raw_folder(tmp_path)
    names = {
        bench: (
            [p.stem for p in select_ntu_files(raw, bench).train],
            [p.stem for p in select_ntu_files(raw, bench).test],
        )
        for bench in ("xsub", "xview", "xsub120", "xset120")
    }
    # ordered as the public scripts: by subject (camera, setup), then by name
    assert names["xsub"] == (
        ["S001C001P001R001A001", "S001C003P002R001A003", MISSING_NAME],
        ["S001C002P003R001A050"],
    )
    assert names["xview"] == (
        ["S001C002P003R001A050", MISSING_NAME, "S001C003P002R001A003"],
        ["S001C001P001R001A001"],
    )
    assert "S018C001P001R001A061" in names["xsub120"][0]
    assert "S018C001P001R001A061" in names["xset120"][0]  # setup 18 is even
    assert names["xset120"][1] == [  # odd setup 1: test
        "S001C001P001R001A001", "S001C002P003R001A050", MISSING_NAME, "S001C003P002R001A003",
    ]  # fmt: skip


def test_prepare_writes_the_public_npz_layout_and_skips_bad_samples(tmp_path: Path) -> None:
    raw, expected = raw_folder(tmp_path)
    out = tmp_path / "ntu60_xsub.npz"
    report = prepare_ntu(raw, out, "xsub", missing_list(tmp_path))
    assert (report.train, report.test, report.frames, report.missing_skipped) == (1, 1, 300, 1)
    (corrupt,) = report.skipped
    assert corrupt.source == str(raw / "S001C003P002R001A003.skeleton")
    assert "ends in the middle" in corrupt.reason

    with np.load(out) as npz:
        assert {"x_train", "y_train", "x_test", "y_test"} <= set(npz.files)
        assert npz["x_train"].shape == (1, 300, 150) and npz["x_train"].dtype == np.float32
        assert npz["y_train"].shape == (1, 60) and npz["y_test"].shape == (1, 60)
        assert np.flatnonzero(npz["y_train"][0]).tolist() == [0]  # A001
        assert np.flatnonzero(npz["y_test"][0]).tolist() == [49]  # A050
        padded = np.zeros((300, 150), np.float32)
        padded[:4] = expected["S001C001P001R001A001"].reshape(4, 150)
        np.testing.assert_array_equal(npz["x_train"][0], padded)
        padded = np.zeros((300, 150), np.float32)
        padded[:86] = expected["S001C002P003R001A050"].reshape(86, 150)
        np.testing.assert_array_equal(npz["x_test"][0], padded)

    dataset = load_ntu_npz(out, "xsub")
    assert dataset.stats()["sequences"] == 2 and dataset.layout == "ntu25"
    assert len(dataset.classes) == 60 and dataset.classes[49] == "punching/slapping other person"
    (test,) = dataset.test
    assert (test.name, test.label, test.subject, test.view) == ("S001C002P003R001A050", 49, 3, 2)
    assert test.data.shape == (2, 300, 25, 3) and test.frames == 86
    np.testing.assert_array_equal(test.data[:, :86], expected[test.name].transpose(1, 0, 2, 3))


def test_npz_without_names_from_public_scripts_is_read(tmp_path: Path) -> None:
    x = np.zeros((3, 300, 150), np.float32)
    x[:, :10] = 1.0
    y = np.eye(120)[[5, 7, 119]]
    path = tmp_path / "NTU120_XSub.npz"
    np.savez(path, x_train=x[:2], y_train=y[:2], x_test=x[2:], y_test=y[2:])
    dataset = load_ntu_npz(path)
    assert dataset.name == "ntu120" and [s.label for s in dataset.samples] == [5, 7, 119]
    assert dataset.samples[0].data.shape == (2, 300, 25, 3)


def test_npz_with_a_bad_label_row_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "bad.npz"
    y = np.zeros((2, 60))
    y[0, 3] = 1
    np.savez(path, x_train=np.zeros((2, 300, 150), np.float32), y_train=y,
             x_test=np.zeros((0, 300, 150), np.float32), y_test=np.zeros((0, 60)))  # fmt: skip
    with pytest.raises(CorruptSampleError, match="row 1 has 0 positive"):
        load_ntu_npz(path)


def test_cli_prepare_reports_skipped_samples(tmp_path: Path) -> None:
    raw, _ = raw_folder(tmp_path)
    out = tmp_path / "xview.npz"
    args = ["prepare", "ntu", "--raw", str(raw), "--out", str(out), "--benchmark", "xview"]
    args += ["--workers", "2"]
    result = CliRunner().invoke(data_app, [*args, "--missing", str(missing_list(tmp_path))])
    assert result.exit_code == 0, result.output
    assert "skipped 1 samples listed as missing" in result.output
    assert "skipped 1 unreadable or corrupt files" in result.output
    with np.load(out) as npz:
        assert npz["x_train"].shape == (1, 300, 150) and npz["x_test"].shape == (1, 300, 150)
        assert npz["names_test"].tolist() == ["S001C001P001R001A001"]


def test_sample_names_give_setup_camera_performer_replication_action() -> None:
    assert NtuName.parse("S017C003P020R002A060") == NtuName(17, 3, 20, 2, 60)
    with pytest.raises(ValueError, match="not an NTU sample name"):
        NtuName.parse("S17C3P20R2A60")
