"""Strict parse + validation of SIF chains, one core.

Baseline (same run): building the same chains through pydantic's validating constructors
(what a straightforward implementation on the typed models would do).
"""

from __future__ import annotations

import argparse
import os
import random
import time

from sifdata import format_chain, parse_chain
from sifdata.schema import Chain, Focus, Text


def make_chains(count: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    texts = []
    for _ in range(count):
        steps: list[Focus | Text] = []
        for _ in range(rng.randint(2, 5)):
            boxes = []
            for _ in range(rng.choice((1, 1, 1, 2))):
                x1, y1 = rng.randint(0, 800), rng.randint(0, 800)
                boxes.append(
                    (x1 / 1000, y1 / 1000, (x1 + rng.randint(1, 199)) / 1000, (y1 + rng.randint(1, 199)) / 1000)
                )
            steps.append(Focus(boxes=boxes, depths=[rng.randint(0, 1000) / 1000 for _ in boxes]))
            steps.append(Text(text="I look at this region, which shows part of the scene, and narrow my focus."))
        texts.append(format_chain(Chain(steps=steps, answer="The red cup is closer.")))
    return texts


def validated_baseline(text: str) -> Chain:
    parsed = parse_chain(text)
    return Chain.model_validate(parsed.model_dump())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chains", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    chains = make_chains(args.chains)
    timings = {}
    for name, function in (
        ("sifdata strict parse", lambda t: parse_chain(t, strict=True)),
        ("baseline: pydantic-validated", validated_baseline),
    ):
        best = float("inf")
        for _ in range(args.repeats):
            start = time.perf_counter()
            for text in chains:
                function(text)
            best = min(best, time.perf_counter() - start)
        timings[name] = best
        print(f"{name:32s} {args.chains / best:10,.0f} chains/s  ({best * 1e6 / args.chains:.1f} us/chain)")
    ratio = timings["baseline: pydantic-validated"] / timings["sifdata strict parse"]
    print(
        f"speed-up over the baseline: {ratio:.2f}x; target >= 20,000 chains/s: "
        f"{'met' if args.chains / timings['sifdata strict parse'] >= 20_000 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
