"""ROS4HRI (REP 155) body ids: 5 lower-case letters, derived deterministically from a tracker id.

A tracker's own ids ("1", "2", ...) cannot name topics (a ROS name token cannot start with a
digit), and REP 155 asks for short random-looking ids; hashing keeps them stable across runs.
"""

from __future__ import annotations

import hashlib
import re
import string

ID_LENGTH = 5

# A ROS 2 topic name token: a letter, then letters, digits or single underscores, no trailing one.
_ROS_TOKEN = re.compile(r"[A-Za-z](?:[A-Za-z0-9]|_(?=[A-Za-z0-9]))*")


def is_ros_name_token(text: str) -> bool:
    """True when ``text`` can stand between two slashes of a ROS 2 topic name."""
    return _ROS_TOKEN.fullmatch(text) is not None


def derived_body_id(tracker_id: str | int) -> str:
    """The 5-letter REP 155 body id for a tracker's id; the same tracker id gives the same one."""
    digest = int.from_bytes(hashlib.blake2b(str(tracker_id).encode(), digest_size=8).digest())
    letters = []
    for _ in range(ID_LENGTH):
        digest, rest = divmod(digest, 26)
        letters.append(string.ascii_lowercase[rest])
    return "".join(letters)


def body_id_for(tracker_id: str | int) -> str:
    """Keep an id that is already a valid name token (a REP 155 id), derive one otherwise."""
    text = str(tracker_id)
    return text if is_ros_name_token(text) else derived_body_id(text)
