"""NTU RGB+D sample names (``S001C002P003R002A013``), the four published benchmarks that split
them, and the 120 action names."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from training.data.errors import DatasetError

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


NAME_PATTERN = re.compile(r"S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})")


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
        match = NAME_PATTERN.fullmatch(name)
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


def class_names(num_classes: int) -> list[str]:
    if num_classes <= len(NTU_ACTIONS) and num_classes in (60, 120):
        return list(NTU_ACTIONS[:num_classes])
    return [f"class {i + 1}" for i in range(num_classes)]
