"""NTU RGB+D 60/120: the raw ``.skeleton`` parser, the standard SGN/CTR-GCN preprocessing,
and the ``x_train``/``y_train``/``x_test``/``y_test`` npz files every public codebase reads."""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from training.data.errors import (
    CorruptSampleError,
    DatasetError,
    EmptySequenceError,
    MalformedLineError,
    TruncatedFileError,
    WrongJointCountError,
)
from training.data.reading import parse_floats, parse_int
from training.data.types import UNKNOWN_SUBJECT, Sample, SkeletonDataset, SkippedSample

log = logging.getLogger("training.data")

NTU_JOINTS = 25
BODY_FIELDS = (
    "bodyID",
    "clipedEdges",
    "handLeftConfidence",
    "handLeftState",
    "handRightConfidence",
    "handRightState",
    "isResticted",
    "leanX",
    "leanY",
    "trackingState",
)
JOINT_FIELDS = (
    "x",
    "y",
    "z",
    "depthX",
    "depthY",
    "colorX",
    "colorY",
    "orientationW",
    "orientationX",
    "orientationY",
    "orientationZ",
    "trackingState",
)

# The thresholds of the public denoising (SGN's get_raw_denoised_data.py).
NOISE_LENGTH_FRAMES = 11
NOISE_SPREAD_RATIO = 0.8
NOISE_SPREAD_SHARE = 0.69754
PAD_FRAMES = 300
CENTRE_JOINT = 1  # SpineMid, joint 2 in NTU's 1-based numbering

NTU_ACTIONS: tuple[str, ...] = (
    "drink water", "eat meal/snack", "brushing teeth", "brushing hair", "drop", "pickup",
    "throw", "sitting down", "standing up (from sitting position)", "clapping", "reading",
    "writing", "tear up paper", "wear jacket", "take off jacket", "wear a shoe",
    "take off a shoe", "wear on glasses", "take off glasses", "put on a hat/cap",
    "take off a hat/cap", "cheer up", "hand waving", "kicking something",
    "reach into pocket", "hopping (one foot jumping)", "jump up",
    "make a phone call/answer phone", "playing with phone/tablet", "typing on a keyboard",
    "pointing to something with finger", "taking a selfie", "check time (from watch)",
    "rub two hands together", "nod head/bow", "shake head", "wipe face", "salute",
    "put the palms together", "cross hands in front (say stop)", "sneeze/cough",
    "staggering", "falling", "touch head (headache)", "touch chest (stomachache/heart pain)",
    "touch back (backache)", "touch neck (neckache)", "nausea or vomiting condition",
    "use a fan (with hand or paper)/feeling warm", "punching/slapping other person",
    "kicking other person", "pushing other person", "pat on back of other person",
    "point finger at the other person", "hugging other person",
    "giving something to other person", "touch other person's pocket", "handshaking",
    "walking towards each other", "walking apart from each other",
    "put on headphone", "take off headphone", "shoot at the basket", "bounce ball",
    "tennis bat swing", "juggling table tennis balls", "hush (quite)", "flick hair",
    "thumb up", "thumb down", "make ok sign", "make victory sign", "staple book",
    "counting money", "cutting nails", "cutting paper (using scissors)", "snapping fingers",
    "open bottle", "sniff (smell)", "squat down", "toss a coin", "fold paper",
    "ball up paper", "play magic cube", "apply cream on face", "apply cream on hand back",
    "put on bag", "take off bag", "put something into a bag", "take something out of a bag",
    "open a box", "move heavy objects", "shake fist", "throw up cap/hat",
    "hands up (both hands)", "cross arms", "arm circles", "arm swings", "running on the spot",
    "butt kicks (kick backward)", "cross toe touch", "side kick", "yawn", "stretch oneself",
    "blow nose", "hit other person with something", "wield knife towards other person",
    "knock over other person (hit with body)", "grab other person's stuff",
    "shoot at other person with a gun", "step on foot", "high-five", "cheers and drink",
    "carry something with other person", "take a photo of other person",
    "follow other person", "whisper in other person's ear",
    "exchange things with other person", "support somebody with hand",
    "finger-guessing game (playing rock-paper-scissors)",
)  # fmt: skip

