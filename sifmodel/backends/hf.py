"""transformers backend: Qwen2.5-VL or any image-text-to-text model, batched, greedy or sampled.

Spec options: ``device``, ``dtype`` (``auto``, ``bfloat16``, ...), ``batch_size``,
``device_map`` (``auto`` spreads a large model over the GPUs), ``attn_implementation``
(``sdpa``, ``flash_attention_2``), ``revision``: ``hf:Qwen/Qwen2.5-VL-7B-Instruct?device_map=auto&dtype=bfloat16``.
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
    GenerationSettings,
    ModelUnavailable,
    check_depth_available,
    model_identity,
    prompts_for,
)
from sifmodel.backends.streaming import in_request_order, stream_in_batches


def load_processor(path: str, **kwargs: Any) -> Any:
    """``AutoProcessor`` that is really a processor: on a folder without an image processor,
    transformers quietly returns just the tokenizer, which would fail much later."""
    from transformers import AutoProcessor, ProcessorMixin

    processor = AutoProcessor.from_pretrained(path, **kwargs)
    if not isinstance(processor, ProcessorMixin) or getattr(processor, "image_processor", None) is None:
        raise ValueError(f"{path} has no image processor (AutoProcessor gave {type(processor).__name__})")
    if getattr(processor, "tokenizer", None) is not None:
        processor.tokenizer.padding_side = "left"  # generation pads on the left
    return processor


class TransformersBackend:
    name = "transformers"

    spec_target = "PATH_OR_ID"

    @classmethod
    def from_spec(cls, target: str, options: dict[str, Any], depth: DepthProvider | None) -> TransformersBackend:
        return cls(target, depth=depth, **options)

    def __init__(
        self,
        model: str,
        *,
        device: str | None = None,
        dtype: str = "auto",
        batch_size: int = 4,
        depth: DepthProvider | None = None,
        revision: str | None = None,
        device_map: str | None = None,
        attn_implementation: str | None = None,
    ) -> None:
        import torch
        from transformers import AutoModelForImageTextToText

        from sifdata.depth import default_device

        self.model_id = model
        try:
            self.processor = load_processor(model, revision=revision)
        except (OSError, ValueError) as error:
            raise ModelUnavailable(model, error) from None
        torch_dtype = "auto" if dtype == "auto" else getattr(torch, dtype)
        options: dict[str, Any] = {"dtype": torch_dtype, "revision": revision}
        if device_map is not None:  # accelerate places the layers (several GPUs, offloading)
            options["device_map"] = device_map
        if attn_implementation is not None:  # "sdpa", "flash_attention_2", "eager"
            options["attn_implementation"] = attn_implementation
        self.model = AutoModelForImageTextToText.from_pretrained(model, **options)
        if device_map is None:
            self.device = device or default_device()
            self.model.to(self.device)  # type: ignore[arg-type]
        else:
            self.device = str(self.model.device)
        self.model.eval()
        self.batch_size = batch_size
        self.max_in_flight = batch_size
        self.depth = depth
        self.revision = revision

    def identity(self) -> dict[str, Any]:
        commit = getattr(self.model.config, "_commit_hash", None)
        return model_identity(self.model_id, self.revision, commit)

    def _run(self, requests: Sequence[GenerationRequest], settings: GenerationSettings) -> list[GenerationResponse]:
        import torch

        prompts = prompts_for(requests, self.depth)
        conversations = [prompt.hf_messages() for prompt in prompts]
        inputs = self.processor.apply_chat_template(
            conversations,
            add_generation_prompt=True,
            tokenize=True,
            return_dict=True,
            return_tensors="pt",
            processor_kwargs={"padding": True},
        ).to(self.device)
        options: dict[str, Any] = {"max_new_tokens": settings.max_new_tokens, "do_sample": not settings.greedy}
        if not settings.greedy:
            options.update(temperature=settings.temperature, top_p=settings.top_p)
        if settings.seed is not None:
            torch.manual_seed(settings.seed)
        started = time.perf_counter()
        with torch.inference_mode():
            output = self.model.generate(**inputs, **options)
        latency = (time.perf_counter() - started) / len(requests)
        prompt_length = inputs["input_ids"].shape[1]
        new_tokens = output[:, prompt_length:]
        texts = self.processor.batch_decode(new_tokens, skip_special_tokens=True)
        pad = self.processor.tokenizer.pad_token_id
        responses = []
        for index, (request, text) in enumerate(zip(requests, texts, strict=True)):
            prompt_tokens = int(inputs["attention_mask"][index].sum())
            completion_tokens = int((new_tokens[index] != pad).sum())
            responses.append(GenerationResponse(request.id, text, None, prompt_tokens, completion_tokens, latency))
        return responses

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResponse]:
        check_depth_available(requests, self.depth)
        return in_request_order(requests, self.stream(requests))

    def stream(self, requests: Iterable[GenerationRequest]) -> Iterator[GenerationResponse]:
        """Batches of what is waiting (up to ``batch_size``), each batch yielded when generated."""
        return stream_in_batches(requests, self._generate_batch, self.batch_size)

    def _generate_batch(self, batch: Sequence[GenerationRequest]) -> list[GenerationResponse]:
        check_depth_available(batch, self.depth)
        responses: list[GenerationResponse] = []
        by_settings: dict[GenerationSettings, list[GenerationRequest]] = {}
        for request in batch:
            by_settings.setdefault(request.settings, []).append(request)
        for settings, group in by_settings.items():
            try:
                responses.extend(self._run(group, settings))
            except Exception:  # one bad request must not sink the batch: run them one by one
                responses.extend(self._one(request, settings) for request in group)
        return responses

    def _one(self, request: GenerationRequest, settings: GenerationSettings) -> GenerationResponse:
        try:
            return self._run([request], settings)[0]
        except Exception as error:  # the reason is returned, typed, for this request only
            return GenerationResponse(request.id, None, GenerationError("request", f"{type(error).__name__}: {error}"))

    def option_losses(self, request: GenerationRequest, options: Sequence[str]) -> list[float]:
        """Mean token cross-entropy of each option as the assistant's reply to ``request``.

        The likelihood protocol of multiple-choice benchmarks (V*): the option the model finds
        most likely as a reply (lowest loss) is its answer. The tokens scored are the option's
        and the end-of-turn token that closes it, as penghao-wu/vstar scores `` {option}</s>``
        (``vstar_bench_eval.py`` L141-159: the assistant turn after the prompt, ``</s>``
        included, mean cross-entropy); the chat template's own tokens after that do not count.
        """
        import torch

        (prompt,) = prompts_for([request], self.depth)
        messages = prompt.hf_messages()
        prefix = self.processor.apply_chat_template(
            [messages], add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
        )
        start = prefix["input_ids"].shape[1]
        tokenizer = self.processor.tokenizer
        end_tokens = {tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|im_end|>")} - {None}
        losses = []
        for option in options:
            option_ids = self.processor.tokenizer(option, add_special_tokens=False)["input_ids"]
            conversation = [*messages, {"role": "assistant", "content": [{"type": "text", "text": option}]}]
            inputs = self.processor.apply_chat_template(
                [conversation], tokenize=True, return_dict=True, return_tensors="pt"
            ).to(self.device)
            labels = torch.full_like(inputs["input_ids"], -100)
            stop = min(start + len(option_ids), labels.shape[1])
            if stop < labels.shape[1] and int(inputs["input_ids"][0, stop]) in end_tokens:
                stop += 1  # the end of the turn, as upstream's </s>
            labels[:, start:stop] = inputs["input_ids"][:, start:stop]
            with torch.inference_mode():
                losses.append(float(self.model(**inputs, labels=labels).loss))
        return losses
