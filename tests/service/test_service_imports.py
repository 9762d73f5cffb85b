"""The service wing stands alone: importing it (and ``masksem serve``) loads no torch and
nothing of ``training``; the exported ONNX file and its card are all it takes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

CHECK = """
import sys
import masksem.cli_serve, service.app, service.stream, service.engine
from service.app import create_app
loaded = sorted(m for m in sys.modules if m.split(".")[0] in {"torch", "training"})
print(",".join(loaded))
"""


def test_service_imports_neither_torch_nor_training() -> None:
    result = subprocess.run(
        [sys.executable, "-c", CHECK], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""
