"""The CPU service image, rehearsed without Docker: the `build` stage's COPY, ENV, WORKDIR and
RUN steps of docker/service.Dockerfile run on this machine into a fresh venv (from PyPI, through
docker/constraints.txt), the final stage's files and environment are laid out around it, its
CMD starts the server and its HEALTHCHECK command must report it healthy.

Image paths map into a temporary root: the image keeps its own files under /opt and builds in
/src, so those are the prefixes rewritten.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.docker.deployment_files import DOCKER_DIR, DOCKERIGNORE, REPO_ROOT
from tests.docker.dockerfile_model import (
    Dockerfile,
    Instruction,
    Stage,
    healthcheck_command,
    parse_dockerfile,
)
from tests.docker.dockerignore import is_ignored, read_rules

SERVICE_DOCKERFILE = DOCKER_DIR / "service.Dockerfile"
CONSTRAINTS = DOCKER_DIR / "constraints.txt"
IMAGE_PREFIXES = ("/opt/", "/src")
# The host's own Python settings must not leak into the fresh environment.
HOST_PYTHON_VARIABLES = ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")
READY_WITHIN_S = 90.0

pytestmark = pytest.mark.slow


class ImageRoot:
    """Maps absolute image paths into ``root`` (for the prefixes an image owns)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._pattern = re.compile("|".join(rf"(?<![\w/.-]){re.escape(p)}" for p in IMAGE_PREFIXES))

    def path(self, image_path: str) -> Path:
        return self.root / image_path.lstrip("/")

    def rewrite(self, text: str) -> str:
        return self._pattern.sub(lambda m: f"{self.root}{m.group(0)}", text)


def _host_environment(root: ImageRoot) -> dict[str, str]:
    """This machine's environment as a bare Python image would see it: ``python`` is the base
    interpreter behind this test's venv, and neither that venv nor MASKSEM_* settings leak in."""
    env = {k: v for k, v in os.environ.items() if k not in HOST_PYTHON_VARIABLES}
    env = {k: v for k, v in env.items() if not k.startswith("MASKSEM_")}
    base_bin = root.root / "base-python-bin"
    if not base_bin.is_dir():
        base_bin.mkdir()
        (base_bin / "python").symlink_to(getattr(sys, "_base_executable", sys.executable))
    own_bin = str(Path(sys.executable).parent)
    path = [p for p in env.get("PATH", "").split(os.pathsep) if p != own_bin]
    env["PATH"] = os.pathsep.join([str(base_bin), *path])
    return env


def _stage_environment(dockerfile: Dockerfile, stage: Stage, root: ImageRoot) -> dict[str, str]:
    return dockerfile.environment(stage, _host_environment(root), rewrite=root.rewrite)


def _lay_out_copies(dockerfile: Dockerfile, stage: Stage, root: ImageRoot) -> None:
    rules = read_rules(DOCKERIGNORE)
    copies = dockerfile.copied_files(stage, REPO_ROOT, lambda rel: is_ignored(rel, rules))
    for source, image_path in copies:
        assert image_path.startswith(IMAGE_PREFIXES), f"{image_path}: teach IMAGE_PREFIXES"
        target = root.path(image_path)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)


def _workdir(dockerfile: Dockerfile, stage: Stage) -> str:
    workdirs = [i.args.strip() for s in dockerfile.lineage(stage) for i in s.of("WORKDIR")]
    return workdirs[-1] if workdirs else "/"


def _run_build_stage(dockerfile: Dockerfile, root: ImageRoot, log: Path) -> None:
    stage = dockerfile.stage("build")
    allowed = {"COPY", "ENV", "WORKDIR", "RUN"}
    odd = [
        f"{ins.keyword} (line {ins.line})"
        for ins in stage.instructions
        if ins.keyword not in allowed
    ]
    assert not odd, f"the build stage must stay replayable: {odd}"
    _lay_out_copies(dockerfile, stage, root)
    env = _stage_environment(dockerfile, stage, root)
    cwd = root.path(_workdir(dockerfile, stage))
    for ins in stage.of("RUN"):
        assert "apt-get" not in ins.args, f"line {ins.line}: the build stage must need no apt"
        _run_step(ins, root.rewrite(ins.args), env, cwd, log)


def _run_step(ins: Instruction, command: str, env: dict[str, str], cwd: Path, log: Path) -> None:
    with log.open("a") as out:
        out.write(f"\n$ {command}\n")
        out.flush()
        result = subprocess.run(
            ["/bin/sh", "-c", command],
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=300,
        )
    tail = "\n".join(log.read_text().splitlines()[-30:])
    assert result.returncode == 0, f"RUN at line {ins.line} failed:\n{tail}"


