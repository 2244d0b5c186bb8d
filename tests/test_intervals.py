"""Every figure's error bar, by the sampled unit (issue 21): hand-computed intervals, clustering
that does what it should, agreement with statsmodels, the bootstrap of composite formulas, and
each benchmark's terms reproducing its own official figures."""

from __future__ import annotations

import math
import random
import re
from pathlib import Path

import numpy as np
import pytest

from sifeval.adapters import get_benchmark
from sifeval.intervals import Term, clustered_mean, interval, intervals_json
from sifeval.mirrors import build_mirror
from sifeval.rundir import summarize
from sifmodel.judge import MatchJudge


def test_a_clustered_mean_by_hand() -> None:
    # mean 75; cluster residual sums a: 25 - 75 = -50, b: 25, c: 25; sum of squares 3750;
    # variance 3/2 * 3750 / 4**2 = 351.5625; standard error 18.75.
    mean, stderr, clusters = clustered_mean([100, 0, 100, 100], ["a", "a", "b", "c"])
    assert (mean, stderr, clusters) == (75.0, 18.75, 3)
    found = interval([Term(1.0, [100, 0, 100, 100], ["a", "a", "b", "c"])])
    assert found is not None and found.method == "clustered"
    assert found.low == pytest.approx(75 - 1.959963984540054 * 18.75) and found.high == 100.0  # clipped to the scale


def test_more_intervals_by_hand() -> None:
    # Two clusters are enough: mean 50, residuals +-50, variance 2/1 * 5000 / 2**2 = 2500, SE 50.
    assert clustered_mean([100, 0], ["a", "b"]) == (50.0, 50.0, 2)
    # mean 25; residuals -25 (x3) and 75; variance 4/3 * 7500 / 4**2 = 625, SE 25; low clipped to 0.
    found = interval([Term(1.0, [0, 0, 0, 100], ["a", "b", "c", "d"])])
    assert found is not None and found.stderr == pytest.approx(25.0)
    assert (found.low, found.high) == (0.0, pytest.approx(25 + 1.959963984540054 * 25))
    with pytest.raises(ValueError):
        interval([Term(1.0, [1.0, 2.0], ["only one cluster for two values"])])


def test_fully_correlated_copies_give_the_interval_of_the_questions() -> None:
    rng = random.Random(3)
    questions = [100.0 * rng.randint(0, 1) for _ in range(40)]
    copies = [value for value in questions for _ in range(4)]  # four circular copies, all alike
    clusters = [q for q in range(40) for _ in range(4)]
    _, clustered, _ = clustered_mean(copies, clusters)
    of_questions = float(np.std(questions, ddof=1) / math.sqrt(len(questions)))
    _, naive, _ = clustered_mean(copies, list(range(len(copies))))  # each copy taken as a question
    assert clustered == pytest.approx(of_questions)
    assert naive < 0.55 * clustered  # four correlated copies are not four questions


def test_the_clustered_standard_error_agrees_with_statsmodels() -> None:
    sm = pytest.importorskip("statsmodels.api")
    rng = np.random.default_rng(7)
    sizes = rng.integers(1, 6, size=60)  # clusters of different sizes
    clusters = np.repeat(np.arange(60), sizes)
    values = 100.0 * (rng.random(len(clusters)) < 0.3 + 0.4 * (clusters % 2))
    fit = sm.OLS(values, np.ones(len(values))).fit(cov_type="cluster", cov_kwds={"groups": clusters})
    mean, stderr, _ = clustered_mean(list(values), list(clusters))
    assert mean == pytest.approx(float(fit.params[0])) and stderr == pytest.approx(float(fit.bse[0]), rel=1e-9)


def test_a_composite_formula_through_the_seeded_bootstrap() -> None:
    """CV-Bench's ((A + B) / 2 + C) / 2 over three groups: the estimate by hand, the same draws for
    the same seed, and a spread close to the stratified plug-in standard error."""
    rng = np.random.default_rng(11)
    groups = {
        name: list(100.0 * (rng.random(size) < p))
        for name, size, p in (("A", 300, 0.6), ("B", 200, 0.4), ("C", 400, 0.7))
    }
    weights = {"A": 0.25, "B": 0.25, "C": 0.5}
    terms = [Term(weights[g], values, [f"{g}{i}" for i in range(len(values))]) for g, values in groups.items()]
    first, again = interval(terms), interval(terms)
    assert first is not None and first == again and first.method == "bootstrap" and first.resamples == 1000
    assert first.clusters == 900
    draws = np.zeros(1000)  # the same draws by a loop (same seed, same order of groups)
    loop = np.random.default_rng(0)
    for g, values in groups.items():
        picks = loop.integers(0, len(values), size=(1000, len(values)))
        for b in range(1000):
            draws[b] += weights[g] * np.mean(np.asarray(values)[picks[b]])
    assert first.stderr == pytest.approx(draws.std(ddof=1))
    assert (first.low, first.high) == pytest.approx(tuple(np.percentile(draws, [2.5, 97.5])))
    by_hand = (np.mean(groups["A"]) + np.mean(groups["B"])) / 4 + np.mean(groups["C"]) / 2
    assert first.estimate == pytest.approx(by_hand)
    plug_in = math.sqrt(sum(weights[g] ** 2 * np.var(v) / len(v) for g, v in groups.items()))
    assert first.stderr == pytest.approx(plug_in, rel=0.1)
    assert first.low < by_hand < first.high and first.high - first.low == pytest.approx(2 * 1.96 * plug_in, rel=0.15)


