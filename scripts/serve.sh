#!/usr/bin/env bash
# Install the recognition service (CPU onnxruntime, no torch) into ./.venv-serve and start it on
# every model of models/ (default.onnx as "default", interaction.onnx as "interaction"). Extra
# arguments go to `masksem serve` (--model FILE or --models DIR to serve others).
# It listens on 127.0.0.1 only. To reach it from other machines, set MASKSEM_API_KEY and
# MASKSEM_HOST to the interface to listen on.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv-serve/bin/python ] || "$PY" -m venv .venv-serve
.venv-serve/bin/python -m pip install -q --upgrade pip
.venv-serve/bin/python -m pip install -q -e '.[serve]'
exec .venv-serve/bin/masksem serve --host "${MASKSEM_HOST:-127.0.0.1}" "$@"
