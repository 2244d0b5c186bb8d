"""Tiny local mirrors of the five benchmarks, each in its exact upstream layout, built from
synthetic scenes with known answers: the embedded data of the demo and the tests."""

from __future__ import annotations

from pathlib import Path

MIRRORED = ("cvbench", "vstar", "sat", "spatialbench", "viscot")


def build_mirror(name: str, out: str | Path, seed: int = 0) -> Path:
    from sifeval import cvbench, sat, spatialbench, viscot, vstar

    builders = {
        "cvbench": cvbench.build_mirror,
        "vstar": vstar.build_mirror,
        "sat": sat.build_mirror,
        "spatialbench": spatialbench.build_mirror,
        "viscot": viscot.build_mirror,
    }
    if name not in builders:
        raise KeyError(f"no mirror for {name!r}; mirrors: {', '.join(MIRRORED)}")
    return builders[name](out, seed=seed)


def build_all(out: str | Path, seed: int = 0) -> dict[str, Path]:
    return {name: build_mirror(name, Path(out) / name, seed) for name in MIRRORED}
