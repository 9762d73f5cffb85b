"""The one training loop of every recipe: schedule, mixed precision, DDP, checkpoints and resume,
progress and metric logs.

A recipe hands the loop a :class:`Task`: the module whose parameters are trained, how a batch
becomes a loss, and optional per-epoch evaluation. Resuming restores weights, optimizer, epoch and
every random state, and the data order and augmentations are functions of (seed, epoch, index), so a
killed run continues exactly as if it had never stopped.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from tqdm import tqdm

from training.checkpoints import TrainingState
from training.distributed import DistContext, all_reduce_mean, barrier

CHECKPOINT_NAME = "checkpoint.pt"


class LoopConfig(BaseModel):
    """Optimisation schedule and run-keeping; every recipe embeds one."""

    model_config = ConfigDict(extra="forbid")

    epochs: int = 400
    warmup_epochs: float = 20
    batch_size: int = 32  # per process
    lr: float = 1e-3  # for a global batch of `lr_batch`; scaled linearly with the real one
    lr_batch: int = 128
    min_lr: float = 5e-4
    optimizer: str = "adamw"  # adamw | sgd
    betas: tuple[float, float] = (0.9, 0.95)
    momentum: float = 0.9  # sgd only
    weight_decay: float = 0.05
    clip_grad: float | None = None
    amp: str = "auto"  # auto (bf16 on GPU, fp32 on CPU) | bf16 | off
    checkpoint_every: int = 20
    num_workers: int = 0
    seed: int = 0
    threads: int | None = None  # torch CPU threads; None keeps torch's default

    def global_lr(self, world_size: int) -> float:
        return self.lr * self.batch_size * world_size / self.lr_batch


def lr_at(cfg: LoopConfig, epoch: float, base_lr: float) -> float:
    """Linear warm-up, then half-cosine from ``base_lr`` to ``min_lr`` (fractional epochs)."""
    if epoch < cfg.warmup_epochs:
        return base_lr * epoch / cfg.warmup_epochs
    span = max(cfg.epochs - cfg.warmup_epochs, 1e-8)
    progress = min((epoch - cfg.warmup_epochs) / span, 1.0)
    return cfg.min_lr + (base_lr - cfg.min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


class Task(Protocol):
    """What a recipe gives the loop."""

    @property
    def module(self) -> nn.Module:
        """The module whose parameters are trained (read-only: a task may hold a subclass)."""
        ...

    def param_groups(self) -> list[dict[str, Any]]:
        """Optimizer groups; a group may carry ``lr_scale`` (layer decay)."""
        ...

    def loss(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, float]]:
        """``model`` is ``module`` or its DDP wrapper: call it for the forward pass."""
        ...

    def start_epoch(self, epoch: int) -> None:
        """Called before each epoch (0-based), also the first one after a resume."""
        ...

    def after_step(self) -> None: ...

    def evaluate(self, epoch: int) -> dict[str, float]:
        """Metrics after an epoch (empty for none)."""
        ...


@dataclass
class RunState:
    epoch: int = 0  # completed epochs
    step: int = 0
    history: list[dict[str, float]] = field(default_factory=list)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {
        "python": random.getstate(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _write_logs(out: Path, history: list[dict[str, float]]) -> None:
    if not history:
        return
    keys = sorted({k for row in history for k in row}, key=lambda k: (k != "epoch", k))
    tmp = out / "metrics.csv.tmp"
    with open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        writer.writerows(history)
    os.replace(tmp, out / "metrics.csv")
    (out / "history.json").write_text(json.dumps(history, indent=1))


# Recipe fields that may change between a run and its resumption: they do not change the
# training (the calibration targets act after it: rerun a finished run to recalibrate its rule).
RESUMABLE_CHANGES = frozenset(
    {
        "loop.threads",
        "loop.num_workers",
        "loop.checkpoint_every",
        "false_alarm_rate",
        "stream.false_alarm_rate",
        "stream.false_alarms_per_min",
        "stream.calibration_stride",
    }
)


def recipe_changes(saved: dict[str, Any], current: dict[str, Any], prefix: str = "") -> list[str]:
    """The dotted names of recipe fields that differ between a checkpoint and this run. A field
    the checkpoint lacks was added to the schema since, as a switch that is off by default: it
    counts only when this run turns it on. A field dropped from the schema does not count."""
    changed = []
    for key in sorted(current):
        name = f"{prefix}{key}"
        old, new = saved.get(key), current[key]
        if name in RESUMABLE_CHANGES:
            continue
        if key not in saved:
            if new not in (None, False, [], {}):
                changed.append(name)
        elif isinstance(old, dict) and isinstance(new, dict):
            changed += recipe_changes(old, new, f"{name}.")
        elif old != new:
            changed.append(name)
    return changed


class TrainingLoop:
    def __init__(
        self,
        task: Task,
        dataset: Dataset[Any],
        cfg: LoopConfig,
        out_dir: Path,
        ctx: DistContext,
        *,
        run_config: dict[str, Any] | None = None,
        meta: dict[str, Any] | None = None,
        desc: str = "train",
    ) -> None:
        self.task, self.dataset, self.cfg, self.out, self.ctx = task, dataset, cfg, out_dir, ctx
        self.run_config = run_config or {}
        self.meta = meta or {}  # kept in checkpoints, not compared on resume
        self.desc = desc
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.module = task.module.to(ctx.device)
        self.model: nn.Module = self.module
        if ctx.distributed:
            ids = [ctx.local_rank] if ctx.device.type == "cuda" else None
            self.model = DistributedDataParallel(self.module, device_ids=ids)
        self.base_lr = cfg.global_lr(ctx.world_size)
        groups = task.param_groups()
        for group in groups:
            group.setdefault("lr_scale", 1.0)
        if cfg.optimizer == "adamw":
            # fused: one kernel per step instead of ~10 passes over every parameter tensor
            self.optimizer: torch.optim.Optimizer = torch.optim.AdamW(
                groups, lr=self.base_lr, betas=cfg.betas, fused=True
            )
        elif cfg.optimizer == "sgd":
            self.optimizer = torch.optim.SGD(groups, lr=self.base_lr, momentum=cfg.momentum)
        else:
            raise ValueError(f"optimizer must be adamw or sgd, got {cfg.optimizer!r}")
        self.sampler: DistributedSampler[Any] = DistributedSampler(
            dataset, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True, seed=cfg.seed
        )
        self.loader = DataLoader(
            dataset,
            batch_size=cfg.batch_size,
            sampler=self.sampler,
            num_workers=cfg.num_workers,
            drop_last=len(dataset) >= cfg.batch_size * ctx.world_size,  # type: ignore[arg-type]
            pin_memory=ctx.device.type == "cuda",
            persistent_workers=False,  # workers must see set_epoch: fresh ones each epoch
        )
        self.state = RunState()
        self.writer = None
        if ctx.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.out / "tensorboard"))

    @property
    def checkpoint_path(self) -> Path:
        return self.out / CHECKPOINT_NAME

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        use_bf16 = self.cfg.amp == "bf16" or (
            self.cfg.amp == "auto" and self.ctx.device.type == "cuda"
        )
        if not use_bf16:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.ctx.device.type, dtype=torch.bfloat16)

    # -- checkpoints ---------------------------------------------------------------------
    def save(self) -> None:
        if not self.ctx.is_main:
            return
        extra = getattr(self.task, "extra_state", None)
        TrainingState(
            epoch=self.state.epoch,
            step=self.state.step,
            history=self.state.history,
            model=self.module.state_dict(),
            optimizer=self.optimizer.state_dict(),
            rng=_rng_state(),
            config=self.run_config,
            extra=extra() if callable(extra) else None,
            meta=self.meta,
        ).save(self.checkpoint_path)

    def resume(self) -> bool:
        """Continue from ``out_dir/checkpoint.pt`` if there is one; True when resumed."""
        if not self.checkpoint_path.is_file():
            return False
        ckpt = TrainingState.read(self.checkpoint_path, self.ctx.device)
        changed = recipe_changes(ckpt.config, self.run_config)
        if changed:
            raise ValueError(
                f"{self.checkpoint_path} was written by a different recipe ({', '.join(changed)} "
                "changed): run with --fresh or into another --out"
            )
        self.module.load_state_dict(ckpt.model)
        self.optimizer.load_state_dict(ckpt.optimizer)
        _set_rng_state(ckpt.rng)
        loader = getattr(self.task, "load_extra_state", None)
        if callable(loader) and ckpt.extra is not None:
            loader(ckpt.extra)
        self.state = RunState(epoch=ckpt.epoch, step=ckpt.step, history=ckpt.history)
        return True

    # -- the loop ------------------------------------------------------------------------
    def _set_lr(self, epoch: float) -> float:
        lr = lr_at(self.cfg, epoch, self.base_lr)
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group["lr_scale"]
        return lr

    def _batches(self, epoch: int) -> Iterator[Any]:
        self.sampler.set_epoch(epoch)
        set_epoch = getattr(self.dataset, "set_epoch", None)
        if callable(set_epoch):
            set_epoch(epoch)
        bar = tqdm(
            self.loader,
            desc=f"{self.desc} {epoch + 1}/{self.cfg.epochs}",
            disable=not self.ctx.is_main,
            leave=False,
            dynamic_ncols=True,
        )
        yield from bar

    def run(self, *, stop_after_epochs: int | None = None) -> list[dict[str, float]]:
        """Train to ``cfg.epochs`` (or only ``stop_after_epochs`` more, to test resuming)."""
        last = self.cfg.epochs
        if stop_after_epochs is not None:
            last = min(last, self.state.epoch + stop_after_epochs)
        steps_per_epoch = max(len(self.loader), 1)
        for epoch in range(self.state.epoch, last):
            self.task.start_epoch(epoch)
            self.module.train()
            sums: dict[str, float] = {}
            count = 0
            lr = 0.0
            for i, batch in enumerate(self._batches(epoch)):
                lr = self._set_lr(epoch + i / steps_per_epoch)
                with self.autocast():
                    loss, stats = self.task.loss(self.model, batch)
                if not torch.isfinite(loss):
                    raise FloatingPointError(
                        f"loss is {loss.item()} at epoch {epoch + 1}, step {i + 1}; "
                        f"the last checkpoint is {self.checkpoint_path}"
                    )
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()  # type: ignore[no-untyped-call]
                if self.cfg.clip_grad:
                    nn.utils.clip_grad_norm_(self.module.parameters(), self.cfg.clip_grad)
                self.optimizer.step()
                self.task.after_step()
                self.state.step += 1
                stats = {"loss": loss.item(), **stats}
                for key, value in stats.items():
                    sums[key] = sums.get(key, 0.0) + value
                count += 1
                if self.writer is not None:
                    self.writer.add_scalar("step/loss", stats["loss"], self.state.step)
                    self.writer.add_scalar("step/lr", lr, self.state.step)
            means = {k: v / max(count, 1) for k, v in sums.items()}
            means = {
                k: float(all_reduce_mean(torch.tensor(v, device=self.ctx.device), self.ctx))
                for k, v in means.items()
            }
            row: dict[str, float] = {"epoch": epoch + 1, "lr": lr, **means}
            row.update(self.task.evaluate(epoch))
            self.state.history.append(row)
            self.state.epoch = epoch + 1
            if self.writer is not None:
                for key, value in row.items():
                    if key != "epoch":
                        self.writer.add_scalar(f"epoch/{key}", value, epoch + 1)
                self.writer.flush()
            if self.ctx.is_main:
                _write_logs(self.out, self.state.history)
                msg = ", ".join(f"{k} {v:.4g}" for k, v in row.items() if k != "epoch")
                tqdm.write(f"{self.desc} epoch {epoch + 1}/{self.cfg.epochs}: {msg}")
            if self.state.epoch % self.cfg.checkpoint_every == 0 or self.state.epoch == last:
                self.save()
            barrier(self.ctx)
        if self.writer is not None:
            self.writer.flush()
        return self.state.history

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
