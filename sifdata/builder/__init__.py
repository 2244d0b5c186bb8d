"""The builder: reverse expansion, forward inference, sharded and resumable.

``plan_focus``/``reverse_expand`` are light; the pipeline (which brings in datasets and the
writers) loads on first use of ``build``, ``BuildConfig``, ``finalize`` or ``merge``.
"""

from __future__ import annotations

from typing import Any

from sifdata.builder.expand import PlannedStep, plan_focus, reverse_expand

_PIPELINE = ("BuildConfig", "BuildReport", "build", "finalize", "merge")

__all__ = ["PlannedStep", "plan_focus", "reverse_expand", *_PIPELINE]


def __getattr__(name: str) -> Any:
    if name in _PIPELINE:
        from sifdata.builder import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'sifdata.builder' has no attribute {name!r}")
