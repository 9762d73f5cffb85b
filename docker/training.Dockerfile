# syntax=docker/dockerfile:1
# Training on NVIDIA GPUs: torch (CUDA 13 build) and the `train` extra; the entry point is
# torchrun, one process per GPU. Datasets and run folders are mounted, never baked in.
# Build from the repository root: docker build -f docker/training.Dockerfile -t masksem-train .
# Run: docker run --gpus all --ipc=host -v /data:/data:ro -v "$PWD/runs:/runs" masksem-train \
#        --standalone --nproc-per-node=gpu -m masksem.cli pretrain -c ntu60_xsub_masksem -o /runs/pt

# The base brings only the CUDA driver plumbing: torch's wheels carry their own CUDA 13 and
# cuDNN libraries, so a cudnn-runtime base would hold every library twice.
FROM nvidia/cuda:13.0.1-base-ubuntu24.04 AS cuda
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
COPY training/ training/
COPY service/ service/
COPY masksem/ masksem/
COPY docker/constraints.txt docker/
# torch is pinned in the constraints; PyPI's Linux build of that version is the CUDA 13 one.
RUN --mount=type=cache,target=/root/.cache/pip \
    python3 -m venv "$VIRTUAL_ENV" \
    && "$VIRTUAL_ENV/bin/pip" install --constraint docker/constraints.txt ".[train]"

FROM cuda AS runtime
LABEL org.opencontainers.image.title="masksem-train" \
      org.opencontainers.image.description="MaskSem pre-training, fine-tuning and export (CUDA)" \
      org.opencontainers.image.licenses="MIT"
# The venv links to this interpreter; same base image, so the same Python 3.12.
# Pins: see the build stage.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --create-home --shell /bin/bash masksem \
    && mkdir -p /runs \
    && chown masksem:masksem /runs
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    MASKSEM_DATA_ROOT=/data
USER 10001:10001
WORKDIR /runs
ENTRYPOINT ["torchrun"]
CMD ["--standalone", "--nproc-per-node=gpu", "-m", "masksem.cli", "--help"]
