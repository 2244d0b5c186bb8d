"""A stand-in for the ``vllm`` package (not vLLM): the ``LLM``/``SamplingParams`` surface the
``vllm:`` backend uses, with a fixed cost per engine call and a small cost per prompt, as a GPU
engine has. Put its parent folder on ``sys.path`` to use it; the benchmark and the tests do.

Every call is recorded in ``LLM.calls`` (the number of prompts of each call). A prompt whose
text holds ``FAIL_THIS_PROMPT`` makes the call that carries it raise, as vLLM does when one
request of a batch is malformed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

CALL_OVERHEAD_S = 0.0
PER_PROMPT_S = 0.0


@dataclass
class SamplingParams:
    max_tokens: int = 16
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None


@dataclass
class CompletionOutput:
    text: str
    token_ids: list[int]


@dataclass
class RequestOutput:
    prompt_token_ids: list[int]
    outputs: list[CompletionOutput] = field(default_factory=list)


def _parts(conversation: list[dict[str, Any]]) -> list[Any]:
    parts: list[Any] = []
    for message in conversation:
        content = message["content"]
        parts.extend(content if isinstance(content, list) else [content])
    return parts


class LLM:
    calls: ClassVar[list[int]] = []  # prompts per engine call, across instances (the tests read it)

    def __init__(self, model: str, **engine_options: Any) -> None:
        self.model = model
        self.engine_options = engine_options

    def chat(
        self,
        messages: list[list[dict[str, Any]]],
        sampling_params: SamplingParams | list[SamplingParams] | None = None,
        use_tqdm: bool = True,
    ) -> list[RequestOutput]:
        LLM.calls.append(len(messages))
        if isinstance(sampling_params, list):
            params = sampling_params
        else:
            params = [sampling_params or SamplingParams()] * len(messages)
        if len(params) != len(messages):
            raise ValueError("one SamplingParams per prompt")
        time.sleep(CALL_OVERHEAD_S + PER_PROMPT_S * len(messages))
        outputs = []
        for conversation, param in zip(messages, params, strict=True):
            parts = _parts(conversation)
            text = " ".join(part if isinstance(part, str) else part.get("text", "") for part in parts)
            if "FAIL_THIS_PROMPT" in text:
                raise RuntimeError("stand-in engine: a malformed prompt in this batch")
            images = sum(isinstance(part, dict) and part.get("type") == "image_url" for part in parts)
            reply = f"<answer>A</answer> images={images} max_tokens={param.max_tokens}"
            outputs.append(RequestOutput(list(range(len(text.split()))), [CompletionOutput(reply, [1, 2, 3])]))
        return outputs
