"""docker/healthcheck.py: healthy only on a 200 from /v2/health/ready, probing loopback when the
service listens on every interface."""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import ModuleType

import pytest

from tests.docker.deployment_files import DOCKER_DIR


def _load_healthcheck() -> ModuleType:
    spec = importlib.util.spec_from_file_location("healthcheck", DOCKER_DIR / "healthcheck.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


healthcheck = _load_healthcheck()


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("0.0.0.0", "http://127.0.0.1:9000/v2/health/ready"),
        ("", "http://127.0.0.1:9000/v2/health/ready"),
        ("::", "http://127.0.0.1:9000/v2/health/ready"),
        ("127.0.0.2", "http://127.0.0.2:9000/v2/health/ready"),
        ("::1", "http://[::1]:9000/v2/health/ready"),
    ],
)
def test_probe_url_follows_the_service_settings(host: str, expected: str) -> None:
    assert healthcheck.ready_url({"MASKSEM_HOST": host, "MASKSEM_PORT": "9000"}) == expected


def test_probe_url_defaults_to_the_service_defaults() -> None:
    assert healthcheck.ready_url({}) == "http://127.0.0.1:8000/v2/health/ready"


class _Ready(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        code = self.status if self.path == "/v2/health/ready" else 404
        self.send_response(code)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture()
def ready_server() -> Iterator[tuple[ThreadingHTTPServer, type[_Ready]]]:
    handler = type("Handler", (_Ready,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, handler
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False), (500, False)])
def test_healthy_only_when_ready_answers_200(
    ready_server: tuple[ThreadingHTTPServer, type[_Ready]],
    monkeypatch: pytest.MonkeyPatch,
    status: int,
    healthy: bool,
) -> None:
    server, handler = ready_server
    handler.status = status
    monkeypatch.setenv("MASKSEM_HOST", "0.0.0.0")
    monkeypatch.setenv("MASKSEM_PORT", str(server.server_address[1]))
    assert (healthcheck.main() == 0) is healthy


def test_unhealthy_when_nothing_listens(monkeypatch: pytest.MonkeyPatch) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ready)
    port = server.server_address[1]
    server.server_close()  # the port is now closed
    monkeypatch.setenv("MASKSEM_HOST", "127.0.0.1")
    monkeypatch.setenv("MASKSEM_PORT", str(port))
    assert healthcheck.main() == 1