NTU120_XSUB_TRAIN_SUBJECTS = frozenset(
    {1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38, 45, 46, 47, 49,
     50, 52, 53, 54, 55, 56, 57, 58, 59, 70, 74, 78, 80, 81, 82, 83, 84, 85, 86, 89, 91, 92, 93,
     94, 95, 97, 98, 100, 103}
)  # fmt: skip
NTU60_XSUB_TRAIN_SUBJECTS = frozenset(
    {1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38}
)

_NAME = re.compile(r"S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})")


# --------------------------------------------------------------------------------------------
# Sample names and benchmarks


@dataclass(frozen=True)
class NtuName:
    """The fields of a sample name such as ``S001C002P003R002A013`` (all 1-based)."""

    setup: int
    camera: int
    performer: int
    replication: int
    action: int

    @classmethod
    def parse(cls, name: str) -> NtuName:
        match = _NAME.fullmatch(name)
        if match is None:
            raise ValueError(f"{name!r} is not an NTU sample name like S001C002P003R002A013")
        return cls(*(int(g) for g in match.groups()))


@dataclass(frozen=True)
class NtuBenchmark:
    """One of the four published NTU protocols: which samples belong and which ones train."""

    name: str
    num_classes: int
    split_key: Callable[[NtuName], int]  # the id the split is decided on (subject/camera/setup)
    is_train: Callable[[NtuName], bool]

    def includes(self, sample: NtuName) -> bool:
        if self.num_classes == 60:
            return sample.setup <= 17 and sample.action <= 60
        return True


BENCHMARKS: dict[str, NtuBenchmark] = {
    "xsub": NtuBenchmark(
        "xsub", 60, lambda n: n.performer, lambda n: n.performer in NTU60_XSUB_TRAIN_SUBJECTS
    ),
    "xview": NtuBenchmark("xview", 60, lambda n: n.camera, lambda n: n.camera in (2, 3)),
    "xsub120": NtuBenchmark(
        "xsub120", 120, lambda n: n.performer, lambda n: n.performer in NTU120_XSUB_TRAIN_SUBJECTS
    ),
    "xset120": NtuBenchmark("xset120", 120, lambda n: n.setup, lambda n: n.setup % 2 == 0),
}


def get_benchmark(name: str) -> NtuBenchmark:
    try:
        return BENCHMARKS[name]
    except KeyError:
        known = ", ".join(BENCHMARKS)
        raise DatasetError(f"unknown NTU benchmark {name!r}; known: {known}") from None


# --------------------------------------------------------------------------------------------
# The raw .skeleton format


@dataclass
class RawBody:
    """One body id of a file: its joints over the frames it appears in.

    Like the public parser, a body's interval is ``first_frame .. first_frame + len - 1`` in the
    numbering of the frames that hold any body, even if the body skipped a frame in between.
    """

    body_id: str
    first_frame: int
    joints: NDArray[np.float32]  # (frames seen, 25, 3)

    @property
    def length(self) -> int:
        return int(self.joints.shape[0])

    @property
    def last_frame(self) -> int:
        return self.first_frame + self.length - 1


@dataclass
class RawSkeleton:
    """A parsed ``.skeleton`` file: frames without any body already dropped."""

    name: str
    num_frames: int
    bodies: dict[str, RawBody]  # in order of first appearance


def read_skeleton_file(path: Path) -> RawSkeleton:
    """Parse one raw NTU ``.skeleton`` file; corrupt content raises :class:`CorruptSampleError`."""
    try:
        text = path.read_text(encoding="ascii")
    except UnicodeDecodeError as err:
        raise MalformedLineError(path, f"not an ASCII text file ({err.reason})") from None
    return parse_skeleton_text(text, path)


