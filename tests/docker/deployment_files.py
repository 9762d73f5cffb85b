"""Where the deployment files live: the Dockerfiles and the compose file under docker/."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKER_DIR = REPO_ROOT / "docker"
COMPOSE_FILE = DOCKER_DIR / "compose.yaml"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"
DOCKERFILES = sorted(DOCKER_DIR.glob("*.Dockerfile"))
