"""HTTP and WebSocket routes of the service: REST, Open Inference Protocol v2, streams, ops."""
