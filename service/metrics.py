"""Prometheus metrics of one service instance, in a registry of its own (no global state).

Inference, batch, queue-wait, prediction, reload and model-info metrics carry a ``model`` label:
the served name of the model (its file stem), as the routes take it.
"""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
)

from service.engine import InferenceEngine

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class ServiceMetrics:
    """Everything /metrics shows; also the micro-batcher's :class:`BatchObserver`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "masksem_requests", "HTTP requests", ["method", "route", "status"], registry=r
        )
        self.inference_seconds = Histogram(
            "masksem_inference_seconds",
            "onnxruntime time per batch",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "masksem_batch_size",
            "windows per onnxruntime call",
            ["model"],
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.queue_wait_seconds = Histogram(
            "masksem_queue_wait_seconds",
            "time a window waited for its batch",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.open_streams = Gauge("masksem_open_streams", "open WebSocket streams", registry=r)
        self.active_bodies = Gauge(
            "masksem_active_bodies", "bodies tracked over all streams", registry=r
        )
        self.frames = Counter("masksem_stream_frames", "stream frames received", registry=r)
        self.frames_dropped = Counter(
            "masksem_frames_dropped", "stream frames dropped", ["reason"], registry=r
        )
        self.bodies_dropped = Counter(
            "masksem_bodies_dropped",
            "bodies left out of a stream frame that was itself taken",
            ["reason"],
            registry=r,
        )
        self.streams_refused = Counter(
            "masksem_streams_refused",
            "WebSocket streams refused or closed by the server",
            ["reason"],
            registry=r,
        )
        self.stream_errors = Counter(
            "masksem_stream_errors", "error messages sent to stream clients", ["code"], registry=r
        )
        self.predictions = Counter(
            "masksem_predictions", "predictions sent", ["transport", "model"], registry=r
        )
        self.actions = Counter(
            "masksem_actions",
            "action events sent to stream clients",
            ["model", "event"],  # event: started | ended
            registry=r,
        )
        self.reloads = Counter("masksem_reloads", "model reloads", ["outcome", "model"], registry=r)
        self.model = Info("masksem_model", "a model being served", ["model"], registry=r)

    def batch_observer(self, model: str) -> ModelBatches:
        """The micro-batcher's :class:`BatchObserver` for the model served as ``model``."""
        return ModelBatches(
            self.batch_size.labels(model),
            self.inference_seconds.labels(model),
            self.queue_wait_seconds.labels(model),
        )

    def set_model(self, model: str, engine: InferenceEngine) -> None:
        card = engine.card
        self.model.labels(model).info(
            {
                "name": card.name,
                "version": card.version,
                "variant": card.variant,
                "sha256": card.onnx_sha256,
                "provider": engine.provider,
                "file": engine.path.name,  # never the server's folders
            }
        )


class ModelBatches:
    """Records one model's batches (the :class:`service.engine.BatchObserver` of its batcher)."""

    def __init__(self, batch_size: Histogram, inference: Histogram, queue_wait: Histogram) -> None:
        self._size, self._inference, self._wait = batch_size, inference, queue_wait

    def observe_batch(self, size: int, seconds: float, queue_waits: Sequence[float]) -> None:
        self._size.observe(size)
        self._inference.observe(seconds)
        for wait in queue_waits:
            self._wait.observe(wait)
