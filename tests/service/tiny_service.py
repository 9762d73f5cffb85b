"""Helpers of the service tests: a tiny real model and real uvicorn servers on loopback."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import onnx
import torch
import uvicorn
from torch import nn

from benchmarks.service_load import free_port
from service.app import create_app, uvicorn_config
from service.settings import ServiceSettings
from skeleton.card import CardContent, ModelCard
from skeleton.clip import WindowSpec
from skeleton.layouts import get_layout
from training.model.config import ModelConfig
from training.model.heads import Classifier
from training.recipes.classify import build_classifier

LAYOUT = "utd20"
FPS = 30.0
LABELS = tuple(f"action-{i:02d}" for i in range(27))
# Centred and turned to face the sensor; metres kept (so units_scale matters).
WINDOW = WindowSpec(
    frames=32,
    persons=2,
    min_crop_frames=16,
    centre_joint=get_layout(LAYOUT).root,
    face_pairs=get_layout(LAYOUT).across,
)


REPO = Path(__file__).resolve().parents[2]


def tiny_classifier(seed: int = 0, classes: int = len(LABELS)) -> Classifier:
    """A randomly initialised classifier of the real architecture, small enough for CI."""
    torch.manual_seed(seed)
    cfg = ModelConfig(
        persons=WINDOW.persons,
        frames=WINDOW.frames,
        joints=get_layout(LAYOUT).num_joints,
        width=32,
        depth=2,
        heads=4,
        decoder_width=32,
    )
    classifier = build_classifier(cfg, "finetune", classes, hidden=64)
    with torch.no_grad():  # trained-looking BatchNorm statistics, so logits spread out
        for m in classifier.modules():
            if isinstance(m, nn.BatchNorm1d):
                m.running_mean.normal_(0.0, 0.5)
                m.running_var.uniform_(0.05, 0.3)
    return classifier.eval()


def card_fields(
    version: str, *, name: str = "tiny", labels: tuple[str, ...] = LABELS
) -> CardContent:
    return CardContent(
        name=name,
        version=version,
        labels=labels,
        layout=LAYOUT,
        window=WINDOW,
        fps=FPS,
        training={"note": "randomly initialised test model"},
        stream_window_s=2.0,
    )


@dataclass(frozen=True)
class TinyModel:
    classifier: Classifier
    graph: onnx.ModelProto
    path: Path  # version "1"
    card: ModelCard
    path_v2: Path  # the same graph, version "2"
    folder: Path


@dataclass(frozen=True)
class TwoModels:
    """A folder serving two different tiny models: ``default`` (the tiny model, version "1")
    and ``pairs`` (another classifier with other labels, version "7"); beside the folder, the
    files a reload swaps in (the same graphs, versions "2" and "8")."""

    folder: Path
    classifiers: dict[str, Classifier]  # served name -> its PyTorch classifier
    labels: dict[str, tuple[str, ...]]
    next_versions: dict[str, Path]  # served name -> the same graph with the next version


def copy_model(src: Path, dst: Path) -> Path:
    """Copy an ONNX file and its card (for tests that change or reload files)."""
    shutil.copyfile(src, dst)
    shutil.copyfile(src.with_name(src.stem + ".card.json"), dst.with_name(dst.stem + ".card.json"))
    return dst


class LiveServer:
    """uvicorn serving ``create_app(settings)`` on a free loopback port, in a thread."""

    def __init__(self, settings: ServiceSettings, **uvicorn_options: object) -> None:
        self.settings = settings
        self.app = create_app(settings)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        options = {"log_level": "warning", **uvicorn_options}
        config = uvicorn_config(self.app, settings, **options)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(15)
        self.sock.close()


def serve(model: Path, **settings: object) -> LiveServer:
    """A server of the one file ``model`` (whatever MASKSEM_MODEL(S) the environment sets)."""
    options = {"model": model, "models": None, "warmup_runs": 1, **settings}
    return LiveServer(ServiceSettings(**options))  # type: ignore[arg-type]


def serve_folder(folder: Path | None, **settings: object) -> LiveServer:
    """A server of every model of ``folder`` (None: the checkout's models/)."""
    options = {"model": None, "models": folder, "warmup_runs": 1, **settings}
    return LiveServer(ServiceSettings(**options))  # type: ignore[arg-type]


def random_clip(frames: int, layout: str = LAYOUT, seed: int = 0) -> np.ndarray:
    """A plausible body: the layout's joints spread around 1 m, moving a little."""
    rng = np.random.default_rng(seed)
    joints = get_layout(layout).num_joints
    base = rng.normal(0.0, 0.3, size=(joints, 3)) + np.array([0.0, 0.0, 2.5])
    drift = rng.normal(0.0, 0.01, size=(frames, joints, 3)).cumsum(axis=0)
    return (base + drift).astype(np.float32)


def start_serve(args: list[str], cwd: Path, **env: str) -> tuple[subprocess.Popen[bytes], str]:
    """``masksem serve ARGS`` in a subprocess on a free loopback port (output piped, for the
    failure message of :func:`wait_until_ready`); returns it and its URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "masksem.cli_serve", *args, "--port", str(port)],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(REPO), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    return process, f"http://127.0.0.1:{port}"


def wait_until_ready(process: subprocess.Popen[bytes], url: str, seconds: float = 60) -> None:
    """Wait for a ``masksem serve`` subprocess to answer ready; fail with its output if it
    exits, or after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        assert process.poll() is None, process.stdout.read().decode()  # type: ignore[union-attr]
        try:
            if httpx.get(f"{url}/v2/health/ready").status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"masksem serve did not become ready in {seconds} s"
        time.sleep(0.1)
