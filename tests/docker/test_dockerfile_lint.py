"""hadolint (with shellcheck on every RUN) finds nothing in docker/*.Dockerfile, and each rule
silenced inline carries a comment that says why."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.docker.deployment_files import DOCKER_DIR, DOCKERFILES

CONFIG = DOCKER_DIR / "hadolint.yaml"


def lint(hadolint: str, path: Path) -> list[dict[str, object]]:
    result = subprocess.run(
        [hadolint, "--config", str(CONFIG), "--format", "json", "--no-fail", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    findings: list[dict[str, object]] = json.loads(result.stdout or "[]")
    return findings


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda path: path.name)
def test_hadolint_finds_nothing(hadolint: str, path: Path) -> None:
    findings = lint(hadolint, path)
    report = [f"{path.name}:{f['line']} {f['code']} {f['level']}: {f['message']}" for f in findings]
    assert not report, "\n".join(report)


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda path: path.name)
def test_every_inline_ignore_says_why(path: Path) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    unexplained = []
    for number, line in enumerate(lines, start=1):
        if not line.strip().startswith("# hadolint ignore="):
            continue
        above = lines[number - 2].strip() if number > 1 else ""
        reason = above.removeprefix("#").strip()
        if not above.startswith("#") or not reason or reason.startswith("hadolint"):
            unexplained.append(f"{path.name}:{number}: {line.strip()} has no reason above it")
    assert not unexplained, "\n".join(unexplained)


def test_hadolint_with_this_config_still_reports(hadolint: str, tmp_path: Path) -> None:
    """The config silences nothing that matters: an untagged base and an unpinned,
    cache-keeping apt install from an untrusted registry are all reported."""
    bad = tmp_path / "bad.Dockerfile"
    bad.write_text("FROM quay.io/example/python\nRUN apt-get update && apt-get install -y curl\n")
    codes = {finding["code"] for finding in lint(hadolint, bad)}
    assert {"DL3006", "DL3008", "DL3009", "DL3015", "DL3026"} <= codes
