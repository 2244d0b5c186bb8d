"""Any OpenAI-compatible server (vLLM serve, LLaMA-Factory api, transformers serve, a hosted
API): a sliding window of concurrent requests, timeouts, retries with backoff, typed errors.

The default concurrency (64) keeps a served engine's batch full: ``vllm serve`` batches the
requests it has, so sending 16 at a time leaves most of a GPU idle. Images go as PNG data URLs,
the same pixels the ``hf:`` backend sees."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from sifdata.llm import ChatClient, ChatError, RetryPolicy
from sifmodel.backends.base import (
    DepthProvider,
    GenerationError,
    GenerationRequest,
    GenerationResponse,
    check_depth_available,
    prompts_for,
)
from sifmodel.backends.streaming import in_request_order, stream_concurrently
from sifmodel.turns import ToolCall


def api_tool_call(call_id: str, name: str, arguments: str) -> ToolCall:
    """A server's tool call, its JSON arguments parsed (an object, else the reason it is not)."""
    try:
        parsed = json.loads(arguments) if arguments.strip() else {}
    except json.JSONDecodeError as error:
        return ToolCall(name, None, arguments, call_id, f"the arguments are not JSON ({error.msg})")
    if not isinstance(parsed, dict):
        return ToolCall(
            name, None, arguments, call_id, f"the arguments are a JSON {type(parsed).__name__}, not an object"
        )
    return ToolCall(name, parsed, arguments, call_id)


class OpenAIBackend:
    """``openai:MODEL@BASE_URL``; the key comes from ``SIF_MODEL_API_KEY`` (or ``OPENAI_API_KEY``)."""

    name = "openai"
    calls_tools = True  # a request's tools are declared to the server, its tool calls returned

    spec_target = "MODEL@BASE_URL"

    @classmethod
    def from_spec(cls, target: str, options: dict[str, Any], depth: DepthProvider | None) -> OpenAIBackend:
        model, at, base_url = target.rpartition("@")
        if not at or not model or not base_url:
            raise ValueError("an openai spec is openai:MODEL@BASE_URL")
        return cls(model, base_url, depth=depth, **options)

    def __init__(
        self,
        model: str,
        base_url: str,
        *,
        api_key: str | None = None,
        concurrency: int = 64,
        timeout: float = 300.0,
        retry: RetryPolicy | None = None,
        retries: int | None = None,
        retry_delay: float | None = None,
        depth: DepthProvider | None = None,
        image_max_side: int | None = None,
    ) -> None:
        self.model_id = model
        if retry is None and (retries is not None or retry_delay is not None):
            retry = RetryPolicy(attempts=retries or 5, base_delay=retry_delay if retry_delay is not None else 1.0)
        self.client = ChatClient(model, base_url, api_key, key_env="SIF_MODEL_API_KEY", timeout=timeout, retry=retry)
        self.concurrency = concurrency
        self.depth = depth
        self.image_max_side = image_max_side
        self._identity: dict[str, Any] | None = None
        self._prepared: dict[str, list[dict[str, Any]] | Exception] = {}
        self.max_in_flight = concurrency

    def identity(self) -> dict[str, Any]:
        """The endpoint, the model name, and what the server reports about that model (its
        ``/v1/models`` entry: vLLM's ``root`` is the weights it serves); asked once."""
        if self._identity is None:
            reported = self.client.reported_model()
            payload = json.dumps([self.client.base_url, self.model_id, reported], sort_keys=True)
            self._identity = {
                "kind": "served",
                "endpoint": self.client.base_url,
                "model": self.model_id,
                "reported": reported,
                "fingerprint": hashlib.sha256(payload.encode()).hexdigest(),
            }
        return self._identity

    def _one(self, request: GenerationRequest) -> GenerationResponse:
        prepared = self._prepared.pop(request.id)
        if isinstance(prepared, Exception):  # its prompt could not be built: this request's error
            return GenerationResponse(request.id, None, GenerationError("request", f"prompt: {prepared}"))
        settings = request.settings
        params: dict[str, Any] = {"max_tokens": settings.max_new_tokens, "temperature": max(settings.temperature, 0.0)}
        if not settings.greedy:
            params["top_p"] = settings.top_p
        if settings.seed is not None:
            params["seed"] = settings.seed
        if request.tools:
            params["tools"] = list(request.tools)
        try:
            result = self.client.complete(prepared, **params)
        except ChatError as error:
            kind = "backend" if error.fatal else "request"
            return GenerationResponse(request.id, None, GenerationError(kind, error.reason))
        calls = tuple(api_tool_call(call.id, call.name, call.arguments) for call in result.tool_calls)
        return GenerationResponse(
            request.id, result.text, None, result.prompt_tokens, result.completion_tokens, result.latency_s, calls
        )

    def _prepare(self, requests: list[GenerationRequest]) -> list[GenerationRequest]:
        """Build the messages of requests taken together (depth estimated in one batch); a
        request whose prompt cannot be built (an unreadable image) fails alone."""
        try:
            prompts = prompts_for(requests, self.depth)
        except ValueError:
            raise  # a configuration error (sif without depth and no depth model): the run stops
        except Exception:
            for request in requests:
                try:
                    (prompt,) = prompts_for([request], self.depth)
                    self._prepared[request.id] = prompt.openai_messages(self.image_max_side)
                except Exception as error:
                    self._prepared[request.id] = error
            return requests
        for request, prompt in zip(requests, prompts, strict=True):
            self._prepared[request.id] = prompt.openai_messages(self.image_max_side)
        return requests

    def stream(self, requests: Iterable[GenerationRequest]) -> Iterator[GenerationResponse]:
        """A sliding window of ``concurrency`` requests: each next one is sent as one finishes."""
        return stream_concurrently(requests, self._one, self.concurrency, prepare=self._prepare)

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResponse]:
        check_depth_available(requests, self.depth)
        return in_request_order(requests, self.stream(requests))
