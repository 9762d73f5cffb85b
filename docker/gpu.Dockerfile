# syntax=docker/dockerfile:1
# The recognition service on an NVIDIA GPU: CUDA 13 + cuDNN 9 runtime, the `gpu` extra
# (onnxruntime-gpu). onnxruntime falls back to its CPU provider when no GPU is visible.
# Build from the repository root: docker build -f docker/gpu.Dockerfile -t masksem-service-gpu .
# Needs the NVIDIA Container Toolkit on the host to see the GPU (docker/compose.yaml, profile gpu).

FROM nvidia/cuda:13.0.1-cudnn-runtime-ubuntu24.04 AS cuda
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV DEBIAN_FRONTEND=noninteractive

FROM cuda AS build
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
RUN --mount=type=cache,target=/root/.cache/pip \
    python3 -m venv "$VIRTUAL_ENV" \
    && "$VIRTUAL_ENV/bin/pip" install --constraint docker/constraints.txt ".[gpu]"

FROM cuda AS runtime
LABEL org.opencontainers.image.title="masksem-service-gpu" \
      org.opencontainers.image.description="MaskSem skeleton action recognition service (CUDA)" \
      org.opencontainers.image.licenses="MIT"
# The venv links to this interpreter; same base image, so the same Python 3.12.
# Pins: see the build stage.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin masksem
COPY --from=build /opt/venv /opt/venv
# Both shipped models (gestures, interactions); `masksem serve` serves every model of the folder.
COPY models/default.onnx models/default.card.json models/interaction.onnx \
     models/interaction.card.json /opt/masksem/models/
COPY docker/healthcheck.py /opt/masksem/healthcheck.py
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MASKSEM_HOST=0.0.0.0 \
    MASKSEM_PORT=8000 \
    MASKSEM_MODELS=/opt/masksem/models \
    MASKSEM_PROVIDERS='["CUDAExecutionProvider", "CPUExecutionProvider"]'
USER 10001:10001
WORKDIR /opt/masksem
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "/opt/masksem/healthcheck.py"]
CMD ["masksem", "serve"]
