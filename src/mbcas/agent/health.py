"""The agent's HTTP endpoint: ``/metrics``, ``/healthz`` and ``/readyz`` on one port (default 9100).

``/healthz`` is 200 while the loop has completed a tick recently (within ``stale_after_s``): a
wedged loop fails the liveness probe. ``/readyz`` is 200 once the pod cache is synced and a first
tick has run. Both answer with a one-line reason; the server runs in a daemon thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from mbcas.agent.metrics import AgentMetrics

__all__ = ["HealthServer"]

Check = Callable[[], tuple[bool, str]]


class HealthServer:
    """Serves metrics and probes; ``port=0`` picks a free port (see :attr:`port`)."""

    def __init__(self, metrics: AgentMetrics, healthy: Check, ready: Check, *, port: int, addr: str) -> None:
        routes: dict[str, Callable[[], tuple[int, str, bytes]]] = {
            "/metrics": lambda: (200, "text/plain; version=0.0.4; charset=utf-8", metrics.render()),
            "/healthz": lambda: _probe(healthy),
            "/readyz": lambda: _probe(ready),
        }

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                route = routes.get(self.path.split("?", 1)[0])
                if route is None:
                    status, ctype, body = 404, "text/plain", b"not found\n"
                else:
                    status, ctype, body = route()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return

        self._server = ThreadingHTTPServer((addr, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="agent-http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _probe(check: Check) -> tuple[int, str, bytes]:
    ok, why = check()
    return (200 if ok else 503), "text/plain", f"{'ok' if ok else 'not ok'}: {why}\n".encode()