def parse_skeleton_text(text: str, path: Path) -> RawSkeleton:
    try:
        return _parse_skeleton_lines(text.splitlines(), path)
    except CorruptSampleError as err:
        # a bad last line without its newline: the file was cut in the middle of that line
        cut = text and not text.endswith(("\n", "\r")) and err.line == len(text.splitlines())
        if cut and not isinstance(err, TruncatedFileError):
            raise TruncatedFileError(
                path, f"the file ends in the middle of this line ({err.problem})", line=err.line
            ) from None
        raise


def _parse_skeleton_lines(lines: list[str], path: Path) -> RawSkeleton:
    text_empty = not any(line.strip() for line in lines)
    pos = 0  # index of the next line to read; its 1-based number is pos + 1

    def next_tokens(what: str) -> list[str]:
        nonlocal pos
        if pos >= len(lines):
            raise TruncatedFileError(
                path, f"file ends after {len(lines)} lines, expected {what}", line=pos + 1
            )
        pos += 1
        return lines[pos - 1].split()

    def single(tokens: list[str], field_name: str) -> int:
        if len(tokens) != 1:
            raise MalformedLineError(
                path, f"expected one integer, got {len(tokens)} fields", line=pos, field=field_name
            )
        return parse_int(tokens[0], path, line=pos, field=field_name)

    if text_empty:
        raise EmptySequenceError(path, "the file is empty", line=1, field="frameCount")
    frame_count = single(next_tokens("the frame count"), "frameCount")
    if frame_count <= 0:
        raise EmptySequenceError(
            path, f"the file declares {frame_count} frames", line=1, field="frameCount"
        )

    joint_tokens: list[str] = []
    joint_lines: list[int] = []
    appearances: list[tuple[str, int]] = []  # (body id, frame index among frames with bodies)
    valid_frames = 0
    for f in range(frame_count):
        where = f"frame {f + 1} of {frame_count}"
        num_bodies = single(next_tokens(f"the body count of {where}"), "bodyCount")
        if num_bodies < 0:
            raise MalformedLineError(
                path, f"negative body count {num_bodies} in {where}", line=pos, field="bodyCount"
            )
        if num_bodies == 0:
            continue
        for b in range(num_bodies):
            body_where = f"body {b + 1} of {where}"
            info = next_tokens(f"the info line of {body_where}")
            if len(info) != len(BODY_FIELDS):
                raise MalformedLineError(
                    path,
                    f"the info line of {body_where} has {len(info)} fields, expected "
                    f"{len(BODY_FIELDS)}",
                    line=pos,
                    field="body info",
                )
            parse_int(info[0], path, line=pos, field="bodyID")
            parse_floats(info[1:], path, lines=[pos], fields=BODY_FIELDS[1:])
            joints = single(next_tokens(f"the joint count of {body_where}"), "jointCount")
            if joints != NTU_JOINTS:
                raise WrongJointCountError(
                    path,
                    f"{body_where} has {joints} joints, expected {NTU_JOINTS}",
                    line=pos,
                    field="jointCount",
                )
            for j in range(NTU_JOINTS):
                tokens = next_tokens(f"joint {j + 1} of {body_where}")
                if len(tokens) != len(JOINT_FIELDS):
                    raise MalformedLineError(
                        path,
                        f"joint {j + 1} of {body_where} has {len(tokens)} fields, expected "
                        f"{len(JOINT_FIELDS)}",
                        line=pos,
                        field=f"joint {j + 1}",
                    )
                joint_tokens.extend(tokens)
                joint_lines.append(pos)
            appearances.append((info[0], valid_frames))
        valid_frames += 1
    if any(line.strip() for line in lines[pos:]):
        raise MalformedLineError(
            path, f"unexpected content after the last of {frame_count} frames", line=pos + 1
        )
    if valid_frames == 0:
        raise EmptySequenceError(
            path, f"none of the {frame_count} frames holds a body", line=1, field="frameCount"
        )

    values = parse_floats(joint_tokens, path, lines=joint_lines, fields=JOINT_FIELDS)
    # float32 like the public parser, so motion and spread are computed on the same numbers
    xyz = values[:, :3].astype(np.float32).reshape(-1, NTU_JOINTS, 3)
    rows: dict[str, list[int]] = {}
    first: dict[str, int] = {}
    for i, (body_id, frame) in enumerate(appearances):
        rows.setdefault(body_id, []).append(i)
        first.setdefault(body_id, frame)
    bodies = {bid: RawBody(bid, first[bid], xyz[idx]) for bid, idx in rows.items()}
    return RawSkeleton(path.stem, valid_frames, bodies)


