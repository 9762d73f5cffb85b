"""Service settings: one pydantic-settings class, read from ``MASKSEM_*`` environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

#: The model ``masksem serve`` loads when given none (inside a source checkout).
DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "models" / "default.onnx"


class ServiceSettings(BaseSettings):
    """Every knob of the service; ``MASKSEM_MAX_BATCH=16`` sets ``max_batch`` and so on."""

    model_config = SettingsConfigDict(env_prefix="MASKSEM_", extra="ignore", frozen=True)

    model: Path = Field(DEFAULT_MODEL, description="the ONNX file (its card lies beside it)")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    api_key: SecretStr | None = Field(
        None, description="when set, every route but health and the live page needs it"
    )
    providers: tuple[str, ...] = Field(
        ("CPUExecutionProvider",),
        description="onnxruntime execution providers in order of preference",
    )
    intra_op_threads: int = Field(0, ge=0, description="0: onnxruntime's default")
    warmup_runs: int = Field(2, ge=1)
    max_batch: int = Field(8, ge=1, le=1024, description="rows per onnxruntime call")
    max_wait_ms: float = Field(2.0, ge=0, le=1000, description="wait for a batch to fill")
    max_request_bytes: int = Field(4 << 20, ge=1024)
    max_ws_message_bytes: int = Field(1 << 20, ge=1024)
    max_bodies_per_request: int = Field(16, ge=1)
    max_frames_per_body: int = Field(1800, ge=1)
    rate_limit_per_s: float = Field(
        0.0, ge=0, description="REST requests per second per client; 0 disables"
    )
    rate_limit_burst: int = Field(20, ge=1)
    max_streams: int = Field(64, ge=1)
    stream_queue_frames: int = Field(
        128, ge=1, description="frames a stream may hold unprocessed before it drops"
    )
    reload_drain_s: float = Field(
        30.0, gt=0, description="how long an old model may finish its requests"
    )
