"""A scripted SIF model, for the demo and for tests: a real OpenAI-compatible server on loopback
whose reply to each sample is a SIF chain built by ``sifdata`` from that sample's image and the
benchmark's own ground truth (the whole image, then the ground-truth region, each with the depth
read from the image's depth map; the right answer).

It is right by construction and says so: its model name (:data:`SCRIPTED_MODEL`) is in every
run, report and viewer page made with it. It exists so that the offline demo's viewer shows what
the viewer is for (focus boxes, depths, the ground truth beside them), which a random-weight model
never writes; it is not a baseline.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sifdata.chain import format_chain
from sifdata.chain_types import Chain, Focus, Text
from sifdata.depth import DepthEstimator, DepthMap
from sifdata.geometry import clip_box, round_box
from sifeval.adapters import LETTERS, Benchmark
from sifeval.types import Sample

SCRIPTED_MODEL = "scripted-sif-from-ground-truth"


def scripted_chain(bench: Benchmark, sample: Sample, depth: DepthEstimator | None) -> str | None:
    """The chain the scripted model answers ``sample`` with; None where the benchmark has no
    ground-truth box for it (the model then says it cannot answer)."""
    image = sample.images[0].load() if sample.images else None
    if image is None:
        return None
    boxes = []
    for box in bench.truth_boxes(sample, image.width, image.height):
        x1, y1, x2, y2 = round_box(clip_box(box))
        if x1 < x2 and y1 < y2:
            boxes.append((x1, y1, x2, y2))
    if not boxes:
        return None
    depth_map = DepthMap(depth.estimate_one(image)) if depth is not None else None

    def depths(regions: Sequence[tuple[float, float, float, float]]) -> list[float | None]:
        return [round(depth_map.box_mean(b), 3) if depth_map is not None else 0.5 for b in regions]

    whole = [(0.0, 0.0, 1.0, 1.0)]
    if sample.choices and sample.target in LETTERS[: len(sample.choices)]:
        answer = f"{sample.target}. {sample.choices[LETTERS.index(sample.target)]}"
    else:
        answer = sample.target
    chain = Chain(
        steps=[
            Focus(boxes=whole, depths=depths(whole)),
            Text(text="The question is about one part of the image; I look at the whole scene first."),
            Focus(boxes=boxes, depths=depths(boxes)),
            Text(text="This region holds what the question asks about."),
        ],
        answer=answer,
    )
    return format_chain(chain)


Reply = str | dict[str, Any]  # a reply's text, or {"content": ..., "tool_calls": [...]} (API tool calls)


class ScriptedSIFServer:
    """``/v1/chat/completions`` on loopback answering each request with the chain of the sample
    whose question it carries (the longest known question found in the request's text); ``/v1/models``
    lists :data:`SCRIPTED_MODEL`. Use as a context manager; ``base_url`` is its address.

    A script may be a list of replies, one per turn of a multi-turn agent: the reply to a request
    is the one at the number of assistant turns it already holds (the last one once they run out).
    A reply is its text, ``{"content": ..., "tool_calls": [{"id", "name", "arguments"}]}``, or
    ``{"http_status": 400}`` (that status, an error body: a request that fails).
    ``requests`` keeps every request body received, in order."""

    def __init__(self, replies: dict[str, str] | dict[str, Reply | list[Reply]]) -> None:
        self.replies = replies
        self.requests: list[dict[str, Any]] = []
        keys = sorted(replies, key=len, reverse=True)
        server = self
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _send(self, payload: dict[str, Any]) -> None:
                body = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                self._send({"object": "list", "data": [{"id": SCRIPTED_MODEL, "object": "model"}]})

            def do_POST(self) -> None:
                request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                with lock:
                    server.requests.append(request)
                messages = request.get("messages", [])
                first_user: dict[str, Any] = next((m for m in messages if m.get("role") == "user"), {})
                text = json.dumps(first_user, ensure_ascii=False)
                found = next((key for key in keys if json.dumps(key, ensure_ascii=False)[1:-1] in text), None)
                script = server.replies[found] if found else "<answer>I have no script for this question.</answer>"
                if isinstance(script, list):
                    turn = sum(1 for m in messages if m.get("role") == "assistant")
                    script = script[min(turn, len(script) - 1)]
                message: dict[str, Any] = {"role": "assistant", "content": script}
                if isinstance(script, dict) and "http_status" in script:
                    body = json.dumps({"error": {"message": "scripted failure"}}).encode()
                    self.send_response(int(script["http_status"]))
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                if isinstance(script, dict):
                    message = {"role": "assistant", "content": script.get("content")}
                    calls = script.get("tool_calls") or []
                    if calls:
                        message["tool_calls"] = [
                            {
                                "id": call["id"],
                                "type": "function",
                                "function": {"name": call["name"], "arguments": call["arguments"]},
                            }
                            for call in calls
                        ]
                finish = "tool_calls" if message.get("tool_calls") else "stop"
                self._send(
                    {
                        "id": "scripted",
                        "object": "chat.completion",
                        "created": int(time.time()),
                        "model": SCRIPTED_MODEL,
                        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
                    }
                )

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> ScriptedSIFServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def scripted_replies(bench: Benchmark, samples: Sequence[Sample], depth: DepthEstimator | None) -> dict[str, str]:
    """Each sample's chain, keyed by the question text its SIF request carries."""
    replies = {}
    for sample in samples:
        chain = scripted_chain(bench, sample, depth)
        if chain is not None:
            replies[sample.sif_question or sample.question] = chain
    return replies