# --------------------------------------------------------------------------------------------
# The standard preprocessing (method.md section 1a)


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


# --------------------------------------------------------------------------------------------
# Preparing the npz files


@dataclass
class NtuSelection:
    """The files of one benchmark found under a raw folder, already split."""

    benchmark: NtuBenchmark
    train: list[Path]
    test: list[Path]
    listed_missing: list[str]  # files present but named in the missing-skeleton list
    ignored: list[SkippedSample]  # files whose name is not an NTU sample name


def read_missing_list(path: Path) -> set[str]:
    """NTU's ``samples_with_missing_skeletons.txt``: one sample name per line."""
    names: set[str] = set()
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        name = line.strip()
        if not name:
            continue
        if _NAME.fullmatch(name) is None:
            raise MalformedLineError(path, f"{name!r} is not an NTU sample name", line=number)
        names.add(name)
    return names


def select_ntu_files(raw: Path, benchmark: str, missing: Path | None = None) -> NtuSelection:
    """Find the ``.skeleton`` files of ``benchmark`` under ``raw`` (searched recursively).

    Training and test files are ordered as the public scripts write them: by the id the split
    is decided on (subject, camera or setup), then by name.
    """
    bench = get_benchmark(benchmark)
    if not raw.is_dir():
        raise DatasetError(f"NTU raw folder {raw} does not exist")
    missing_names = read_missing_list(missing) if missing is not None else set()
    found: dict[str, Path] = {}
    ignored: list[SkippedSample] = []
    for path in sorted(raw.rglob("*.skeleton")):
        if _NAME.fullmatch(path.stem) is None:
            ignored.append(SkippedSample(str(path), "not an NTU sample name"))
        elif path.stem in found:
            log.warning("%s: duplicate of %s, using the first", path, found[path.stem])
        else:
            found[path.stem] = path
    train: list[tuple[int, str, Path]] = []
    test: list[tuple[int, str, Path]] = []
    listed: list[str] = []
    for name, path in found.items():
        parsed = NtuName.parse(name)
        if not bench.includes(parsed):
            continue
        if name in missing_names:
            listed.append(name)
            continue
        side = train if bench.is_train(parsed) else test
        side.append((bench.split_key(parsed), name, path))
    return NtuSelection(
        bench, [p for *_, p in sorted(train)], [p for *_, p in sorted(test)], listed, ignored
    )


@dataclass
class NtuPrepareReport:
    benchmark: str
    out: Path
    train: int
    test: int
    frames: int  # the padded length, 300 unless a sequence is longer
    missing_skipped: int
    skipped: list[SkippedSample] = field(default_factory=list)


X = TypeVar("X")
Progress = Callable[[Iterable[X], int], Iterable[X]]


def _no_progress(items: Iterable[X], total: int) -> Iterable[X]:
    return items


def _process(path: Path) -> NDArray[np.float32] | SkippedSample:
    try:
        return read_ntu_sample(path)
    except CorruptSampleError as err:
        return SkippedSample(str(path), err.detail)


def _processed(
    paths: Sequence[Path], workers: int
) -> Iterator[NDArray[np.float32] | SkippedSample]:
    if workers <= 1:
        yield from map(_process, paths)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(_process, paths, chunksize=16)


@dataclass
class _SplitBuffer:
    """Processed sequences of one split, kept compact on disk until the padded length is known."""

    file: IO[bytes]
    names: list[str] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)