def _normal(requirement: str) -> str:
    """``Foo_Bar==1.0`` -> ``foo-bar==1.0`` (PEP 503 names)."""
    return re.sub(r"[-_.]+(?=.*==)", "-", requirement.strip().lower())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _probe(argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=30)


def _export_stand_in_model(path: Path) -> None:
    """A tiny random classifier of the real architecture, exported with its card, for a
    checkout whose models/default.onnx is not built yet (test_dockerfile_references fails
    on that by itself)."""
    import torch

    from skeleton.card import CardContent
    from skeleton.clip import WindowSpec
    from training.export import export_onnx
    from training.model.config import ModelConfig
    from training.model.encoder import Encoder
    from training.model.heads import Classifier, LinearHead

    torch.manual_seed(0)
    cfg = ModelConfig(
        persons=2, frames=32, joints=25, patch=4, width=16, depth=1, heads=2,
        decoder_width=16, decoder_depth=1,
    )  # fmt: skip
    fields = CardContent(
        name="stand-in",
        version="0.0.0",
        labels=tuple(f"action-{i}" for i in range(5)),
        layout="ntu25",
        window=WindowSpec(frames=32, persons=2),
        fps=30.0,
    )
    export_onnx(Classifier(Encoder(cfg), LinearHead(cfg.width, 5)).eval(), fields, path)


@pytest.fixture(scope="module")
def rehearsed_image(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Dockerfile, ImageRoot]:
    dockerfile = parse_dockerfile(SERVICE_DOCKERFILE)
    root = ImageRoot(tmp_path_factory.mktemp("image-root"))
    _run_build_stage(dockerfile, root, root.root / "build.log")
    _lay_out_copies(dockerfile, dockerfile.final, root)
    folder = Path(_stage_environment(dockerfile, dockerfile.final, root)["MASKSEM_MODELS"])
    if not (folder / "default.onnx").is_file():
        _export_stand_in_model(folder / "default.onnx")
    return dockerfile, root


def test_install_pulls_no_torch_and_only_pinned_packages(
    rehearsed_image: tuple[Dockerfile, ImageRoot],
) -> None:
    _, root = rehearsed_image
    python = root.path("/opt/venv/bin/python")
    freeze = subprocess.run(
        [str(python), "-m", "pip", "freeze", "--exclude", "masksem"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout.split()  # fmt: skip
    installed = {_normal(line).partition("==")[0]: line for line in freeze}
    assert "torch" not in installed, "the serve extra must not pull torch"
    lines = CONSTRAINTS.read_text().splitlines()
    pins = {_normal(line) for line in lines if line.strip() and not line.startswith("#")}
    unpinned = sorted(
        line for line in installed.values() if line.lower().replace("_", "-") not in pins
    )
    assert not unpinned, f"installed but not pinned in docker/constraints.txt: {unpinned}"


def test_cmd_starts_a_server_that_passes_the_healthcheck(
    rehearsed_image: tuple[Dockerfile, ImageRoot], tmp_path: Path
) -> None:
    dockerfile, root = rehearsed_image
    final = dockerfile.final
    env = _stage_environment(dockerfile, final, root)
    # Loopback only on a shared machine; the image itself binds 0.0.0.0.
    env.update(MASKSEM_HOST="127.0.0.1", MASKSEM_PORT=str(_free_port()))
    cwd = root.path(_workdir(dockerfile, final))
    cwd.mkdir(parents=True, exist_ok=True)
    cmd = final.of("CMD")[-1].exec_form()
    probe = healthcheck_command(final)
    assert cmd and probe
    program = shutil.which(cmd[0], path=env["PATH"])
    assert program and program.startswith(str(root.root)), f"{cmd[0]} is not from the image venv"
    probe_argv = [shutil.which(probe[0], path=env["PATH"]) or probe[0]] + [
        root.rewrite(arg) for arg in probe[1:]
    ]

    before = _probe(probe_argv, env, cwd)
    assert before.returncode != 0, "the healthcheck passed with no server running"

    server_log = tmp_path / "server.log"
    with server_log.open("w") as out:
        server = subprocess.Popen(
            [program, *cmd[1:]], env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + READY_WITHIN_S
        result = _probe(probe_argv, env, cwd)
        while result.returncode != 0 and time.monotonic() < deadline:
            assert server.poll() is None, f"server exited:\n{server_log.read_text()[-3000:]}"
            time.sleep(0.5)
            result = _probe(probe_argv, env, cwd)
        assert result.returncode == 0, (
            f"not healthy after {READY_WITHIN_S:.0f} s: {result.stderr}\n"
            f"{server_log.read_text()[-3000:]}"
        )
    finally:
        server.terminate()
        server.wait(timeout=30)
    after = _probe(probe_argv, env, cwd)
    assert after.returncode != 0, "the healthcheck still passes after the server stopped"
