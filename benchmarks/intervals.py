"""Intervals on a 10,000-question run: the cost of every figure's error bar on one core.

Prints the time of (a) the clustered standard error of a plain accuracy over 10,000 questions
with 4 circular copies each (40,000 samples; SAT's shape), (b) the seeded bootstrap, 1,000
resamples, of CV-Bench's composite ((ADE20K + COCO)/2 + Omni3D)/2 over 10,000 questions, and,
as the baseline measured in the same run, (c) computing the composite's point estimate 1,000
times in plain Python (what a resample loop calling the formula would cost). Target: (a) + (b)
under 2 s (issue 21), so intervals never slow a run down.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core, as the target says

import numpy as np

from sifeval.intervals import Term, interval


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--questions", type=int, default=10_000)
    parser.add_argument("--resamples", type=int, default=1_000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    n = args.questions

    copies = 4
    right = (rng.random(n) < 0.6).repeat(copies) & (rng.random(n * copies) < 0.95)
    values = list(100.0 * right)
    clusters = list(np.arange(n).repeat(copies))
    start = time.perf_counter()
    plain = interval([Term(1.0, values, clusters)])
    clustered_s = time.perf_counter() - start

    sizes = {"ADE20K": int(0.3 * n), "COCO": int(0.2 * n), "Omni3D": n - int(0.3 * n) - int(0.2 * n)}
    weights = {"ADE20K": 0.25, "COCO": 0.25, "Omni3D": 0.5}
    groups = {name: list(100.0 * (rng.random(size) < 0.65)) for name, size in sizes.items()}
    terms = [Term(weights[name], v, [f"{name}{i}" for i in range(len(v))]) for name, v in groups.items()]
    start = time.perf_counter()
    composite = interval(terms, resamples=args.resamples)
    bootstrap_s = time.perf_counter() - start

    start = time.perf_counter()
    for _ in range(args.resamples):
        sum(weights[name] * sum(v) / len(v) for name, v in groups.items())
    baseline_s = time.perf_counter() - start

    assert plain is not None and composite is not None
    print(f"clustered SE, {n:,} questions x {copies} copies: {clustered_s:.3f} s (stderr {plain.stderr:.3f})")
    print(
        f"bootstrap, {n:,} questions, {args.resamples:,} resamples: {bootstrap_s:.3f} s (stderr {composite.stderr:.3f})"
    )
    print(f"baseline, the formula {args.resamples:,} times in Python: {baseline_s:.3f} s")
    total = clustered_s + bootstrap_s
    print(f"intervals in all: {total:.3f} s (target < 2 s): {'ok' if total < 2 else 'OVER'}")


if __name__ == "__main__":
    main()
