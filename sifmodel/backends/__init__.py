"""Inference backends behind one interface; ``load(spec)`` picks one.

Specs: ``KIND:TARGET``, each optionally followed by ``?key=value&...`` options (``batch_size``,
``device``, ``concurrency``, ``timeout``, ``tensor_parallel_size``, ...). The kinds are the
classes registered under the ``sifmodel.backends`` entry point group: the built-ins
``hf:PATH_OR_ID``, ``openai:MODEL@BASE_URL`` and ``vllm:PATH_OR_ID`` register there like any
other package's backend (:class:`BackendFactory` says what such a class gives).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

import yaml

from sifdata.plugins import Registry
from sifdata.secrets import redact
from sifmodel.backends.base import (
    Backend,
    BackendFactory,
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
    "BACKENDS",
    "Backend",
    "BackendFactory",
    "DepthProvider",
    "GenerationError",
    "GenerationRequest",
    "GenerationResponse",
    "GenerationSettings",
    "ModelUnavailable",
    "TextScorer",
    "load",
    "model_spec_help",
    "parse_spec",
    "prompts_for",
    "spec_forms",
]


BACKENDS: Registry[type[BackendFactory]] = Registry(
    group="sifmodel.backends",
    noun="backend",
    accepts=lambda loaded: isinstance(loaded, type) and callable(getattr(loaded, "from_spec", None)),
    expected="a backend class with a from_spec(target, options, depth) class method",
)


def spec_forms() -> str:
    """How a model spec is written, one form per registered backend (``hf:PATH_OR_ID``, ...)."""
    return ", ".join(f"{name}:{BACKENDS.load(name).spec_target}" for name in BACKENDS.names())


def model_spec_help() -> str:
    """The ``--model`` help of every CLI, listing the installed backends."""
    forms = BACKENDS.listing(lambda name: f"{name}:{BACKENDS.load(name).spec_target}", "hf:PATH_OR_ID, ...")
    return f"KIND:TARGET?options, KIND one of the installed backends: {forms}"


def parse_spec(spec: str) -> tuple[str, str, dict[str, Any]]:
    """``kind:target?options`` -> (kind, target, options with YAML-typed values); ``kind`` is a
    backend registered under ``sifmodel.backends``."""
    kind, sep, rest = spec.partition(":")
    if not sep or kind not in BACKENDS.names() or not rest:
        raise ValueError(f"model spec {redact(spec)!r} must be one of {spec_forms()}")
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
    """A backend for ``spec`` (the class registered for its kind builds it from the target and
    options). ``depth_model`` (or a ready ``depth`` provider) estimates depth for ``sif``
    requests that lack it."""
    kind, target, options = parse_spec(spec)
    options.update(overrides)
    if depth is None and depth_model:
        depth = DepthProvider(depth_model, depth_device)
    try:
        return BACKENDS.load(kind).from_spec(target, options, depth)
    except ValueError as error:
        if type(error) is not ValueError:  # ModelUnavailable and the like keep their type
            raise
        raise ValueError(f"model spec {redact(spec)!r}: {error}") from None
