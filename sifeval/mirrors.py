"""Tiny local mirrors of the registered benchmarks, each in its exact upstream layout, built
from synthetic scenes with known answers: the embedded data of the demo and the tests. Each
benchmark builds its own (``Benchmark.build_mirror``)."""

from __future__ import annotations

from pathlib import Path

from sifeval.adapters import benchmark_class, list_benchmarks


def mirrored() -> list[str]:
    """The registered benchmarks that have an embedded mirror."""
    return [cls.name for cls in list_benchmarks() if "build_mirror" in vars(cls)]


def build_mirror(name: str, out: str | Path, seed: int = 0) -> Path:
    cls = benchmark_class(name)
    if "build_mirror" not in vars(cls):
        raise KeyError(f"no mirror for {name!r}; mirrors: {', '.join(mirrored())}")
    return cls.build_mirror(out, seed=seed)


def build_all(out: str | Path, seed: int = 0) -> dict[str, Path]:
    return {name: build_mirror(name, Path(out) / name, seed) for name in mirrored()}
