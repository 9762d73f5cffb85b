"""Every file a Dockerfile copies is in the build context, and every program its ENTRYPOINT,
CMD and HEALTHCHECK run is one this project has: what `docker build` and `docker run` would
otherwise only find out on a machine with a Docker engine.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.docker.deployment_files import DOCKERFILES, DOCKERIGNORE, REPO_ROOT
from tests.docker.dockerfile_model import (
    Dockerfile,
    context_matches,
    healthcheck_command,
    parse_dockerfile,
)
from tests.docker.dockerignore import is_ignored, read_rules
from tests.docker.project_commands import command_problems

RULES = read_rules(DOCKERIGNORE)


def _ignored(relative: str) -> bool:
    return is_ignored(relative, RULES)


def _image_files(dockerfile: Dockerfile) -> dict[str, Path]:
    return dict(
        (image_path, source)
        for source, image_path in dockerfile.copied_files(dockerfile.final, REPO_ROOT, _ignored)
    )


def _full_command(dockerfile: Dockerfile) -> list[str]:
    chain = dockerfile.lineage(dockerfile.final)
    entrypoint = [ins for stage in chain for ins in stage.of("ENTRYPOINT")]
    cmd = [ins for stage in chain for ins in stage.of("CMD")]
    argv: list[str] = []
    for found in (entrypoint, cmd):
        if found:
            form = found[-1].exec_form()
            assert form is not None, f"{dockerfile.path}:{found[-1].line}: use the JSON form"
            argv += form
    return argv


def _serves(dockerfile: Dockerfile) -> bool:
    """Whether the image's command is ``masksem serve`` (the HTTP service)."""
    argv = _full_command(dockerfile)
    return any(argv[i : i + 2] == ["masksem", "serve"] for i in range(len(argv)))


SERVING = [path for path in DOCKERFILES if _serves(parse_dockerfile(path))]


@pytest.fixture(params=DOCKERFILES, ids=lambda path: path.name)
def dockerfile(request: pytest.FixtureRequest) -> Dockerfile:
    return parse_dockerfile(request.param)


@pytest.fixture(params=SERVING, ids=lambda path: path.name)
def service_dockerfile(request: pytest.FixtureRequest) -> Dockerfile:
    return parse_dockerfile(request.param)


def test_the_cpu_and_gpu_images_run_the_service() -> None:
    assert [path.name for path in SERVING] == ["gpu.Dockerfile", "service.Dockerfile"]


def test_every_copied_source_is_in_the_build_context(dockerfile: Dockerfile) -> None:
    problems = []
    for stage in dockerfile.stages:
        for ins in stage.of("COPY") + stage.of("ADD"):
            if "from" in ins.flags:
                continue
            for source in ins.copy_sources_and_destination()[0]:
                where = f"{dockerfile.path.name}:{ins.line}"
                matches = context_matches(source, REPO_ROOT)
                if not matches:
                    problems.append(f"{where}: {source} does not exist in the repository")
                    continue
                files = [m for m in matches if m.is_file()] + [
                    f for m in matches if m.is_dir() for f in m.rglob("*") if f.is_file()
                ]
                kept = [f for f in files if not _ignored(f.relative_to(REPO_ROOT).as_posix())]
                if not kept:
                    problems.append(f"{where}: .dockerignore leaves nothing of {source}")
    assert not problems, "\n".join(problems)


def test_copy_from_names_an_earlier_stage(dockerfile: Dockerfile) -> None:
    seen: set[str] = set()
    for stage in dockerfile.stages:
        for ins in stage.of("COPY"):
            source_stage = ins.flags.get("from")
            assert source_stage is None or source_stage in seen, (
                f"{dockerfile.path.name}:{ins.line}: --from={source_stage} is no earlier stage"
            )
        if stage.name:
            seen.add(stage.name)


def test_entrypoint_and_cmd_run_programs_of_the_project(dockerfile: Dockerfile) -> None:
    argv = _full_command(dockerfile)
    assert argv, f"{dockerfile.path.name}: the final stage has no ENTRYPOINT or CMD"
    problems = command_problems(argv, _image_files(dockerfile), dockerfile.path.name)
    assert not problems, "\n".join(problems)


def test_healthcheck_runs_a_python_script_the_image_copies(service_dockerfile: Dockerfile) -> None:
    dockerfile = service_dockerfile
    probe = healthcheck_command(dockerfile.final)
    assert probe is not None, f"{dockerfile.path.name}: a service image needs a HEALTHCHECK"
    assert probe[0] in {"python", "python3"}, f"the probe must be Python, not {probe[0]}"
    problems = command_problems(probe, _image_files(dockerfile), f"{dockerfile.path.name} probe")
    assert not problems, "\n".join(problems)


def test_final_stage_runs_as_an_unprivileged_user(dockerfile: Dockerfile) -> None:
    users = [ins.args.strip() for ins in dockerfile.final.of("USER")]
    assert users, f"{dockerfile.path.name}: the final stage never leaves root"
    assert users[-1].split(":")[0] not in {"root", "0"}, f"{dockerfile.path.name}: USER {users[-1]}"


def test_service_settings_in_images_are_real_and_parse(
    service_dockerfile: Dockerfile, monkeypatch: pytest.MonkeyPatch
) -> None:
    dockerfile = service_dockerfile
    env = dockerfile.environment(dockerfile.final, {})
    settings_env = {name: value for name, value in env.items() if name.startswith("MASKSEM_")}
    from service.settings import ServiceSettings

    fields = {f"MASKSEM_{name.upper()}" for name in ServiceSettings.model_fields}
    unknown = sorted(set(settings_env) - fields)
    assert not unknown, f"{dockerfile.path.name} sets variables the service ignores: {unknown}"
    for name in [name for name in os.environ if name.startswith("MASKSEM_")]:
        monkeypatch.delenv(name)
    for name, value in settings_env.items():
        monkeypatch.setenv(name, value)
    settings = ServiceSettings()
    assert settings.model is None and str(settings.models) == env["MASKSEM_MODELS"]
    assert settings.providers[-1] == "CPUExecutionProvider", "no CPU fallback"
    assert str(settings.port) in json.dumps([ins.args for ins in dockerfile.final.of("EXPOSE")]), (
        "EXPOSE and MASKSEM_PORT disagree"
    )


@pytest.mark.parametrize(
    "relative",
    [
        ".venv/bin/python",
        ".venv-ros/lib/python3.11/site-packages/rclpy/__init__.py",
        ".git/HEAD",
        "runs/pretrain/checkpoint.pt",
        "benchmarks/results/service_load.json",
        "tests/docker/conftest.py",
        "ros2_ws/build/masksem_msgs-pypi/CMakeCache.txt",
        "ros2_ws/install/setup.bash",
        "ros2_ws/src/masksem_ros/masksem_ros.egg-info/PKG-INFO",
        "service/__pycache__/app.cpython-311.pyc",
    ],
)
def test_build_context_leaves_out_local_state(relative: str) -> None:
    assert _ignored(relative), f"{relative} would be sent to the Docker daemon"


@pytest.mark.parametrize(
    "relative",
    [
        "pyproject.toml",
        "service/app.py",
        "skeleton/layouts.py",
        "training/configs/utd_masksem.yaml",
        "models/default.onnx",
        "models/interaction.onnx",
        "docker/healthcheck.py",
        "ros2_ws/src/masksem_ros/setup.py",
        "ros2_ws/src/masksem_msgs/msg/Skeleton.msg",
    ],
)
def test_build_context_keeps_what_images_need(relative: str) -> None:
    assert not _ignored(relative), f"{relative} would be missing from the build context"