def test_no_interval_where_none_can_be_estimated() -> None:
    assert interval([]) is None
    assert interval([Term(1.0, [100.0], ["only"])]) is None  # one cluster: no spread
    assert interval([Term(0.5, [100.0, 0.0], ["a", "b"]), Term(0.5, [], [])]) is None  # an empty group
    assert intervals_json({"score": [Term(1.0, [1.0], ["x"])]}, {"score": 1.0, "other": 2.0}) == {
        "score": None,
        "other": None,
    }


@pytest.mark.parametrize("name", ["cvbench", "vstar", "sat", "spatialbench", "viscot"])
def test_each_benchmarks_terms_reproduce_its_official_figures(name: str, tmp_path: Path) -> None:
    """The interval's estimate is the figure aggregate() computes, for every figure that has one:
    the terms are the official formula, not an approximation of it."""
    bench = get_benchmark(name)
    if name == "viscot":
        bench.judge = MatchJudge()  # type: ignore[attr-defined]
    samples = bench.load(build_mirror(name, tmp_path / name))
    rng = random.Random(5)
    replies = [rng.choice(["<answer>A</answer>", "<answer>B</answer>", "<answer>yes</answer>", "<answer>no</answer>",
                           f"<answer>{s.target}</answer>", "<answer>2</answer>"]) for s in samples]  # fmt: skip
    scored = bench.score_many(samples, replies, "plain")
    result = summarize(bench, scored, "plain", None, {}, None)
    checked = 0
    for metric, found in result.intervals.items():
        if found is None:
            continue
        low, high = found["ci95"]
        value = result.metrics[metric]
        terms = bench.figure_terms(scored)
        estimate = interval(terms["score" if metric == "score_answered_only" else metric])
        assert estimate is not None and estimate.estimate == pytest.approx(value), metric
        assert 0.0 <= low <= high <= 100.0 and found["stderr"] >= 0.0
        checked += 1
    # The VisCoT mirror holds 2 of the 11 subsets: its mean over subsets is null, and so is its interval.
    headline = "answer/gqa" if name == "viscot" else "score"
    assert checked >= 3 and result.intervals[headline] is not None
    if name == "viscot":
        assert result.metrics["score"] != result.metrics["score"] and result.intervals["score"] is None


def test_results_json_and_the_report_carry_the_intervals(tmp_path: Path) -> None:
    import json

    from sifeval.report import load_results, report_rows, to_markdown
    from sifeval.rundir import write_results

    bench = get_benchmark("vstar")
    samples = bench.load(build_mirror("vstar", tmp_path / "vstar"))
    replies = ["<answer>A</answer>" if i % 3 else "<answer>B</answer>" for i in range(len(samples))]
    result = summarize(bench, bench.score_many(samples, replies, "plain"), "plain", None, {"spec": "m"}, None)
    (tmp_path / "run").mkdir()
    write_results(tmp_path / "run", result)  # strict JSON: allow_nan=False holds
    written = json.loads((tmp_path / "run" / "results.json").read_text())
    score = written["intervals"]["score"]
    assert score["method"] == "clustered" and score["clusters"] == len(samples)
    low, high = score["ci95"]
    assert low < written["metrics"]["score"] < high or written["metrics"]["score"] in (0.0, 100.0)
    tables = report_rows(load_results([tmp_path / "run"]), with_published=False)
    assert f"{written['metrics']['score']:.1f} [{low:.1f}, {high:.1f}]" in to_markdown(tables)
    from sifeval.report import to_html

    page = to_html(tables)  # each bar of the chart carries its interval as an error bar
    assert re.search(r'id="chart0-p\d+-interval-0-\d+"', page) and re.search(r'id="chart0-p\d+-bar-0-', page)


def test_power_and_reproduction_verdicts(tmp_path: Path) -> None:
    from sifeval.report import _verdict
    from sifeval.types import ScoredSample

    bench = get_benchmark("vstar")
    samples = bench.load(build_mirror("vstar", tmp_path / "v"))
    scored = [ScoredSample(s, "r", "A", True, float(i % 2)) for i, s in enumerate(samples)]
    result = summarize(bench, scored, "plain", None, {"spec": "m"}, None)
    stderr = result.intervals["score"]["stderr"]
    # (1.959964 + 0.841621) * sqrt(2) = 3.962 standard errors
    assert result.power["min_detectable_difference"] == pytest.approx(3.9620 * stderr, rel=1e-4)
    ours = [{"intervals": {"score": {"ci95": [55.0, 65.0]}}, "model": {"spec": "m?api_key=secret"}}]
    assert (
        _verdict({"metrics": {"score": 60.0}}, ours) == "reproduction: score 60.0 inside [55.0, 65.0] (m?api_key=***)"
    )
    assert _verdict({"metrics": {"score": 70.0, "other": 1.0}}, ours).startswith("reproduction: score 70.0 outside")
    assert _verdict({"metrics": {"score": 60.0}}, [{"intervals": {"score": None}, "model": {}}]) == ""
