#!/bin/bash
# Puts ROS 2 and the MaskSem workspace on the environment, then runs the container's command.
set -e
# shellcheck source=/dev/null
source "/opt/ros/${ROS_DISTRO}/setup.bash"
# shellcheck source=/dev/null
source /opt/masksem/ros2_ws/install/setup.bash
exec "$@"