def _write_npy_member(archive: zipfile.ZipFile, key: str, array: NDArray[np.generic]) -> None:
    with archive.open(f"{key}.npy", "w", force_zip64=True) as member:
        np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)


def _write_padded_member(
    archive: zipfile.ZipFile, key: str, buffer: _SplitBuffer, frames: int
) -> None:
    width = 2 * NTU_JOINTS * 3
    header = {"descr": "<f4", "fortran_order": False, "shape": (len(buffer.lengths), frames, width)}
    buffer.file.seek(0)
    with archive.open(f"{key}.npy", "w", force_zip64=True) as member:
        np.lib.format.write_array_header_1_0(member, header)
        for length in buffer.lengths:
            row = np.zeros((frames, width), dtype="<f4")
            row[:length] = np.frombuffer(buffer.file.read(length * width * 4), dtype="<f4").reshape(
                length, width
            )
            member.write(row.tobytes())


def _one_hot(labels: list[int], classes: int) -> NDArray[np.float64]:
    out = np.zeros((len(labels), classes))  # float64, as the public scripts write it
    out[np.arange(len(labels)), labels] = 1.0
    return out


def prepare_ntu(
    raw: Path,
    out: Path,
    benchmark: str,
    missing: Path | None = None,
    *,
    workers: int = 1,
    progress: Progress[NDArray[np.float32] | SkippedSample] = _no_progress,
) -> NtuPrepareReport:
    """Parse, denoise, centre and pad every sample of ``benchmark`` and write ``out`` (.npz).

    Files named in ``missing`` (NTU's list of samples with missing skeletons) are skipped and
    counted; corrupt files are logged, skipped and listed in the report, never zero-filled.
    Besides ``x_train`` (N, 300, 150) float32, one-hot ``y_train``, ``x_test`` and ``y_test``
    the archive holds ``names_train`` and ``names_test`` (sample names, for subjects and views).
    """
    selection = select_ntu_files(raw, benchmark, missing)
    bench = selection.benchmark
    skipped = list(selection.ignored)
    out.parent.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryFile(dir=out.parent) as train_file,
        tempfile.TemporaryFile(dir=out.parent) as test_file,
    ):
        buffers = {"train": _SplitBuffer(train_file), "test": _SplitBuffer(test_file)}
        work = [(p, "train") for p in selection.train] + [(p, "test") for p in selection.test]
        results = progress(_processed([p for p, _ in work], workers), len(work))
        for (path, split), result in zip(work, results, strict=True):
            if isinstance(result, SkippedSample):
                log.warning("skipping %s: %s", path, result.reason)
                skipped.append(result)
                continue
            buffer = buffers[split]
            buffer.file.write(np.ascontiguousarray(result, dtype="<f4").tobytes())
            buffer.names.append(path.stem)
            buffer.labels.append(NtuName.parse(path.stem).action - 1)
            buffer.lengths.append(int(result.shape[0]))
        frames = max([PAD_FRAMES, *buffers["train"].lengths, *buffers["test"].lengths])
        partial = out.with_name(out.name + ".partial")
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
            for split, buffer in buffers.items():
                _write_padded_member(archive, f"x_{split}", buffer, frames)
                _write_npy_member(archive, f"y_{split}", _one_hot(buffer.labels, bench.num_classes))
                _write_npy_member(archive, f"names_{split}", np.array(buffer.names, dtype="U20"))
        shutil.move(partial, out)
    if selection.listed_missing:
        log.info("skipped %d samples listed as missing", len(selection.listed_missing))
    return NtuPrepareReport(
        bench.name,
        out,
        len(buffers["train"].lengths),
        len(buffers["test"].lengths),
        frames,
        len(selection.listed_missing),
        skipped,
    )


# --------------------------------------------------------------------------------------------
# Reading prepared npz files


