"""A tiny HTTP gateway in front of the real server, for the retry tests: the part of a deployment
(nginx during a rolling restart, a timeout between a backend and the server) that makes a publish
fail *after* the server stored it. It forwards every request and can replace the first answers with
its own 503, and it records each request's ``Idempotency-Key``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx


class Gateway:
    def __init__(self, upstream: str, *, lose: int, forward: bool = True) -> None:
        self.upstream = upstream
        self.lose = lose
        self.forward = forward
        self.keys: list[str | None] = []
        self._lock = threading.Lock()

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            self.keys.append(headers.get("idempotency-key"))
            lost = len(self.keys) <= self.lose
        if self.forward:
            answer = httpx.request(method, self.upstream + path, headers=headers, content=body)
            if not lost:
                return answer.status_code, {"content-type": answer.headers["content-type"]}, answer.content
        return 503, {"content-type": "text/html"}, b"<html>503 Service Temporarily Unavailable</html>"


@contextmanager
def running(gateway: Gateway) -> Iterator[str]:
    """Serves ``gateway`` on a free loopback port; yields its base URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
            status, out_headers, out = gateway.handle("POST", self.path, headers, body)
            self.send_response(status)
            for k, v in out_headers.items():
                self.send_header(k, v)
            self.send_header("content-length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, format: str, *args: object) -> None:
            pass  # quiet: pytest shows failures, not traffic

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    # A short poll interval: shutdown() waits for the next poll.
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()
