"""Any OpenAI-compatible server (vLLM serve, LLaMA-Factory api, transformers serve, a hosted
API): bounded concurrency, timeouts, retries with backoff, typed errors."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sifdata.llm import ChatClient, ChatError, RetryPolicy
from sifmodel.backends.base import (
    DepthProvider,
    GenerationError,
    GenerationRequest,
    GenerationResponse,
    prompts_for,
)


class OpenAIBackend:
    """``openai:MODEL@BASE_URL``; the key comes from ``SIF_MODEL_API_KEY`` (or ``OPENAI_API_KEY``)."""

    name = "openai"

    def __init__(
        self,
        model: str,
        base_url: str,
        *,
        api_key: str | None = None,
        concurrency: int = 16,
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

    def _one(self, request: GenerationRequest, messages: list[dict[str, Any]]) -> GenerationResponse:
        settings = request.settings
        params: dict[str, Any] = {"max_tokens": settings.max_new_tokens, "temperature": max(settings.temperature, 0.0)}
        if not settings.greedy:
            params["top_p"] = settings.top_p
        if settings.seed is not None:
            params["seed"] = settings.seed
        try:
            result = self.client.complete(messages, **params)
        except ChatError as error:
            kind = "backend" if error.fatal else "request"
            return GenerationResponse(request.id, None, GenerationError(kind, error.reason))
        return GenerationResponse(
            request.id, result.text, None, result.prompt_tokens, result.completion_tokens, result.latency_s
        )

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResponse]:
        prompts = prompts_for(requests, self.depth)
        messages = [prompt.openai_messages(self.image_max_side) for prompt in prompts]
        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="sif-openai") as pool:
            return list(pool.map(self._one, requests, messages))
