"""An OpenAI-compatible chat server on loopback whose answers take as long as generation
lengths make them: each request's latency is drawn from a lognormal distribution, seeded by
the request's text, so that two runs over the same requests meet the same latencies."""

from __future__ import annotations

import hashlib
import json
import math
import random
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _Server(ThreadingHTTPServer):
    request_queue_size = 256
    daemon_threads = True


class LatencyServer:
    """``median`` seconds at the middle, ``sigma`` the spread of the log of the latency."""

    def __init__(
        self,
        median: float = 0.3,
        sigma: float = 0.8,
        reply: str = "<answer>(A)</answer>",
        reply_for: Callable[[dict[str, Any]], str] | None = None,
        latency_key: Callable[[dict[str, Any]], Any] | None = None,
    ) -> None:
        """``reply_for(request)``: the reply to each request (default: ``reply``); ``latency_key``:
        what a request's latency is seeded by (default: its messages)."""
        self.median, self.sigma, self.reply = median, sigma, reply
        self.reply_for = reply_for or (lambda request: self.reply)
        self.latency_key = latency_key or (lambda request: request.get("messages"))
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return

            def _send(self, payload: dict[str, Any]) -> None:
                body = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                self._send({"object": "list", "data": [{"id": "latency-server", "object": "model"}]})

            def do_POST(self) -> None:
                request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                time.sleep(server.latency(request))
                message = {"role": "assistant", "content": server.reply_for(request)}
                self._send(
                    {
                        "id": "chatcmpl-latency",
                        "object": "chat.completion",
                        "created": 0,
                        "model": request.get("model", ""),
                        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                    }
                )

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def latency(self, request: dict[str, Any]) -> float:
        seed = hashlib.sha256(json.dumps(self.latency_key(request), sort_keys=True).encode()).digest()
        return random.Random(seed).lognormvariate(math.log(self.median), self.sigma)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> LatencyServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
