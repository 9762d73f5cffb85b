#!/usr/bin/env bash
# Install everything into ./.venv (CPU torch), build the ROS 2 test venv, lint, run all tests.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# The CPU build of torch; an unpinned torch would pull a multi-GB CUDA build.
.venv/bin/python -m pip install -q torch==2.13.0
.venv/bin/python -m pip install -q -e '.[train,serve,dev]'
if [ -x scripts/ros_setup.sh ]; then scripts/ros_setup.sh .venv-ros; fi
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
# pytest exits 5 when it collects no test: that is a failure of the suite here, not a pass.
.venv/bin/python -m pytest -q -ra "$@"
