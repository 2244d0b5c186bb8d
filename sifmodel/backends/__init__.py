"""Inference backends behind one interface; ``load(spec)`` picks one.

Specs: ``hf:PATH_OR_ID``, ``openai:MODEL@BASE_URL``, ``vllm:PATH_OR_ID``, each optionally
followed by ``?key=value&...`` options (``batch_size``, ``device``, ``concurrency``,
``timeout``, ``tensor_parallel_size``, ...).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

import yaml

from sifdata.secrets import redact
from sifmodel.backends.base import (
    Backend,
    DepthProvider,
    GenerationError,
    GenerationRequest,
    GenerationResponse,
    GenerationSettings,
    ModelUnavailable,
    TextScorer,
    prompts_for,
)

__all__ = [
    "Backend",
    "DepthProvider",
    "GenerationError",
    "GenerationRequest",
    "GenerationResponse",
    "GenerationSettings",
    "ModelUnavailable",
    "TextScorer",
    "load",
    "parse_spec",
    "prompts_for",
]


def parse_spec(spec: str) -> tuple[str, str, dict[str, Any]]:
    """``kind:target?options`` -> (kind, target, options with YAML-typed values)."""
    kind, sep, rest = spec.partition(":")
    if not sep or kind not in ("hf", "openai", "vllm") or not rest:
        raise ValueError(f"model spec {redact(spec)!r} must be hf:PATH_OR_ID, openai:MODEL@BASE_URL or vllm:PATH_OR_ID")
    target, _, query = rest.partition("?")
    options = {key: yaml.safe_load(value) for key, value in parse_qsl(query, keep_blank_values=True)}
    return kind, target, options


def load(
    spec: str,
    *,
    depth_model: str | None = None,
    depth_device: str | None = None,
    depth: DepthProvider | None = None,
    **overrides: Any,
) -> Backend:
    """A backend for ``spec``. ``depth_model`` (or a ready ``depth`` provider) estimates depth for
    ``sif`` requests that lack it."""
    kind, target, options = parse_spec(spec)
    options.update(overrides)
    if depth is None and depth_model:
        depth = DepthProvider(depth_model, depth_device)
    if kind == "hf":
        from sifmodel.backends.hf import TransformersBackend

        return TransformersBackend(target, depth=depth, **options)
    if kind == "openai":
        from sifmodel.backends.openai_backend import OpenAIBackend

        model, at, base_url = target.rpartition("@")
        if not at or not model or not base_url:
            raise ValueError(f"openai spec {redact(spec)!r} must be openai:MODEL@BASE_URL")
        return OpenAIBackend(model, base_url, depth=depth, **options)
    from sifmodel.backends.vllm_backend import VLLMBackend

    return VLLMBackend(target, depth=depth, **options)