def _labels(y: NDArray[Any], path: Path, key: str) -> NDArray[np.int64]:
    if y.ndim != 2:
        raise CorruptSampleError(
            path, f"expected a one-hot (N, classes) array, got {y.shape}", field=key
        )
    hot = y > 0
    counts = hot.sum(axis=1)
    bad = np.flatnonzero(counts != 1)
    if bad.size:
        raise CorruptSampleError(
            path,
            f"row {int(bad[0])} has {int(counts[bad[0]])} positive entries, expected 1",
            field=key,
        )
    return np.asarray(np.argmax(hot, axis=1), dtype=np.int64)


def _npz_split(
    archive: np.lib.npyio.NpzFile, path: Path, split: str, classes: int | None
) -> tuple[list[Sample], int]:
    x_key, y_key = f"x_{split}", f"y_{split}"
    for key in (x_key, y_key):
        if key not in archive.files:
            raise CorruptSampleError(path, f"no array {key!r} (has {archive.files})", field=key)
    x = archive[x_key]
    width = 2 * NTU_JOINTS * 3
    if x.ndim != 3 or x.shape[2] != width:
        raise WrongJointCountError(
            path,
            f"expected (N, frames, {width}) = 2 persons x 25 joints x xyz, got {x.shape}",
            field=x_key,
        )
    y = archive[y_key]
    labels = _labels(y, path, y_key)
    if len(labels) != len(x):
        raise CorruptSampleError(path, f"{len(x)} clips but {len(labels)} labels", field=y_key)
    if classes is not None and y.shape[1] != classes:
        raise CorruptSampleError(path, f"{y.shape[1]} classes, train has {classes}", field=y_key)
    for start in range(0, len(x), 1024):
        chunk = x[start : start + 1024]
        if not np.isfinite(chunk).all():
            row = start + int(np.flatnonzero(~np.isfinite(chunk).all(axis=(1, 2)))[0])
            raise CorruptSampleError(path, f"clip {row} holds NaN or inf", field=x_key)
    names_key = f"names_{split}"
    names = [str(n) for n in archive[names_key]] if names_key in archive.files else None
    clips = x.astype(np.float32, copy=False).reshape(len(x), x.shape[1], 2, NTU_JOINTS, 3)
    samples = []
    for i in range(len(x)):
        name = names[i] if names is not None else f"{split}_{i:06d}"
        parsed = NtuName.parse(name) if _NAME.fullmatch(name) else None
        samples.append(
            Sample(
                name=name,
                # (frames, persons, ...) -> (persons, frames, ...), a view: nothing is copied
                data=clips[i].transpose(1, 0, 2, 3),
                label=int(labels[i]),
                subject=parsed.performer if parsed else UNKNOWN_SUBJECT,
                view=parsed.camera if parsed else None,
            )
        )
    return samples, int(y.shape[1])


def class_names(num_classes: int) -> list[str]:
    if num_classes <= len(NTU_ACTIONS) and num_classes in (60, 120):
        return list(NTU_ACTIONS[:num_classes])
    return [f"class {i + 1}" for i in range(num_classes)]


def load_ntu_npz(path: Path, benchmark: str | None = None) -> SkeletonDataset:
    """Read an npz with ``x_train`` (N, T, 150), one-hot ``y_train``, ``x_test``, ``y_test``.

    Works for the files this module writes and for those of the public scripts (SGN, CTR-GCN,
    MAMP), whose clips keep their zero padding; the clip operations find the valid frames.
    """
    if not path.is_file():
        raise DatasetError(f"npz file {path} does not exist (make one with `masksem data prepare`)")
    with np.load(path, allow_pickle=False) as archive:
        train, classes = _npz_split(archive, path, "train", None)
        test, _ = _npz_split(archive, path, "test", classes)
    name = {60: "ntu60", 120: "ntu120"}.get(classes, path.stem)
    return SkeletonDataset(
        name=name,
        layout="ntu25",
        classes=class_names(classes),
        train=train,
        test=test,
        skipped=[],
        benchmark=benchmark or path.stem,
    )
