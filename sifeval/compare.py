"""Two runs of one benchmark, paired on their questions: is the difference real?

For every figure the two runs share: the difference (B - A) with its 95% interval and a p-value
from a paired test, computed on the questions both runs answered (the same unit as the
figure's own interval, :mod:`sifeval.intervals`):

- a plain accuracy whose unit is the sample (0 or 1 per question): McNemar's exact test (a
  two-sided binomial test on the discordant questions) and the clustered standard error of
  the per-question differences;
- anything else (a composite formula, clustered copies, graded scores): a seeded paired
  bootstrap, the same questions drawn for both runs, within each category; the p-value is
  twice the smaller tail of the resampled differences around 0.

Also: the questions that flipped (right in A, wrong in B, and the other way), which
``sifeval view A B`` shows side by side.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sifeval.intervals import RESAMPLES, SEED, Z95, Term, clustered_mean
from sifeval.types import ScoredSample, strict_json
from sifeval.view import LoadedRun, load_run

PAIRING_KEYS = ("benchmark", "protocol", "options", "dataset")  # what two runs must share to be paired


class NotPairable(ValueError):
    """Two runs that cannot be compared question by question; the message says why."""


@dataclass(frozen=True)
class Difference:
    metric: str
    a: float
    b: float
    difference: float
    stderr: float
    low: float
    high: float
    p_value: float
    test: str  # "mcnemar-exact" or "paired-bootstrap"
    clusters: int

    def to_json(self) -> dict[str, Any]:
        return strict_json(
            {
                "a": self.a,
                "b": self.b,
                "difference": self.difference,
                "stderr": self.stderr,
                "ci95": [self.low, self.high],
                "p_value": self.p_value,
                "test": self.test,
                "clusters": self.clusters,
                **({"resamples": RESAMPLES, "seed": SEED} if self.test == "paired-bootstrap" else {}),
            }
        )


@dataclass
class Comparison:
    a: str
    b: str
    benchmark: str
    paired: int  # questions (samples) both runs answered
    only_a: int
    only_b: int
    differences: list[Difference]
    right_to_wrong: list[str] = field(default_factory=list)
    wrong_to_right: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "benchmark": self.benchmark,
            "paired_samples": self.paired,
            "only_in_a": self.only_a,
            "only_in_b": self.only_b,
            "figures": {d.metric: d.to_json() for d in self.differences},
            "right_to_wrong": self.right_to_wrong,
            "wrong_to_right": self.wrong_to_right,
        }


def mcnemar_exact(a_only: int, b_only: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts (right only in A, only in B)."""
    n = a_only + b_only
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(a_only, b_only) + 1)) / 2**n
    return min(1.0, 2 * tail)


def _sums(term: Term) -> dict[Hashable, tuple[float, int]]:
    found: dict[Hashable, tuple[float, int]] = {}
    for value, cluster in zip(term.values, term.clusters, strict=True):
        total, count = found.get(cluster, (0.0, 0))
        found[cluster] = (total + float(value), count + 1)
    return found


def _paired(
    metric: str, terms_a: Sequence[Term], terms_b: Sequence[Term], resamples: int = RESAMPLES, seed: int = SEED
) -> Difference | None:
    """The paired difference of one figure; None when the two runs' terms do not line up."""
    if not terms_a or len(terms_a) != len(terms_b):
        return None
    groups = []
    for term_a, term_b in zip(terms_a, terms_b, strict=True):
        sums_a, sums_b = _sums(term_a), _sums(term_b)
        shared = [cluster for cluster in sums_a if cluster in sums_b]
        if len(shared) < 2:
            return None
        groups.append(
            (
                term_a.weight,
                np.array([sums_a[c][0] for c in shared]),
                np.array([sums_a[c][1] for c in shared], dtype=float),
                np.array([sums_b[c][0] for c in shared]),
                np.array([sums_b[c][1] for c in shared], dtype=float),
                shared,
            )
        )
    value_a = sum(w * sa.sum() / na.sum() for w, sa, na, _, _, _ in groups)
    value_b = sum(w * sb.sum() / nb.sum() for w, _, _, sb, nb, _ in groups)
    clusters = sum(len(shared) for *_, shared in groups)
    single = len(groups) == 1 and len(terms_a[0].values) == len(groups[0][5])  # one value per cluster
    if single:
        weight, sa, na, sb, nb, shared = groups[0]
        if np.array_equal(na, nb) and set(np.unique(np.concatenate([sa, sb]))) <= {0.0, 100.0}:
            a_only = int(np.sum((sa == 100.0) & (sb == 0.0)))
            b_only = int(np.sum((sa == 0.0) & (sb == 100.0)))
            _, stderr, _ = clustered_mean(list(weight * (sb - sa)), shared)
            difference = value_b - value_a
            return Difference(
                metric, value_a, value_b, difference, stderr, difference - Z95 * stderr,
                difference + Z95 * stderr, mcnemar_exact(a_only, b_only), "mcnemar-exact", clusters,
            )  # fmt: skip
    rng = np.random.default_rng(seed)
    draws = np.zeros(resamples)
    for weight, sa, na, sb, nb, _ in groups:
        picks = rng.integers(0, len(sa), size=(resamples, len(sa)))  # the same questions for both runs
        draws += weight * (sb[picks].sum(1) / nb[picks].sum(1) - sa[picks].sum(1) / na[picks].sum(1))
    low, high = np.percentile(draws, [2.5, 97.5])
    p_value = min(1.0, 2 * min(float(np.mean(draws <= 0)), float(np.mean(draws >= 0))))
    return Difference(
        metric, value_a, value_b, value_b - value_a, float(draws.std(ddof=1)), float(low), float(high),
        p_value, "paired-bootstrap", clusters,
    )  # fmt: skip


