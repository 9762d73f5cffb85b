"""Container health check: exit 0 when the local service answers ``/v2/health/ready`` with 200.

Standard library only, so the images need neither curl nor wget. Reads the same
``MASKSEM_HOST`` / ``MASKSEM_PORT`` variables as ``masksem serve``.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping

READY_PATH = "/v2/health/ready"
DEFAULT_PORT = "8000"
# Below the images' HEALTHCHECK --timeout, so a hung server reads as unhealthy, not as killed.
TIMEOUT_S = 4.0
# A server bound to every interface also answers on loopback; loopback is what a probe inside
# the container can always reach.
WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::", "[::]"})


def ready_url(environ: Mapping[str, str]) -> str:
    """The readiness URL of the service configured by ``environ``."""
    host = environ.get("MASKSEM_HOST", "").strip()
    if host in WILDCARD_HOSTS:
        host = "127.0.0.1"
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 literal needs brackets in a URL
    port = environ.get("MASKSEM_PORT", "").strip() or DEFAULT_PORT
    return f"http://{host}:{port}{READY_PATH}"


def probe(url: str, timeout_s: float) -> str | None:
    """None when ``url`` answers 200, otherwise why it is not healthy."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            status = response.status
    except urllib.error.HTTPError as error:
        return f"{url} answered {error.code}"
    except (urllib.error.URLError, OSError) as error:
        return f"{url} unreachable: {error}"
    return None if status == 200 else f"{url} answered {status}"


def main() -> int:
    problem = probe(ready_url(os.environ), TIMEOUT_S)
    if problem is not None:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
