"""Service settings: one pydantic-settings class, read from ``MASKSEM_*`` environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: The folder ``masksem serve`` serves when given no model (inside a source checkout): both
#: shipped models, ``default`` and ``interaction``.
DEFAULT_MODELS = Path(__file__).resolve().parents[1] / "models"


class ServiceSettings(BaseSettings):
    """Every knob of the service; ``MASKSEM_MAX_BATCH=16`` sets ``max_batch`` and so on."""

    model_config = SettingsConfigDict(env_prefix="MASKSEM_", extra="ignore", frozen=True)

    model: Path | None = Field(
        None, description="serve this one ONNX file (its card beside it), named by its stem"
    )
    models: Path | None = Field(
        None,
        description="serve every *.onnx in this folder (each with its card), named by file stem; "
        "with neither model nor models: the checkout's models/ folder",
    )
    default_model: str | None = Field(
        None,
        description="the model of requests that name none; unset: 'default' if served, else "
        "the only model",
    )
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    api_key: SecretStr | None = Field(
        None, description="when set, every route but health and the live page needs it"
    )
    providers: tuple[str, ...] = Field(
        ("CPUExecutionProvider",),
        description="onnxruntime execution providers in order of preference",
    )
    intra_op_threads: int = Field(
        0,
        ge=0,
        description="onnxruntime threads per model; 0: the machine's cores shared among the "
        "served models (each model infers on its own worker, so two models on 2 cores get one "
        "thread each)",
    )
    warmup_runs: int = Field(2, ge=1)
    max_batch: int = Field(8, ge=1, le=1024, description="rows per onnxruntime call")
    max_wait_ms: float = Field(2.0, ge=0, le=1000, description="wait for a batch to fill")
    max_batch_per_client: int = Field(
        2, ge=1, le=1024, description="windows of one stream or client address per batch"
    )
    max_request_bytes: int = Field(4 << 20, ge=1024)
    max_ws_message_bytes: int = Field(1 << 20, ge=1024)
    ws_compression: bool = Field(
        False,
        description="permessage-deflate on WebSockets: off by default, as skeleton frames are "
        "small and every message would cost CPU to (de)compress, a flood's included",
    )
    max_bodies_per_request: int = Field(16, ge=1)
    max_infer_windows: int = Field(
        64, ge=1, le=4096, description="OIP infer: windows per request (413 beyond)"
    )
    max_frames_per_body: int = Field(1800, ge=1)
    rate_limit_per_s: float = Field(
        0.0, ge=0, description="REST requests per second per client; 0 disables"
    )
    rate_limit_burst: int = Field(20, ge=1)
    rate_limit_bytes_per_s: float = Field(
        2 << 20, ge=0, description="request body bytes per second per client address; 0: off"
    )
    max_streams: int = Field(64, ge=1)
    max_watchers: int = Field(8, ge=0, description="connections watching every stream at once")
    stream_queue_frames: int = Field(
        128, ge=1, le=4096, description="frames a stream may hold unprocessed; the oldest go"
    )
    # The work budget of one stream, which no stream config can exceed.
    stream_max_bodies: int = Field(16, ge=1, le=64, description="bodies per stream")
    stream_max_buffered_frames: int = Field(
        8192, ge=64, le=1 << 20, description="frames buffered over all bodies of a stream"
    )
    stream_max_windows_per_s: float = Field(
        16.0, gt=0, le=10_000, description="windows a stream may send to inference per second"
    )
    stream_max_messages_per_s: float = Field(
        120.0, gt=0, le=100_000, description="messages a stream may send per second (1 s burst)"
    )
    stream_config_timeout_s: float = Field(
        10.0, gt=0, description="a stream that sends no config this long is closed"
    )
    stream_idle_timeout_s: float = Field(
        60.0, gt=0, description="a stream that sends nothing this long is closed"
    )
    header_timeout_s: float = Field(
        10.0, gt=0, description="an HTTP request whose headers take longer is cut off"
    )
    reload_drain_s: float = Field(
        30.0, gt=0, description="how long an old model may finish its requests"
    )

    @model_validator(mode="after")
    def _one_model_source(self) -> ServiceSettings:
        if self.model is not None and self.models is not None:
            raise ValueError(
                "set MASKSEM_MODEL (--model, one file) or MASKSEM_MODELS (--models, a folder), "
                "not both"
            )
        return self

    @property
    def models_folder(self) -> Path:
        """The folder models are served from and admin reloads may read: ``models``, the
        folder of ``model``, or the checkout's ``models/``."""
        if self.model is not None:
            return self.model.resolve().parent
        return (self.models if self.models is not None else DEFAULT_MODELS).resolve()

    @field_validator("api_key")
    @classmethod
    def _key_not_blank(cls, value: SecretStr | None) -> SecretStr | None:
        # An empty MASKSEM_API_KEY= reads as "auth on" but would let an empty Bearer token in.
        if value is not None and not value.get_secret_value().strip():
            raise ValueError(
                "MASKSEM_API_KEY is set but empty: set a real key, or unset it to run without one"
            )
        return value
