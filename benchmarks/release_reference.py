"""Run the public releases' own pre-training step (github:maoyunyao/MAMP and
github:JayEason66/MaskSem) from extracted snapshots outside this repository, so that
benchmarks/pretrain_step.py can time them beside ours in the same process.

Nothing of theirs is copied here: their directories are put on sys.path while their classes are
imported and built, and taken off again afterwards. Their files are never edited; what their code
needs from an environment it was not written for is supplied at run time:

- ``torch._six`` (removed from PyTorch 2) is registered as a module holding ``inf`` while their
  ``util.misc`` is imported, for its loss scaler (``NativeScalerWithGradNormCount``, which on a
  CPU-only machine disables the CUDA GradScaler by itself and still computes the grad norm);
- timm's ``optim_factory.add_weight_decay`` (timm is not a dependency here) is replaced by the
  same rule: no weight decay on 1-d parameters and biases, frozen parameters left out;
- MaskSem's model loads the MAMP checkpoint it continues from (``finetune``); it is given a
  freshly initialised MAMP of the same configuration, written to a temporary file;
- their constructors' prints are kept off stdout.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import sys
import tempfile
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

# What must exist in DIR: the two snapshots, each with the files whose classes are run.
REQUIRED_FILES = {
    "MAMP": ("model_mamp/transformer.py", "util/misc.py"),
    "MaskSem": ("model/transformer.py", "model_encoder/transformer.py", "util/misc.py"),
}
SOURCES = {"MAMP": "github:maoyunyao/MAMP", "MaskSem": "github:JayEason66/MaskSem"}

# The releases' paper configuration (config/ntu60_*/pretrain_*_t120_layer8+3_mask90.yaml).
MODEL_ARGS: dict[str, Any] = {
    "dim_in": 3,
    "dim_feat": 256,
    "decoder_dim_feat": 256,
    "depth": 8,
    "decoder_depth": 3,
    "num_heads": 8,
    "mlp_ratio": 4,
    "num_frames": 120,
    "num_joints": 25,
    "patch_size": 1,
    "t_patch_size": 4,
    "qkv_bias": True,
    "qk_scale": None,
    "drop_rate": 0.0,
    "attn_drop_rate": 0.0,
    "drop_path_rate": 0.0,
    "norm_skes_loss": True,
}
# Their fine-tuning encoder takes the same architecture, without the decoder and its loss.
ENCODER_ARGS: dict[str, Any] = {
    **{
        k: v
        for k, v in MODEL_ARGS.items()
        if not k.startswith("decoder_") and k != "norm_skes_loss"
    },
    "num_classes": 60,
    "protocol": "test",
}
FORWARD_ARGS = {"mask_ratio": 0.9, "motion_stride": 1, "motion_aware_tau": 0.8}
MASKSEM_MOMENTUM = 0.99
MASKSEM_QUEUE = 65536


class ReleaseSnapshotError(RuntimeError):
    """DIR does not hold the extracted release snapshots this benchmark runs."""


def check_snapshots(root: Path) -> None:
    """Raise ReleaseSnapshotError (one line: what is missing, where) unless ``root`` holds both
    extracted snapshots."""
    for name, files in REQUIRED_FILES.items():
        for rel in files:
            path = root / name / rel
            if not path.is_file():
                raise ReleaseSnapshotError(
                    f"--reference {root}: missing {path} (extract {SOURCES[name]} into "
                    f"{root / name}; see benchmarks/pretrain_step.py)"
                )


def snapshot_digests(root: Path) -> dict[str, str]:
    """sha256 of each file whose classes are run, to say which release versions were timed."""
    return {
        f"{name}/{rel}": hashlib.sha256((root / name / rel).read_bytes()).hexdigest()
        for name, files in REQUIRED_FILES.items()
        for rel in files
    }


def snapshot_commits(root: Path) -> dict[str, str]:
    """The commit each snapshot was extracted from, where DIR/<name>.commit records it (an
    extracted archive keeps no history); "unrecorded" otherwise."""
    commits = {}
    for name in REQUIRED_FILES:
        path = root / f"{name}.commit"
        commits[name] = path.read_text().strip() if path.is_file() else "unrecorded"
    return commits


@contextlib.contextmanager
def _imported_from(snapshot: Path) -> Iterator[None]:
    """Their directory first on sys.path, ``torch._six`` shimmed, their prints muted; on exit
    sys.path is restored and every module loaded from the snapshot (and the shim) is dropped
    from sys.modules, so the next snapshot's same-named packages (util, model) load afresh."""
    before = set(sys.modules)
    six = types.ModuleType("torch._six")
    six.inf = float("inf")  # type: ignore[attr-defined]
    sys.modules.setdefault("torch._six", six)
    sys.path.insert(0, str(snapshot))
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        sys.path.remove(str(snapshot))
        for name in set(sys.modules) - before:
            module = sys.modules[name]
            origin = getattr(module, "__file__", None) or ""
            if module is six or origin.startswith(str(snapshot)):
                del sys.modules[name]


