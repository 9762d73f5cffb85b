"""The raw NTU RGB+D ``.skeleton`` text format: a parser that names the file, line and field of
anything wrong, into the bodies of a file and their joints over time."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from training.data.errors import (
    CorruptSampleError,
    EmptySequenceError,
    MalformedLineError,
    TruncatedFileError,
    WrongJointCountError,
)
from training.data.reading import parse_floats, parse_int

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

    def fields(what: str, names: tuple[str, ...], field_name: str) -> list[str]:
        """The next line, which must hold one token per name of ``names``."""
        tokens = next_tokens(what)
        if len(tokens) != len(names):
            raise MalformedLineError(
                path,
                f"{what} has {len(tokens)} fields, expected {len(names)}",
                line=pos,
                field=field_name,
            )
        return tokens

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
            info = fields(f"the info line of {body_where}", BODY_FIELDS, "body info")
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
                tokens = fields(f"joint {j + 1} of {body_where}", JOINT_FIELDS, f"joint {j + 1}")
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
