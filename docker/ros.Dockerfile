# syntax=docker/dockerfile:1
# The ROS 2 action node: masksem_msgs and masksem_ros built with colcon on ROS 2 Jazzy, with the
# masksem package (skeleton + service, onnxruntime on CPU) in a venv that sees ROS's Python.
# Build from the repository root: docker build -f docker/ros.Dockerfile -t masksem-ros .

FROM ros:jazzy-ros-base-noble AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV DEBIAN_FRONTEND=noninteractive
# Ubuntu's archive drops superseded versions, so an exact pin would break the build within
# weeks; the base image tag fixes the Ubuntu release and with it Python 3.12.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3-venv \
    && rm -rf /var/lib/apt/lists/*
ENV VIRTUAL_ENV=/opt/venv \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY skeleton/ skeleton/
COPY service/ service/
COPY masksem/ masksem/
COPY docker/constraints.txt docker/
# --system-site-packages: rclpy and the message packages come from /opt/ros. numpy stays
# Ubuntu's: ROS's compiled message modules were built against its 1.x ABI, which numpy 2
# refuses to load.
RUN --mount=type=cache,target=/root/.cache/pip \
    python3 -m venv --system-site-packages "$VIRTUAL_ENV" \
    && grep -v '^numpy==' docker/constraints.txt > /tmp/constraints-ros.txt \
    && "$VIRTUAL_ENV/bin/pip" install --constraint /tmp/constraints-ros.txt ".[serve]" \
    && touch "$VIRTUAL_ENV/COLCON_IGNORE"
COPY ros2_ws/src/ /opt/masksem/ros2_ws/src/
WORKDIR /opt/masksem/ros2_ws
# colcon runs on the venv's interpreter, so the node's entry scripts start that interpreter
# and import masksem from the venv (the approach of ROS 2's "Using Python Packages" guide).
RUN . "/opt/ros/${ROS_DISTRO}/setup.bash" \
    && "$VIRTUAL_ENV/bin/python" -m colcon build --merge-install \
        --event-handlers console_direct+ --cmake-args -DBUILD_TESTING=OFF \
    && rm -rf build log

# ros-core has rclpy, launch and common_interfaces but no compilers.
FROM ros:jazzy-ros-core-noble AS runtime
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
LABEL org.opencontainers.image.title="masksem-ros" \
      org.opencontainers.image.description="MaskSem ROS 2 node: skeleton topics in, action labels out" \
      org.opencontainers.image.licenses="MIT"
# The numpy that the build stage's venv saw (see there). Pins: see the build stage.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3-numpy \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --create-home --shell /bin/bash masksem
COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/masksem/ros2_ws/install /opt/masksem/ros2_ws/install
COPY models/default.onnx models/default.card.json models/interaction.onnx \
     models/interaction.card.json /opt/masksem/models/
COPY docker/ros-entrypoint.sh /opt/masksem/ros-entrypoint.sh
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    ROS_DOMAIN_ID=0 \
    MASKSEM_MODEL=/opt/masksem/models/default.onnx
USER 10001:10001
WORKDIR /home/masksem
ENTRYPOINT ["/opt/masksem/ros-entrypoint.sh"]
CMD ["ros2", "launch", "masksem_ros", "action_node.launch.py"]