def _weight_decay_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """timm's add_weight_decay rule, which the releases' main_pretrain.py uses."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 or name.endswith(".bias") else decay).append(p)
    return [
        {"params": no_decay, "weight_decay": 0.0},
        {"params": decay, "weight_decay": weight_decay},
    ]


@dataclass
class ReleaseStep:
    """One release model with its optimiser and loss scaler; ``step()`` runs one iteration of
    their engine_pretrain.train_one_epoch loop body (forward, loss.item(), scaler backward +
    grad norm + AdamW step, zero_grad) on the given batch."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: Any
    clips: Tensor  # (N, C, T, V, M), their layout

    def loss(self) -> Tensor:
        loss: Tensor = self.model(self.clips, **FORWARD_ARGS)[0]
        return loss

    def step(self) -> None:
        loss = self.loss()
        loss.item()
        self.scaler(loss, self.optimizer, parameters=self.model.parameters())
        self.optimizer.zero_grad()


def _optimiser(model: nn.Module, lr: float) -> torch.optim.Optimizer:
    return torch.optim.AdamW(_weight_decay_groups(model, 0.05), lr=lr, betas=(0.9, 0.95))


def release_steps(root: Path, clips: Tensor, lr: float, seed: int = 0) -> dict[str, ReleaseStep]:
    """{"mamp": ..., "masksem": ...}: the releases' training steps on ``clips`` (N, M, T, V, 3)
    in our layout, built from the snapshots in ``root`` at the paper configuration, fp32."""
    check_snapshots(root)
    theirs = clips.permute(0, 4, 2, 3, 1).contiguous()  # (N, C, T, V, M)
    steps: dict[str, ReleaseStep] = {}

    with _imported_from(root / "MAMP"):
        import warnings

        from model_mamp.transformer import Transformer as MampTransformer  # type: ignore
        from util.misc import NativeScalerWithGradNormCount  # type: ignore

        torch.manual_seed(seed)
        mamp = MampTransformer(**MODEL_ARGS)
        mamp.train(True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # CUDA GradScaler disabling itself on the CPU
            scaler = NativeScalerWithGradNormCount()
        steps["mamp"] = ReleaseStep(mamp, _optimiser(mamp, lr), scaler, theirs)

    with _imported_from(root / "MaskSem"), tempfile.TemporaryDirectory() as tmp:
        import warnings

        from model.transformer import MaskSem  # type: ignore
        from model.transformer import Transformer as MaskSemMamp
        from util.misc import NativeScalerWithGradNormCount as MaskSemScaler  # type: ignore

        torch.manual_seed(seed)
        start = Path(tmp) / "mamp-start.pth"
        torch.save({"model": MaskSemMamp(**MODEL_ARGS).state_dict()}, start)
        masksem = MaskSem(
            **MODEL_ARGS,
            mamp="model.transformer.Transformer",
            encoder="model_encoder.transformer.Transformer",
            encoder_args=ENCODER_ARGS,
            finetune=str(start),
            momentum=MASKSEM_MOMENTUM,
            queue_size=MASKSEM_QUEUE,
        )
        masksem.train(True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scaler = MaskSemScaler()
        steps["masksem"] = ReleaseStep(masksem, _optimiser(masksem, lr), scaler, theirs)
    return steps
