"""How selective each CAM rule is: the share of part-segments MaskSem's teacher marks salient
under every ``cam:`` rule, for trained teachers (pre-trained encoders) and untrained ones (fresh
initialisations of the same architecture), on real training clips in training batches.

    python -m benchmarks.cam_share --encoder models/utd-masksem.encoder.pt \
        --encoder runs/pku_tiny/checkpoint.pt [--batches 12] [--untrained-seeds 0 1 2]

Each encoder file carries its recipe: its data section says which clips (the training split of
its dataset, as trimmed clips: for a recipe pre-trained on streams, the dataset's trimmed
instances) and how they are windowed (the training augmentation, a fixed seed). Per rule:
``segments``, the share of part-segments marked salient (score > 0; what the issue reports);
``tokens``, the same per token; ``motion_ratio``, the mean MAMP motion score of the salient
part-segments over that of all (above 1: the rule marks the moving parts); ``overlap_same`` and
``overlap_other``, the mean intersection over union of the salient part-segments of two persons
of one batch from different clips of the same action class, and of different classes. A map
that separates actions marks alike within a class and unlike across classes (same above other);
overlaps near those of random sets of the same share (about s / (2 - s) for a share s) mean the
selection says little about the clip. Means over batches, with their spread.
"""

from __future__ import annotations

import argparse
import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, get_args

import numpy as np
import torch
from torch import Tensor

from benchmarks.report import publish
from skeleton.layouts import get_layout
from training.checkpoints import EncoderCheckpoint
from training.data.feeder import SkeletonFeeder
from training.model.config import CamMode, ModelConfig
from training.model.encoder import Encoder
from training.model.masking import motion_aware_scores
from training.model.teacher import Teacher, grad_cam, part_pool
from training.model.tokens import patchify
from training.recipes.common import DataConfig, load_data

RESULTS = Path(__file__).parent / "results"
RULES: tuple[CamMode, ...] = get_args(CamMode)


def pair_overlaps(salient: Tensor, labels: Tensor, clip_ids: Tensor) -> tuple[float, float]:
    """Mean IoU of the salient sets (rows of ``salient``, (B, S) bool) of pairs of rows from
    different clips: (same class, different classes); NaN where a batch has no such pair."""
    s = salient.float()
    inter = s @ s.T
    union = s.sum(1, keepdim=True) + s.sum(1)[None, :] - inter
    iou = torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(inter))
    other_clip = clip_ids[:, None] != clip_ids[None, :]
    same = (labels[:, None] == labels[None, :]) & other_clip
    different = (labels[:, None] != labels[None, :]) & other_clip
    mean = [float(iou[m].mean()) if m.any() else float("nan") for m in (same, different)]
    return mean[0], mean[1]


@torch.no_grad()
def rule_stats(
    teacher: Teacher, batches: list[tuple[Tensor, Tensor]], share: float
) -> dict[str, dict[str, Any]]:
    teacher.share = share
    cfg = teacher.encoder.cfg
    per_rule: dict[str, dict[str, list[float]]] = {r: {} for r in RULES}
    for clips, clip_labels in batches:
        y, anchor = teacher.features(clips)
        signed = grad_cam(y, anchor, relu=False).flatten(0, 1)
        persons = clips.flatten(0, 1)
        present = persons.flatten(1).abs().sum(1) > 0  # absent second persons say nothing
        m = clips.shape[1]
        labels = clip_labels.repeat_interleave(m)[present]
        clip_ids = torch.arange(clips.shape[0]).repeat_interleave(m)[present]
        motion = part_pool(motion_aware_scores(patchify(persons, cfg.patch)), teacher.part_average)
        motion = motion[..., teacher.part_heads][present]
        for rule in RULES:
            scores = teacher.scores(signed, rule)
            segments = scores[..., teacher.part_heads][present] > 0
            same, other = pair_overlaps(segments.flatten(1), labels, clip_ids)
            stats = {
                "segments": float(segments.float().mean()),
                "tokens": float((scores[present] > 0).float().mean()),
                "motion_ratio": float(motion[segments].mean() / motion.mean()),
                "overlap_same": same,
                "overlap_other": other,
            }
            for key, value in stats.items():
                per_rule[rule].setdefault(key, []).append(value)
    return {
        rule: {k: round(float(np.nanmean(v)), 4) for k, v in values.items()}
        | {f"{k}_spread": round(float(np.nanstd(v)), 4) for k, v in values.items()}
        for rule, values in per_rule.items()
    }


