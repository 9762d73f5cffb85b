"""Start the action node under test and the publishing harness (tests/ros/ros_harness.py) as
two processes of the ROS venv on their own ROS_DOMAIN_ID, and collect what the harness saw."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

HARNESS = Path(__file__).with_name("ros_harness.py")
ROS_PACKAGE = Path(__file__).resolve().parents[2] / "ros2_ws" / "src" / "masksem_ros"
NODE_NAME = "masksem_action"
#: The shipped YAML file's key: its parameters hold for the node in any namespace.
PARAMS_KEY = "/**"
FPS = 30.0


@dataclass
class RosRun:
    """One node under test plus its harness, running; :meth:`finish` collects both."""

    node: subprocess.Popen[bytes]
    harness: subprocess.Popen[bytes]
    out: Path
    log: Path
    result: dict[str, Any] | None = None
    node_alive_at_end: bool = False

    def finish(self) -> RosRun:
        try:
            self.harness.wait(timeout=180)
        finally:
            self.node_alive_at_end = self.node.poll() is None
            self.node.send_signal(signal.SIGINT)
            try:
                self.node.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.node.kill()
                self.node.wait()
        self.result = json.loads(self.out.read_text()) if self.out.exists() else None
        return self

    @property
    def node_log(self) -> str:
        return self.log.read_text(errors="replace")


def start_run(
    ros_python: Path, folder: Path, domain: int, params: dict[str, Any], spec: dict[str, Any]
) -> RosRun:
    """The node with the shipped parameters overridden by ``params`` (reliable input: every
    frame must arrive for an exact comparison), and the harness with ``spec``."""
    folder.mkdir()
    shipped = yaml.safe_load((ROS_PACKAGE / "config" / "action_node.yaml").read_text())
    node_params = shipped[PARAMS_KEY]["ros__parameters"]
    node_params.update(
        qos_reliability="reliable",
        qos_depth=1000,
        queue_capacity=1000,
        log_throttle_s=1.0,
        **params,
    )
    params_file = folder / "params.yaml"
    params_file.write_text(yaml.safe_dump(shipped))
    spec = {
        "fps": FPS,
        "windows_topic": node_params["windows_topic"],
        "events_topic": node_params["aggregate_topic"],
        "startup_timeout_s": 90.0,
        "run_timeout_s": 60.0,
        "quiet_s": 1.5,
        "out": str(folder / "result.json"),
        **spec,
    }
    (folder / "spec.json").write_text(json.dumps(spec))
    env = dict(os.environ)
    env.update(
        ROS_DOMAIN_ID=str(domain),
        ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
        RCUTILS_COLORIZED_OUTPUT="0",
        PYTHONUNBUFFERED="1",
    )
    log = folder / "node.log"
    with open(log, "wb") as log_file:
        node = subprocess.Popen(
            [str(ros_python), "-m", "masksem_ros.action_node", "--ros-args",
             "--params-file", str(params_file)],
            stdout=log_file, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    harness = subprocess.Popen(
        [str(ros_python), str(HARNESS), str(folder / "spec.json")], env=env, cwd=folder
    )
    return RosRun(node, harness, Path(spec["out"]), log)
