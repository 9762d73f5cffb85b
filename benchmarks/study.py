"""Does MaskSem pay off? The real-data study of issue 4 on UTD-MHAD (cross-subject) and NW-UCLA
(cross-view), several seeds each: from-scratch supervised; MAMP and MaskSem pre-training, each
followed by linear evaluation, fine-tuning and 10 % semi-supervised fine-tuning.

Equal budgets, paired by seed: one MAMP stage (``--stage1-epochs``) is shared, then every arm
trains ``--stage2-epochs`` more from it with the same schedule, differing only in masking and
target: ``mamp`` keeps motion-aware masking and the velocity target; ``masksem`` switches to
semantic-guided masking and the hybrid target. With ``--ablations`` three more arms (semantic
masking alone, the hybrid target alone, the continuous CAM) and the shared stage itself get a
linear evaluation, to tell which ingredient moves the result. The fine-tuning epochs and shear
may differ per dataset (``--finetune-epochs 30 utd=100``); each classification run's folder is
named by its budget (``masksem-finetune-100ep-shear0.3``). Every run resumes, and a finished
run is read back, so re-running the command (or running seeds in parallel processes, then once
more over all of them) only does what is missing. Rows go to benchmarks/results/study.json, the
tables and plot to RESULTS.md.

    python -m benchmarks.study                           # the full study (about 5 h on 2 cores)
    python -m benchmarks.study --datasets utd --seeds 0 --stage1-epochs 4 --stage2-epochs 2 \\
        --finetune-epochs 2 --semi-epochs 2 --linear-epochs 2 --runs runs/study-smoke  # smoke test
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from benchmarks.nn_floor import subset_floors
from benchmarks.report import publish
from training.config_io import load_config
from training.data.registry import load_dataset
from training.distributed import DistContext
from training.loop import LoopConfig, recipe_changes
from training.recipes.classify import CLASSIFIER_NAME, ClassifyRecipe, run_classify
from training.recipes.plots import plt  # type: ignore[attr-defined]
from training.recipes.pretrain import PretrainRecipe, run_pretrain

RESULTS = Path(__file__).parent / "results"
# key: (dataset, benchmark, nearest-neighbour floor of ../shared/data/README.md)
DATASETS = {"utd": ("utd-mhad", "xsub", 0.851), "nwucla": ("nw-ucla", "xview", 0.537)}
SEMI_FRACTION = 0.1  # the semi-supervised rows' share of the training labels
CPU = DistContext(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
# stage-2 arms: masking, target orders, CAM mode
ARMS: dict[str, dict[str, Any]] = {
    "mamp": {"masking": "motion", "orders": (1,), "cam": "binary"},
    "masksem": {"masking": "semantic", "orders": (1, 2), "cam": "binary"},
}
ABLATIONS: dict[str, dict[str, Any]] = {
    "semantic-masking-only": {"masking": "semantic", "orders": (1,), "cam": "binary"},
    "hybrid-target-only": {"masking": "motion", "orders": (1, 2), "cam": "binary"},
    "masksem-continuous-cam": {"masking": "semantic", "orders": (1, 2), "cam": "continuous"},
}


def per_dataset(cast: Callable[[str], float]) -> Callable[[str], tuple[str, float]]:
    """An argparse type: ``30`` sets every dataset's value, ``utd=100`` one dataset's."""

    def parse(text: str) -> tuple[str, float]:
        key, _, value = text.rpartition("=")
        if key and key not in DATASETS:
            raise argparse.ArgumentTypeError(f"{key!r} is not one of {', '.join(DATASETS)}")
        return key, cast(value)

    return parse


def by_dataset(pairs: list[tuple[str, float]], default: dict[str, float]) -> dict[str, float]:
    """{"": the value for every dataset, key: one dataset's own value}. A value without a key
    replaces the default whole; later pairs win."""
    given = dict(pairs)
    return ({} if "" in given else default) | given


def show(values: dict[str, float]) -> str:
    """The command-line form of a by_dataset dict: ``30 utd=100``."""
    return " ".join(f"{k}={v:g}" if k else f"{v:g}" for k, v in values.items())


def in_words(values: dict[str, float]) -> str:
    """A by_dataset dict for the table's text: ``30 (utd-mhad: 100)``."""
    own = [f"{DATASETS[k][0]}: {v:g}" for k, v in values.items() if k]
    return f"{values['']:g}" + (f" ({', '.join(own)})" if own else "")


FINE_TUNING = ("finetune", "semi")  # the stages that take --max-shear, as the recipes do


class Budget:
    """Epochs per stage and the window length; the recipes' warm-ups scale with their epochs.
    The fine-tuning epochs and shear may differ per dataset (``--finetune-epochs 30 utd=100``)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.frames: int = args.frames
        self.threads: int = args.threads
        self.max_shear: dict[str, float] = args.max_shear
        self.epochs: dict[str, dict[str, float]] = {
            "stage1": {"": args.stage1_epochs},
            "stage2": {"": args.stage2_epochs},
            "finetune": args.finetune_epochs,
            "linear": {"": args.linear_epochs},
            "semi": args.semi_epochs,
        }

    def epochs_of(self, key: str, stage: str) -> int:
        values = self.epochs[stage]
        return int(values.get(key, values[""]))

    def shear_of(self, key: str, stage: str) -> float:
        return self.max_shear.get(key, self.max_shear[""]) if stage in FINE_TUNING else 0.0

    def tag(self, key: str, stage: str) -> str:
        """The run folder suffix of a classification stage: its epochs, and shear when on."""
        shear = self.shear_of(key, stage)
        return f"{self.epochs_of(key, stage)}ep" + (f"-shear{shear:g}" if shear else "")

    def loop(self, loop: LoopConfig, key: str, stage: str, seed: int) -> LoopConfig:
        epochs = self.epochs_of(key, stage)
        warmup = round(loop.warmup_epochs * epochs / loop.epochs)
        return loop.model_copy(
            update={"epochs": epochs, "warmup_epochs": warmup, "seed": seed}
            | {"threads": self.threads}
        )

    def window(self, recipe: Any, key: str, stage: str, seed: int, **fields: Any) -> Any:
        shear = self.shear_of(key, stage)
        return recipe.model_copy(
            update={
                "data": recipe.data.model_copy(update={"frames": self.frames, "max_shear": shear}),
                "model": recipe.model.model_copy(update={"frames": self.frames}),
                "loop": self.loop(recipe.loop, key, stage, seed),
                **fields,
            }
        )


def pretrain(
    key: str, arms: dict[str, dict[str, Any]], seed: int, out: Path, budget: Budget
) -> dict[str, Path]:
    """The shared MAMP stage, then each arm from it; returns {arm: checkpoint}."""
    first = budget.window(load_config(f"{key}_mamp", PretrainRecipe), key, "stage1", seed)
    stage1 = run_pretrain(first, out / "stage1", CPU)
    second = load_config(f"{key}_masksem", PretrainRecipe)
    checkpoints = {"stage1": stage1}
    for arm, spec in arms.items():
        targets = {"orders": spec["orders"], "cam": spec["cam"]}
        recipe = budget.window(
            second,
            key,
            "stage2",
            seed,
            name=f"{second.name}-{arm}",
            masking=spec["masking"],
            pretrain=second.pretrain.model_copy(update=targets),
            init=second.init.model_copy(update={"recipe": None, "checkpoint": stage1}),
        )
        checkpoints[arm] = run_pretrain(recipe, out / arm, CPU)
    return checkpoints


def classify(
    key: str,
    kind: str,
    seed: int,
    name: Path,
    budget: Budget,
    stage: str | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A linear or fine-tuning run with the epochs (and shear) of ``stage`` (default: ``kind``)
    in the folder ``name-<budget tag>``; a finished run with the same recipe is read back."""
    stage = stage or kind
    out = name.with_name(f"{name.name}-{budget.tag(key, stage)}")
    pretrained = fields.pop("pretrained", None)
    base = load_config(
        f"{key}_{kind}", ClassifyRecipe, [f"pretrained={pretrained}"] if pretrained else []
    )
    recipe = budget.window(base, key, stage, seed, fraction_seed=seed, **fields)
    return read_back_or_run(recipe, out)


def read_back_or_run(recipe: ClassifyRecipe, out: Path) -> dict[str, Any]:
    """The metrics of the finished run in ``out`` if it ran this recipe, else run (or resume)."""
    done = out / "metrics.json"
    if done.exists() and (out / CLASSIFIER_NAME).exists():
        metrics: dict[str, Any] = json.loads(done.read_text())
        current = json.loads(recipe.model_dump_json())
        if current["fps"] is None:  # the data's own rate, which the finished run resolved
            current["fps"] = metrics["config"].get("fps")
        if not recipe_changes(metrics["config"], current):
            return metrics
    return run_classify(recipe, out, CPU)


def epoch_values(run: Path, key: str) -> list[float]:
    """One logged value per epoch of a run, from its history.json (epochs without ``key`` left
    out: the CAM's ``salient_share`` and ``salient_segments`` exist only under semantic
    masking)."""
    history = json.loads((run / "history.json").read_text())
    return [row[key] for row in history if key in row]


def salient_share(run: Path, key: str = "salient_share") -> tuple[float, float] | None:
    """First- and last-epoch share the CAM marks salient (``key``: ``salient_share`` of the
    tokens, ``salient_segments`` of the part-segments)."""
    shares = epoch_values(run, key)
    return (shares[0], shares[-1]) if shares else None


def study(args: argparse.Namespace) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    budget = Budget(args)
    runs: list[tuple[str, int, str, str, dict[str, Any]]] = []  # key, seed, protocol, method
    cam = []
    for key in args.datasets:
        ablate = key in args.ablations
        for seed in args.seeds:
            base = args.runs / key / f"seed{seed}"
            scratch = classify(key, "finetune", seed, base / "scratch", budget)
            runs.append((key, seed, "finetune", "scratch", scratch))
            arms = {**ARMS, **(ABLATIONS if ablate else {})}
            ckpts = pretrain(key, arms, seed, base / "pretrain", budget)
            for arm, ckpt in ckpts.items():
                if arm in ARMS or ablate:
                    out = base / f"{arm}-linear"
                    linear = classify(key, "linear", seed, out, budget, pretrained=ckpt)
                    runs.append((key, seed, "linear", arm, linear))
                share = salient_share(ckpt.parent)
                if share is not None:
                    cam.append(
                        {
                            "dataset": DATASETS[key][0],
                            "arm": arm,
                            "seed": seed,
                            "first": share[0],
                            "last": share[1],
                        }  # fmt: skip
                    )
            for arm in ARMS:
                for protocol, stage, extra in (
                    ("finetune", "finetune", {}),
                    ("semi10", "semi", {"label_fraction": SEMI_FRACTION}),
                ):
                    out = base / f"{arm}-{protocol}"
                    tuned = classify(
                        key, "finetune", seed, out, budget, stage, pretrained=ckpts[arm], **extra
                    )
                    runs.append((key, seed, protocol, arm, tuned))
    rows = [
        {
            "dataset": DATASETS[key][0],
            "benchmark": DATASETS[key][1],
            "protocol": protocol,
            "method": method,
            "seed": seed,
            "top1": m["top1"],
            "top5": m["top5"],
        }  # fmt: skip
        for key, seed, protocol, method, m in runs
    ]
    return rows, cam


def mean_sd(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else float("nan")
    return f"{statistics.mean(values):.3f} ± {sd:.3f}"


def semi_floors(args: argparse.Namespace) -> dict[str, dict[int, float]]:
    """{dataset: {seed: the nearest-neighbour floor with only that seed's labelled subset}}."""
    floors = {}
    for key in args.datasets:
        name, benchmark, _ = DATASETS[key]
        data = load_dataset(name, None, benchmark)
        floors[name] = dict(
            zip(args.seeds, subset_floors(data, SEMI_FRACTION, args.seeds), strict=True)
        )
    return floors


def table(
    rows: list[dict[str, Any]],
    cam: list[dict[str, Any]],
    semi: dict[str, dict[int, float]],
    args: argparse.Namespace,
) -> str:
    groups: dict[tuple[str, str, str], list[tuple[int, float]]] = {}
    for r in rows:
        groups.setdefault((r["dataset"], r["protocol"], r["method"]), []).append(
            (r["seed"], r["top1"])
        )
    readme = {name: nn for name, _, nn in DATASETS.values()}

    def floor(dataset: str, protocol: str, seed: int) -> float:
        return semi[dataset][seed] if protocol == "semi10" else readme[dataset]

    lines = [
        "## The real-data study: MAMP vs MaskSem",
        "",
        f"Test top-1, mean ± standard deviation over seeds {args.seeds}. Budget: "
        f"{args.frames}-frame windows; a shared MAMP stage of {args.stage1_epochs} epochs, then "
        f"{args.stage2_epochs} epochs per arm from it (MAMP: motion-aware masking + velocity; "
        f"MaskSem: semantic-guided masking + hybrid target); fine-tuning (also from scratch) "
        f"{in_words(args.finetune_epochs)} epochs, on 10 % of the labels "
        f"{in_words(args.semi_epochs)} epochs, both with a random shear of "
        f"{in_words(args.max_shear)}; linear evaluation {args.linear_epochs} epochs; otherwise "
        "the small CPU recipes in "
        "training/configs. Floor: the nearest-neighbour classifier of `../shared/data/README.md`"
        "; for the 10 % rows, the same classifier with only each seed's labelled subset as "
        f"neighbours (`benchmarks/nn_floor.py`). Reproduce: `{args.command}`.",
        "",
        "| dataset | protocol | method | seeds | top-1 | NN floor | beats floor |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for (dataset, protocol, method), runs in sorted(groups.items()):
        floors = [floor(dataset, protocol, seed) for seed, _ in runs]
        beats = all(v > f for (_, v), f in zip(runs, floors, strict=True))
        shown = f"{floors[0]:.3f}" if len(set(floors)) == 1 else mean_sd(floors)
        lines.append(
            f"| {dataset} | {protocol} | {method} | {len(runs)} | {mean_sd([v for _, v in runs])} "
            f"| {shown} | {'yes' if beats else 'no'} |"
        )
    lines += ["", "Paired by seed (a seed's arms share their first stage): MaskSem minus MAMP.", ""]
    lines += ["| dataset | protocol | difference in top-1 |", "| --- | --- | --- |"]
    for dataset, protocol in sorted({(d, p) for d, p, m in groups if m == "masksem"}):
        by_seed = {
            (r["method"], r["seed"]): r["top1"]
            for r in rows
            if r["dataset"] == dataset and r["protocol"] == protocol
        }
        diffs = [v - by_seed[("mamp", s)] for (m, s), v in by_seed.items() if m == "masksem"]
        lines.append(f"| {dataset} | {protocol} | {mean_sd(diffs)} |")
    if cam:
        lines += ["", "Share of part-segments the CAM marks salient, first and last epoch:", ""]
        lines += ["| dataset | arm | first epoch | last epoch |", "| --- | --- | --- | --- |"]
        shares: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for c in cam:
            shares.setdefault((c["dataset"], c["arm"]), []).append((c["first"], c["last"]))
        for (dataset, arm), pairs in sorted(shares.items()):
            lines.append(
                f"| {dataset} | {arm} | {mean_sd([p[0] for p in pairs])} | "
                f"{mean_sd([p[1] for p in pairs])} |"
            )
    lines += ["", "![study](results/study.png)"]
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], floor: dict[str, float], path: Path) -> None:
    """Test top-1 per (protocol, method), one panel per dataset: the seeds' mean as a bar, each
    seed as a dot, the dataset's nearest-neighbour floor as a line."""
    datasets = sorted({r["dataset"] for r in rows})
    fig, axes = plt.subplots(1, len(datasets), figsize=(7 * len(datasets), 4.5), squeeze=False)
    for ax, dataset in zip(axes[0], datasets, strict=True):
        subset = [r for r in rows if r["dataset"] == dataset]
        labels = sorted({f"{r['protocol']}\n{r['method']}" for r in subset})
        for i, label in enumerate(labels):
            values = [r["top1"] for r in subset if f"{r['protocol']}\n{r['method']}" == label]
            ax.bar(i, statistics.mean(values), alpha=0.3, color="tab:blue")
            ax.scatter([i] * len(values), values, color="tab:blue", s=12)
        ax.axhline(floor[dataset], color="tab:red", linestyle="--", label="nearest-neighbour floor")
        ax.set_xticks(range(len(labels)), labels, fontsize=6, rotation=90)
        ax.set_ylabel("test top-1")
        ax.set_title(dataset)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The study's options; the per-dataset ones become by_dataset dicts and ``command`` is the
    one line that reproduces the run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--frames", type=int, default=32, help="window length of every run")
    parser.add_argument("--stage1-epochs", type=int, default=45)
    parser.add_argument("--stage2-epochs", type=int, default=15)
    # the budget of the published table: UTD-MHAD fine-tunes as long as its shipped recipe, with
    # its shear, and its 43-clip 10 % subsets get about as many optimiser steps as all labels
    per_dataset_options = (
        ("--finetune-epochs", int, {"": 30, "utd": 100}, "fine-tuning epochs, also from scratch"),
        ("--max-shear", float, {"": 0.0, "utd": 0.3},
         "shear of the fine-tuning runs; pre-training and linear evaluation never shear"),
        ("--semi-epochs", int, {"": 30, "utd": 300}, "fine-tuning epochs on the 10 %% subsets"),
    )  # fmt: skip
    for flag, cast, default, text in per_dataset_options:
        parser.add_argument(
            flag,
            nargs="+",
            type=per_dataset(cast),
            default=list(default.items()),
            help=f"{text}: V for every dataset, KEY=V for one (default: {show(default)})",
        )
    parser.add_argument("--linear-epochs", type=int, default=100)
    parser.add_argument("--ablations", nargs="*", default=["utd"], choices=list(DATASETS))
    parser.add_argument("--threads", type=int, default=2, help="torch threads per process")
    parser.add_argument("--runs", type=Path, default=Path("runs/study"))
    parser.add_argument("--no-publish", action="store_true", help="train only (partial runs)")
    args = parser.parse_args(argv)
    for flag, _, default, _ in per_dataset_options:
        name = flag.removeprefix("--").replace("-", "_")
        setattr(args, name, by_dataset(getattr(args, name), default))
    args.command = (
        f"python -m benchmarks.study --datasets {' '.join(args.datasets)} --seeds "
        f"{' '.join(map(str, args.seeds))} --frames {args.frames} --stage1-epochs "
        f"{args.stage1_epochs} --stage2-epochs {args.stage2_epochs} --finetune-epochs "
        f"{show(args.finetune_epochs)} --linear-epochs {args.linear_epochs} --semi-epochs "
        f"{show(args.semi_epochs)} --max-shear {show(args.max_shear)} --ablations "
        f"{' '.join(args.ablations)}"
    )
    return args


def main() -> None:
    args = parse_args()
    rows, cam = study(args)
    if args.no_publish:
        return
    RESULTS.mkdir(exist_ok=True)
    plot(rows, {name: nn for name, _, nn in DATASETS.values()}, RESULTS / "study.png")
    semi = semi_floors(args)
    publish(
        "study",
        {"rows": rows, "cam": cam, "semi_floors": semi},
        RESULTS / "study.json",
        table(rows, cam, semi, args),
    )


if __name__ == "__main__":
    main()
