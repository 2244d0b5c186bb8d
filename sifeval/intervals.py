"""Error bars for every figure, by the unit that was sampled: the question, never its copies.

A figure of a benchmark is a weighted sum of group means, ``sum(weight * mean(values of the
group))``: a plain accuracy is one group of weight 1; CV-Bench's ((ADE20K + COCO)/2 + Omni3D)/2
three groups of weights 1/4, 1/4, 1/2; SpatialBench's and VisCoT's means of categories one group
per category. Each value belongs to a *cluster*, the unit that was drawn from the population of
questions: SAT's circular copies of one question, a SpatialBench pair, or the sample itself.
(Miller, "Adding Error Bars to Evals", arXiv 2411.00640: clustered standard errors where
questions share a source.)

- one group: the cluster-robust standard error of a mean, ``sqrt(G / (G - 1) * sum_c
  (sum_{i in c} (x_i - mean))^2) / N`` over G clusters and N values (what ``statsmodels`` gives
  for an intercept-only OLS with ``cov_type="cluster"``), and the normal 95% interval;
- several groups: a seeded bootstrap resampling clusters within each group (the strata),
  ``RESAMPLES`` times, vectorized; the standard error is the resamples' standard deviation and
  the interval their 2.5th and 97.5th percentiles.

Intervals are clipped to the scale's range [0, 100]; a figure with no term (or an empty group)
has none (``null`` in ``results.json``).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

RESAMPLES = 1000
SEED = 0
Z95 = 1.959963984540054  # the standard normal's 97.5th percentile


@dataclass(frozen=True)
class Term:
    """``weight * mean(values)``, each value in the cluster named beside it (0-100 scale)."""

    weight: float
    values: Sequence[float]
    clusters: Sequence[Hashable]


@dataclass(frozen=True)
class Interval:
    estimate: float
    stderr: float
    low: float
    high: float
    method: str  # "clustered" (analytic) or "bootstrap"
    clusters: int
    resamples: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "stderr": self.stderr,
            "ci95": [self.low, self.high],
            "method": self.method,
            "clusters": self.clusters,
            **({"resamples": self.resamples, "seed": SEED} if self.resamples is not None else {}),
        }


def _cluster_sums(term: Term) -> tuple[np.ndarray, np.ndarray]:
    """Per cluster: the sum of its values and their count."""
    index: dict[Hashable, int] = {}
    sums: list[float] = []
    counts: list[int] = []
    for value, cluster in zip(term.values, term.clusters, strict=True):
        slot = index.setdefault(cluster, len(index))
        if slot == len(sums):
            sums.append(0.0)
            counts.append(0)
        sums[slot] += float(value)
        counts[slot] += 1
    return np.asarray(sums, dtype=float), np.asarray(counts, dtype=float)


def clustered_mean(values: Sequence[float], clusters: Sequence[Hashable]) -> tuple[float, float, int]:
    """(mean, cluster-robust standard error, number of clusters) of ``values``."""
    sums, counts = _cluster_sums(Term(1.0, values, clusters))
    total, groups = counts.sum(), len(sums)
    mean = float(sums.sum() / total)
    if groups < 2:
        return mean, math.nan, groups
    residual_sums = sums - mean * counts  # sum over each cluster of (x_i - mean)
    variance = groups / (groups - 1) * float(np.sum(residual_sums**2)) / total**2
    return mean, math.sqrt(variance), groups


def _clip(value: float) -> float:
    return min(100.0, max(0.0, value))


def interval(terms: Sequence[Term], *, resamples: int = RESAMPLES, seed: int = SEED) -> Interval | None:
    """The interval of ``sum(weight * mean(values))``; None when a group is empty or fewer than two
    clusters make it up (no spread can be estimated)."""
    if not terms or any(len(term.values) == 0 for term in terms):
        return None
    if len(terms) == 1:
        term = terms[0]
        mean, stderr, groups = clustered_mean(term.values, term.clusters)
        if math.isnan(stderr):
            return None
        estimate, stderr = term.weight * mean, abs(term.weight) * stderr
        return Interval(
            estimate, stderr, _clip(estimate - Z95 * stderr), _clip(estimate + Z95 * stderr), "clustered", groups
        )
    rng = np.random.default_rng(seed)
    draws = np.zeros(resamples)
    estimate = 0.0
    clusters = 0
    for term in terms:
        sums, counts = _cluster_sums(term)
        if len(sums) < 2:
            return None
        clusters += len(sums)
        estimate += term.weight * float(sums.sum() / counts.sum())
        picks = rng.integers(0, len(sums), size=(resamples, len(sums)))  # clusters drawn within this group
        draws += term.weight * sums[picks].sum(axis=1) / counts[picks].sum(axis=1)
    stderr = float(draws.std(ddof=1))
    low, high = np.percentile(draws, [2.5, 97.5])
    return Interval(estimate, stderr, _clip(float(low)), _clip(float(high)), "bootstrap", clusters, resamples)


Z80 = 0.8416212335729143  # the standard normal's 80th percentile (80% power)


def min_detectable_difference(stderr: float) -> float:
    """The smallest difference (same scale) a paired comparison of two models like this run could
    detect at 80% power and 5% two-sided significance: (z_0.975 + z_0.8) * sqrt(2) * stderr,
    taking the other model as variable as this one and the two uncorrelated (correlated models,
    the usual case, can show smaller differences: ``sifeval compare`` measures it)."""
    return (Z95 + Z80) * math.sqrt(2.0) * stderr


def intervals_json(figures: Mapping[str, Sequence[Term]], metrics: Mapping[str, Any]) -> dict[str, Any]:
    """``{metric: {"stderr", "ci95", "method", ...} or None}`` for every metric in ``metrics``:
    None where the benchmark gives no terms for it or its terms allow no interval."""
    found: dict[str, Any] = {}
    for name in metrics:
        terms = figures.get(name)
        result = interval(terms) if terms else None
        found[name] = result.to_json() if result is not None else None
    return found
