"""In-process vLLM (``vllm:PATH_OR_ID``): an optional extra for GPU machines, imported only
when chosen.

vLLM's throughput comes from batching: the engine schedules every prompt it is given at once
(continuous batching), so this backend hands it large chunks, ``chunk_size`` prompts per
``LLM.chat`` call (default 256), each prompt with its own sampling parameters and its images
(RGB and depth, as PNG data URLs: lossless). A chunk whose call fails is split in halves until
the failing prompts stand alone: one bad prompt costs its own answer, never its chunk's.

Spec options go to ``vllm.LLM``: ``vllm:Qwen/Qwen2.5-VL-7B-Instruct?tensor_parallel_size=4``,
``data_parallel_size``, ``gpu_memory_utilization``, ``max_model_len``, ``dtype``, ... and
``chunk_size`` (ours).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from sifmodel.backends.base import (
    DepthProvider,
    GenerationError,
    GenerationRequest,
    GenerationResponse,
    check_depth_available,
    model_identity,
    prompts_for,
)
from sifmodel.backends.streaming import in_request_order, stream_in_batches


class VLLMBackend:
    name = "vllm"

    spec_target = "PATH_OR_ID"

    @classmethod
    def from_spec(cls, target: str, options: dict[str, Any], depth: DepthProvider | None) -> VLLMBackend:
        return cls(target, depth=depth, **options)

    def __init__(
        self, model: str, *, depth: DepthProvider | None = None, chunk_size: int = 256, **engine_options: Any
    ) -> None:
        try:
            import vllm
        except ImportError as error:
            raise ImportError(
                "the vllm backend needs vLLM, which runs on GPU machines: pip install 'sifthinker[vllm]' "
                "(or serve the model with `vllm serve` and use openai:MODEL@URL)"
            ) from error
        engine_options.setdefault("limit_mm_per_prompt", {"image": 4})
        self.model_id = model
        self.revision = engine_options.get("revision")
        self.llm = vllm.LLM(model=model, **engine_options)
        self._vllm = vllm
        self.depth = depth
        self.chunk_size = chunk_size
        self.max_in_flight = chunk_size
        self.engine_calls = 0

    def identity(self) -> dict[str, Any]:
        return model_identity(self.model_id, self.revision)

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResponse]:
        check_depth_available(requests, self.depth)
        return in_request_order(requests, self.stream(requests))

    def stream(self, requests: Iterable[GenerationRequest]) -> Iterator[GenerationResponse]:
        """Chunks of what is waiting, up to ``chunk_size`` prompts per engine call."""
        return stream_in_batches(requests, self._chunk, self.chunk_size)

    def _chunk(self, requests: Sequence[GenerationRequest]) -> list[GenerationResponse]:
        check_depth_available(requests, self.depth)
        try:
            prompts = prompts_for(requests, self.depth)
        except ValueError:
            raise
        except Exception:  # an unreadable image: build the prompts one by one, isolating it
            return [response for request in requests for response in self._chunk_one_by_one(request)]
        return self._call([(r, p.openai_messages()) for r, p in zip(requests, prompts, strict=True)])

    def _chunk_one_by_one(self, request: GenerationRequest) -> list[GenerationResponse]:
        try:
            (prompt,) = prompts_for([request], self.depth)
        except Exception as error:
            return [GenerationResponse(request.id, None, GenerationError("request", f"prompt: {error}"))]
        return self._call([(request, prompt.openai_messages())])

    def _params(self, request: GenerationRequest) -> Any:
        s = request.settings
        return self._vllm.SamplingParams(
            max_tokens=s.max_new_tokens, temperature=max(s.temperature, 0.0), top_p=s.top_p, seed=s.seed
        )

    def _call(self, items: list[tuple[GenerationRequest, list[dict[str, Any]]]]) -> list[GenerationResponse]:
        """One engine call for ``items``; on failure, halves, until the failing prompts stand alone."""
        started = time.perf_counter()
        try:
            self.engine_calls += 1
            outputs = self.llm.chat(
                [messages for _, messages in items],
                sampling_params=[self._params(request) for request, _ in items],
                use_tqdm=False,
            )
        except Exception as error:
            if len(items) == 1:
                request = items[0][0]
                return [
                    GenerationResponse(request.id, None, GenerationError("request", f"{type(error).__name__}: {error}"))
                ]
            middle = len(items) // 2
            return self._call(items[:middle]) + self._call(items[middle:])
        latency = (time.perf_counter() - started) / len(items)
        responses = []
        for (request, _), output in zip(items, outputs, strict=True):
            completion = output.outputs[0]
            responses.append(
                GenerationResponse(
                    request.id,
                    completion.text,
                    None,
                    len(output.prompt_token_ids or []),
                    len(completion.token_ids),
                    latency,
                )
            )
        return responses
