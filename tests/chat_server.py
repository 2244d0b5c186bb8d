"""A real OpenAI-compatible HTTP server on loopback whose "model" is a script.

It stands in for the writer LLM (which no test can reach): it speaks the real
``/v1/chat/completions`` protocol over real sockets, so the client, retries, timeouts and
error handling are exercised for real. For each request it picks a behaviour:

- ``ok``: the correct chain, read back from the plan in the request, in a code fence; or, for
  a judge prompt, ``{"score": 1.0}`` for an exact match and ``{"score": 0.25}`` otherwise;
- ``429`` / ``500`` / ``401`` / ``400``: that HTTP status (429 with ``Retry-After: 0``, or the
  value after ``@``: ``429@-5``);
- ``garbage200``: status 200 with an HTML page instead of a chat completion;
- ``slow``: sleeps past the client's timeout, then answers;
- ``garbage``: prose with no chain; ``wrong_boxes`` / ``wrong_answer``: a chain that fails
  the plan checks; ``fix_on_feedback``: garbage until the request carries a rejection reason;
- ``text:...``: exactly that text.

Behaviours are chosen per question (the first rule whose key occurs in the request), each
rule a queue consumed one request at a time, then ``default``.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

STEP = re.compile(r"normalized depth of (\[.*?\]), as shown")


def chain_for(messages: list[dict[str, Any]], *, wrong_boxes: bool = False, wrong_answer: bool = False) -> str:
    texts = []
    for message in messages:
        if message["role"] != "user":
            continue
        content = message["content"]
        parts = [content] if isinstance(content, str) else [p.get("text", "") for p in content if p["type"] == "text"]
        texts.extend(parts)
    joined = "\n".join(texts)
    if "Correct answer:" not in joined:  # not a writer request: any model-like reply will do
        return '<think><area>[{"bbox_2d":[0.000,0.000,1.000,1.000],"depth":0.500}]</area><text>x</text></think><answer>A</answer>'
    answer = re.search(r"Correct answer: (.*)", joined).group(1).strip()  # type: ignore[union-attr]
    lines = ["<think>"]
    for number, match in enumerate(STEP.finditer(joined)):
        items = json.loads(match.group(1))
        if wrong_boxes and number == len(STEP.findall(joined)) - 1:
            items[0]["bbox_2d"] = [0.0, 0.0, 0.5, 0.5]
        area = ",".join(
            '{"bbox_2d":[' + ",".join(f"{v:.3f}" for v in item["bbox_2d"]) + f'],"depth":{item["depth"]:.3f}' + "}"
            for item in items
        )
        lines.append(f"<area>[{area}]</area>")
        lines.append(f"<text>Step {number + 1}: I look at this region.</text>")
    lines += ["</think>", "<answer>", "banana" if wrong_answer else answer, "</answer>"]
    return "```\n" + "\n".join(lines) + "\n```"


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # socketserver's default of 5 drops bursts of connections from thread pools


def judge_score(messages: list[dict[str, Any]]) -> float:
    """The scripted judge: 1.0 for an exact match, 0.25 otherwise."""
    text = json.dumps(messages)
    reference = re.search(r"Reference answer: (.*?)\\nModel answer", text).group(1)  # type: ignore[union-attr]
    prediction = re.search(r"Model answer: (.*?)\\nHow close", text).group(1)  # type: ignore[union-attr]
    return 1.0 if reference.strip().lower() == prediction.strip().lower() else 0.25


class ScriptedChatServer:
    def __init__(
        self, default: str = "ok", slow_seconds: float = 3.0, latency: Callable[[dict[str, Any]], float] | None = None
    ) -> None:
        self.default = default
        self.slow_seconds = slow_seconds
        self.latency = latency  # seconds before answering a request (varied, as generation lengths vary)
        self.rules: list[tuple[str, list[str]]] = []
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                self._send(200, {"object": "list", "data": [{"id": "scripted-writer", "object": "model"}]})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                request = json.loads(self.rfile.read(length))
                behaviour = server._behaviour(request)
                if server.latency is not None:
                    time.sleep(server.latency(request))
                with server._lock:
                    server.requests.append(request)
                    server.headers.append({k.lower(): v for k, v in self.headers.items()})
                if behaviour.split("@")[0] in ("429", "500", "401", "400"):
                    status = int(behaviour.split("@")[0])  # "429@-5": with that Retry-After header
                    retry_after = behaviour.partition("@")[2] or "0"
                    extra = {"Retry-After": retry_after} if status == 429 else None
                    self._send(status, {"error": {"message": f"scripted {status}", "type": "scripted"}}, extra)
                    return
                if behaviour == "garbage200":  # a proxy's page where a completion should be
                    body = b"<html><body>502 Bad Gateway (but sent as 200)</body></html>"
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                if behaviour == "slow":
                    time.sleep(server.slow_seconds)
                    behaviour = "ok"
                messages = request["messages"]
                if behaviour == "fix_on_feedback":
                    fixed = any("was rejected" in str(m.get("content")) for m in messages)
                    behaviour = "ok" if fixed else "garbage"
                judging = "You grade answers" in json.dumps(messages[0])
                if behaviour.startswith("text:"):
                    text = behaviour.removeprefix("text:")
                elif behaviour == "garbage":
                    text = "I'm sorry, I can't produce that format."
                elif judging:
                    text = json.dumps({"score": judge_score(messages)})
                else:
                    text = chain_for(
                        messages, wrong_boxes=behaviour == "wrong_boxes", wrong_answer=behaviour == "wrong_answer"
                    )
                self._send(
                    200,
                    {
                        "id": "chatcmpl-scripted",
                        "object": "chat.completion",
                        "created": int(time.time()),
                        "model": request.get("model", ""),
                        "choices": [
                            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                        ],
                        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                    },
                )

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _behaviour(self, request: dict[str, Any]) -> str:
        text = json.dumps(request["messages"][:2])
        with self._lock:
            for key, queue in self.rules:
                if key in text and queue:
                    return queue.pop(0)
        return self.default

    def script(self, key: str, behaviours: list[str]) -> None:
        with self._lock:
            self.rules.append((key, list(behaviours)))

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> ScriptedChatServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
