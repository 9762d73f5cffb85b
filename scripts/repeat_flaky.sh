#!/usr/bin/env bash
# Run the tests that were once flaky N times in a row (default 20) and stop at the first
# failure: the ROS node's exit on SIGINT, a departing body's last event on its own topic, and
# the torchrun teardown (WITH_RESUME=1 adds the kill-and-resume test, whose kill must land
# mid-run).
# Usage: scripts/repeat_flaky.sh [N]   (needs .venv-ros: scripts/ros_setup.sh .venv-ros)
set -uo pipefail
cd "$(dirname "$0")/.."
N=${1:-20}
PY=${PYTHON:-.venv/bin/python}
TESTS=(tests/ros/test_action_node.py tests/ros/test_action_events.py tests/training/test_distributed.py)
if [ "${WITH_RESUME:-0}" = 1 ]; then
  TESTS+=("tests/training/test_recipes.py::test_killed_run_resumes_to_the_same_weights_as_an_uninterrupted_one")
fi
for i in $(seq 1 "$N"); do
  start=$(date +%s)
  if ! "$PY" -m pytest -q -p no:cacheprovider "${TESTS[@]}" >"/tmp/repeat_flaky.$i.log" 2>&1; then
    echo "run $i/$N FAILED after $(($(date +%s) - start)) s; log: /tmp/repeat_flaky.$i.log"
    tail -20 "/tmp/repeat_flaky.$i.log"
    exit 1
  fi
  echo "run $i/$N passed ($(tail -1 "/tmp/repeat_flaky.$i.log" | tr -d '=' | xargs), $(($(date +%s) - start)) s)"
done
echo "all $N runs passed"
