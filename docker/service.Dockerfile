# syntax=docker/dockerfile:1
# The recognition service on CPU: python slim, the `serve` extra, the default model, non-root.
# Build from the repository root (docker/compose.yaml does):
#   docker build -f docker/service.Dockerfile -t masksem-service .
# tests/docker replays the `build` stage's steps in a fresh venv and probes the result with
# this image's HEALTHCHECK, so keep that stage free of anything but COPY, ENV, WORKDIR and RUN.

FROM python:3.11.13-slim-bookworm AS python

# The venv is built here and copied alone, so pip, its cache and the sources stay behind.
FROM python AS build
ENV VIRTUAL_ENV=/opt/venv \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY skeleton/ skeleton/
COPY service/ service/
COPY masksem/ masksem/
COPY docker/constraints.txt docker/
RUN --mount=type=cache,target=/root/.cache/pip \
    python -m venv "$VIRTUAL_ENV" \
    && "$VIRTUAL_ENV/bin/pip" install --constraint docker/constraints.txt ".[serve]"

FROM python AS runtime
LABEL org.opencontainers.image.title="masksem-service" \
      org.opencontainers.image.description="MaskSem skeleton action recognition service (CPU)" \
      org.opencontainers.image.licenses="MIT"
# A fixed numeric uid, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
RUN useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin masksem
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
    MASKSEM_MODELS=/opt/masksem/models
USER 10001:10001
WORKDIR /opt/masksem
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "/opt/masksem/healthcheck.py"]
CMD ["masksem", "serve"]