def _refusal(a: LoadedRun, b: LoadedRun) -> str | None:
    differing = [key for key in PAIRING_KEYS if a.identity.get(key) != b.identity.get(key)]
    if differing:
        shown = "; ".join(f"{key}: {a.identity.get(key)!r} vs {b.identity.get(key)!r}" for key in differing)
        return f"the runs differ in {', '.join(differing)} ({shown}): their questions cannot be paired"
    return None


def _headline(run: LoadedRun, ids: set[str]) -> list[ScoredSample]:
    """The run's shared samples as its headline counts them (a request error: wrong)."""
    return [
        run.bench.unanswered(item.sample, item.request_error) if item.request_error is not None else item
        for sample_id, item in run.scored.items()
        if sample_id in ids
    ]


def compare_runs(run_a: str | Path, run_b: str | Path) -> Comparison:
    """Pair ``run_a`` and ``run_b`` on their shared questions (refusing runs that cannot be
    paired, saying why) and test every shared figure's difference."""
    a, b = load_run(run_a), load_run(run_b)
    refusal = _refusal(a, b)
    if refusal:
        raise NotPairable(refusal)
    shared = set(a.scored) & set(b.scored)
    if len(shared) < 2:
        raise NotPairable(f"{run_a} and {run_b} share {len(shared)} samples: nothing to pair")
    scored_a, scored_b = _headline(a, shared), _headline(b, shared)
    terms_a, terms_b = a.bench.figure_terms(scored_a), b.bench.figure_terms(scored_b)
    differences = [
        found for metric in terms_a if (found := _paired(metric, terms_a[metric], terms_b.get(metric, []))) is not None
    ]
    by_id_a = {s.sample.id: s for s in scored_a}
    by_id_b = {s.sample.id: s for s in scored_b}
    right_to_wrong = sorted(i for i in shared if by_id_a[i].score == 1.0 and by_id_b[i].score == 0.0)
    wrong_to_right = sorted(i for i in shared if by_id_a[i].score == 0.0 and by_id_b[i].score == 1.0)
    return Comparison(
        str(run_a), str(run_b), str(a.identity["benchmark"]), len(shared), len(set(a.scored) - shared),
        len(set(b.scored) - shared), differences, right_to_wrong, wrong_to_right,
    )  # fmt: skip


def to_html(comparison: Comparison) -> str:
    """One self-contained page: the table of differences and the flipped questions."""
    import html

    rows = "".join(
        f"<tr><td>{html.escape(d.metric)}</td><td>{d.a:.1f}</td><td>{d.b:.1f}</td><td>{d.difference:+.1f}</td>"
        f"<td>[{d.low:+.1f}, {d.high:+.1f}]</td><td>{d.p_value:.3g}</td><td>{d.test}</td></tr>"
        for d in comparison.differences
    )
    head = "".join(f"<th>{c}</th>" for c in ("figure", "A", "B", "B - A", "95% interval", "p", "test"))
    flipped = "".join(
        f"<h2>{title} ({len(ids)})</h2><p>{html.escape(', '.join(ids)) or 'none'}</p>"
        for title, ids in (("right to wrong", comparison.right_to_wrong), ("wrong to right", comparison.wrong_to_right))
    )
    title = html.escape(f"sifeval compare: {comparison.benchmark}, B = {comparison.b} vs A = {comparison.a}")
    style = "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;font:13px sans-serif}"
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title><style>{style}</style></head>"
        f"<body><h1>{title}</h1><p>{comparison.paired} paired samples</p><table><tr>{head}</tr>{rows}</table>"
        f"{flipped}</body></html>\n"
    )
