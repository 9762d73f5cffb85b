"""Skeleton messages <-> joint arrays: masksem_msgs/SkeletonArray and the Azure Kinect / Orbbec
``body_tracking_data`` MarkerArray (marker id = body * 100 + joint, k4a32 joints, metres).

Parsing never raises on a malformed body: it skips that body and says what and where.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point
from masksem_msgs.msg import Skeleton, SkeletonArray
from numpy.typing import NDArray
from std_msgs.msg import Header
from visualization_msgs.msg import Marker, MarkerArray

from skeleton.layouts import LAYOUTS, get_layout

#: The Azure Kinect ROS driver's marker ids: body id * MARKER_ID_STRIDE + joint index.
MARKER_ID_STRIDE = 100
MARKER_LAYOUT = "k4a32"
#: Where the inputs are published by default: ours under REP 155's /humans, and the topic the
#: Azure Kinect and Orbbec drivers publish relative to their namespace.
DEFAULT_INPUT_TOPICS = {"skeleton_array": "/humans/skeletons", "marker_array": "body_tracking_data"}


@dataclass(frozen=True)
class BodyFrame:
    """One body in one frame: ``joints`` is float32 ``(V, 3)`` in ``layout``'s order and axes."""

    tracker_id: str
    layout: str
    joints: NDArray[np.float32]


@dataclass
class ParsedFrame:
    """The bodies of one input message, the parts that were skipped, and why."""

    stamp_ns: int
    frame_id: str
    bodies: list[BodyFrame] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    clear_all: bool = False  # a DELETEALL marker: the tracker dropped every body


def time_to_ns(stamp: Time) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def ns_to_time(ns: int) -> Time:
    sec, nanosec = divmod(int(ns), 1_000_000_000)
    return Time(sec=sec, nanosec=nanosec)


def _points_array(points: list[Point]) -> NDArray[np.float64]:
    return np.array([(p.x, p.y, p.z) for p in points], dtype=np.float64).reshape(-1, 3)


def _first_non_finite(joints: NDArray[np.float64], layout: str) -> str | None:
    bad = np.argwhere(~np.isfinite(joints))
    if bad.size == 0:
        return None
    joint = int(bad[0, 0])
    return f"non-finite coordinate at joint {joint} ({get_layout(layout).joints[joint]})"


def parse_skeleton_array(msg: SkeletonArray) -> ParsedFrame:
    """The bodies of a canonical SkeletonArray, checked against their layouts."""
    frame = ParsedFrame(stamp_ns=time_to_ns(msg.header.stamp), frame_id=msg.header.frame_id)
    seen: set[str] = set()
    for i, skel in enumerate(msg.skeletons):
        where = f"skeletons[{i}] (body_id {skel.body_id!r})"
        problem = _skeleton_problem(skel, seen)
        if problem is not None:
            frame.problems.append(f"{where}: {problem}; body skipped")
            continue
        joints = _points_array(skel.joints)
        non_finite = _first_non_finite(joints, skel.layout)
        if non_finite is not None:
            frame.problems.append(f"{where}: {non_finite}; body skipped")
            continue
        seen.add(skel.body_id)
        frame.bodies.append(BodyFrame(skel.body_id, skel.layout, joints.astype(np.float32)))
    return frame


def _skeleton_problem(skel: Skeleton, seen: set[str]) -> str | None:
    if not skel.body_id:
        return "empty body_id"
    if skel.body_id in seen:
        return "body_id repeated within one message"
    if skel.layout not in LAYOUTS:
        return f"unknown layout {skel.layout!r} (known: {', '.join(sorted(LAYOUTS))})"
    joints = get_layout(skel.layout).num_joints
    if len(skel.joints) != joints:
        return f"layout {skel.layout} has {joints} joints, the message has {len(skel.joints)}"
    if len(skel.confidence) not in (0, joints):
        return f"{len(skel.confidence)} confidence values for {joints} joints (give 0 or one each)"
    return None