def training_batches(
    data_cfg: DataConfig, batch: int, count: int, seed: int
) -> list[tuple[Tensor, Tensor]]:
    """``count`` random batches of the training split (clips, labels), augmented as in
    training."""
    data = load_data(data_cfg)
    feeder = SkeletonFeeder(data.train, data_cfg.window(data.layout), train=True, seed=seed)
    order = np.random.default_rng(seed).permutation(len(feeder))[: batch * count]
    items = [feeder[int(i)] for i in order]
    return [
        (
            torch.stack([clip for clip, _ in items[i : i + batch]]),
            torch.tensor([label for _, label in items[i : i + batch]]),
        )
        for i in range(0, len(items) - batch + 1, batch)
    ]


def measure(path: Path, args: argparse.Namespace, measured: set[str]) -> list[dict[str, Any]]:
    """Rows of the trained teacher of ``path``, and of untrained ones unless an earlier encoder
    of ``measured`` had the same data and architecture."""
    meta, weights = EncoderCheckpoint.read(path)
    recipe = meta.recipe
    data_cfg = DataConfig.model_validate(recipe["data"])
    model = ModelConfig.model_validate({**meta.model.model_dump(), "drop_path": 0.0})
    key = data_cfg.model_dump_json() + model.model_dump_json()
    batches = training_batches(data_cfg, args.batch, args.batches, seed=0)
    parts = get_layout(meta.layout).parts
    teachers: list[tuple[str, Encoder]] = []
    trained = Encoder(model)
    trained.load_state_dict({k: v for k, v in weights.items() if k in trained.state_dict()})
    teachers.append((f"trained ({meta.epochs} epochs)", trained))
    for seed in [] if key in measured else args.untrained_seeds:
        torch.manual_seed(seed)
        teachers.append((f"untrained (seed {seed})", Encoder(model)))
    measured.add(key)
    rows = []
    for name, encoder in teachers:
        teacher = Teacher(encoder, parts)
        for rule, stats in rule_stats(teacher, batches, args.share).items():
            rows.append({
                "encoder": str(path), "recipe": recipe.get("name"), "dataset": data_cfg.dataset,
                "layout": meta.layout, "teacher": name, "cam": rule,
                "cam_share": args.share if rule == "top" else None,
                "clips": sum(len(b) for b in batches), **stats,
            })  # fmt: skip
        print(f"{path} {name}: " + ", ".join(
            f"{r['cam']} {r['segments']:.2f}" for r in rows if r["teacher"] == name
            and r["encoder"] == str(path)))  # fmt: skip
    return rows


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "## How selective each CAM rule is",
        "",
        f"Share of part-segments MaskSem's teacher marks salient under each `cam:` rule, on "
        f"{result['batches']} training batches of {result['batch']} real clips (training "
        f"augmentation), {result['date']}, {result['machine']}. `top` marks a share of "
        f"{result['share']}. Motion ratio: mean MAMP motion score of the salient part-segments "
        "over that of all. Overlap: mean IoU of the salient part-segments of two persons of a "
        "batch from different clips of the same class, and of different classes (random sets "
        "of share s give about s / (2 - s)). Reproduce: `" + result["command"] + "`.",
        "",
        "| encoder | teacher | cam | salient segments | salient tokens | motion ratio "
        "| overlap same class | overlap other class |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['recipe']} ({r['dataset']}) | {r['teacher']} | {r['cam']} | "
            f"{r['segments']:.3f} ± {r['segments_spread']:.3f} | {r['tokens']:.3f} | "
            f"{r['motion_ratio']:.2f} | {r['overlap_same']:.2f} | {r['overlap_other']:.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", type=Path, action="append", required=True)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--batches", type=int, default=12)
    parser.add_argument("--share", type=float, default=0.3)
    parser.add_argument("--untrained-seeds", type=int, nargs="*", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    measured: set[str] = set()
    rows = [row for path in args.encoder for row in measure(path, args, measured)]
    encoders = " ".join(f"--encoder {p}" for p in args.encoder)
    result = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads",
        "command": f"python -m benchmarks.cam_share {encoders} --batches {args.batches}",
        "batch": args.batch,
        "batches": args.batches,
        "share": args.share,
        "rows": rows,
    }
    publish("cam_share", result, RESULTS / "cam_share.json", markdown(result))


if __name__ == "__main__":
    main()
