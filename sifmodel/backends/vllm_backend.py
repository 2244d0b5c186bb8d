"""In-process vLLM (``vllm:PATH_OR_ID``): an optional extra for GPU machines, imported only
when chosen. Tensor and data parallelism come through the spec's options
(``vllm:Qwen/Qwen2.5-VL-7B-Instruct?tensor_parallel_size=4``)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from sifmodel.backends.base import (
    DepthProvider,
    GenerationError,
    GenerationRequest,
    GenerationResponse,
    model_identity,
    prompts_for,
)


class VLLMBackend:
    name = "vllm"

    def __init__(self, model: str, *, depth: DepthProvider | None = None, **engine_options: Any) -> None:
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

    def identity(self) -> dict[str, Any]:
        return model_identity(self.model_id, self.revision)

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResponse]:
        prompts = prompts_for(requests, self.depth)
        responses: list[GenerationResponse] = []
        for request, prompt in zip(requests, prompts, strict=True):
            s = request.settings
            params = self._vllm.SamplingParams(
                max_tokens=s.max_new_tokens, temperature=max(s.temperature, 0.0), top_p=s.top_p, seed=s.seed
            )
            started = time.perf_counter()
            try:
                (output,) = self.llm.chat([prompt.openai_messages()], params, use_tqdm=False)
            except Exception as error:  # typed per-request error, the run goes on
                responses.append(GenerationResponse(request.id, None, GenerationError("request", str(error))))
                continue
            completion = output.outputs[0]
            responses.append(
                GenerationResponse(
                    request.id,
                    completion.text,
                    None,
                    len(output.prompt_token_ids or []),
                    len(completion.token_ids),
                    time.perf_counter() - started,
                )
            )
        return responses