def parse_marker_array(msg: MarkerArray) -> ParsedFrame:
    """The bodies of a ``body_tracking_data`` MarkerArray; each must carry all its 32 joints."""
    layout = get_layout(MARKER_LAYOUT)
    added = [m for m in msg.markers if m.action == Marker.ADD]
    stamp = time_to_ns(added[0].header.stamp) if added else 0
    frame = ParsedFrame(stamp_ns=stamp, frame_id=added[0].header.frame_id if added else "")
    frame.clear_all = any(m.action == Marker.DELETEALL for m in msg.markers)
    bodies: dict[int, dict[int, Marker]] = {}
    for i, marker in enumerate(msg.markers):
        if marker.action != Marker.ADD:
            continue
        body, joint = divmod(marker.id, MARKER_ID_STRIDE)
        if marker.id < 0 or joint >= layout.num_joints:
            frame.problems.append(
                f"markers[{i}]: id {marker.id} is not body * {MARKER_ID_STRIDE} + joint "
                f"(joint < {layout.num_joints}); marker skipped"
            )
            continue
        joints = bodies.setdefault(body, {})
        if joint in joints:
            frame.problems.append(
                f"markers[{i}]: body {body} joint {joint} repeated; kept the first"
            )
            continue
        joints[joint] = marker
    for body, joints in bodies.items():
        where = f"marker body {body}"
        missing = sorted(set(range(layout.num_joints)) - joints.keys())
        if missing:
            names = ", ".join(layout.joints[j] for j in missing[:4])
            more = f" and {len(missing) - 4} more" if len(missing) > 4 else ""
            frame.problems.append(f"{where}: missing joint(s) {names}{more}; body skipped")
            continue
        points = _points_array([joints[j].pose.position for j in range(layout.num_joints)])
        non_finite = _first_non_finite(points, MARKER_LAYOUT)
        if non_finite is not None:
            frame.problems.append(f"{where}: {non_finite}; body skipped")
            continue
        frame.bodies.append(BodyFrame(str(body), MARKER_LAYOUT, points.astype(np.float32)))
    return frame


def _points(joints: NDArray[np.floating]) -> list[Point]:
    return [Point(x=float(x), y=float(y), z=float(z)) for x, y, z in joints]


def skeleton_array_message(
    bodies: Mapping[str, NDArray[np.floating]], layout: str, stamp_ns: int, frame_id: str
) -> SkeletonArray:
    """A SkeletonArray holding ``bodies`` (body id -> ``(V, 3)`` joints of ``layout``)."""
    header = Header(stamp=ns_to_time(stamp_ns), frame_id=frame_id)
    skeletons = [
        Skeleton(body_id=body_id, layout=layout, joints=_points(joints))
        for body_id, joints in bodies.items()
    ]
    return SkeletonArray(header=header, skeletons=skeletons)


def marker_array_message(
    bodies: Mapping[int, NDArray[np.floating]], stamp_ns: int, frame_id: str
) -> MarkerArray:
    """A MarkerArray as the Azure Kinect ROS driver publishes it (one sphere per k4a32 joint)."""
    header = Header(stamp=ns_to_time(stamp_ns), frame_id=frame_id)
    markers = []
    for body, joints in bodies.items():
        for joint, (x, y, z) in enumerate(joints):
            marker = Marker(header=header, id=body * MARKER_ID_STRIDE + joint)
            marker.type, marker.action = Marker.SPHERE, Marker.ADD
            marker.pose.position = Point(x=float(x), y=float(y), z=float(z))
            marker.pose.orientation.w = 1.0
            marker.scale.x = marker.scale.y = marker.scale.z = 0.05
            marker.color.r, marker.color.a = 1.0, 1.0
            marker.lifetime.nanosec = 250_000_000  # the driver's 0.25 s
            markers.append(marker)
    return MarkerArray(markers=markers)
