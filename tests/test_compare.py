"""`sifeval compare` (issue 21): two runs paired on their questions, McNemar's exact test agreeing
with scipy, a paired bootstrap for composite formulas, refusals that say why, strict JSON."""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from sifeval.adapters import get_benchmark
from sifeval.cli import app
from sifeval.compare import NotPairable, compare_runs, mcnemar_exact
from sifeval.mirrors import build_mirror
from sifeval.runner import run
from sifmodel.backends import GenerationRequest, GenerationResponse

runner = CliRunner()


class LetterBackend:
    """Answers each question with a letter chosen by a hash of (seed, question): a fake at the
    engine boundary, named so, whose replies differ between seeds on some questions only."""

    name = "letters"
    max_in_flight = 4

    def __init__(self, seed: int, letters: str = "AB") -> None:
        self.seed, self.letters = seed, letters

    def identity(self) -> dict[str, Any]:
        return {"fingerprint": f"letters-{self.seed}"}

    def _reply(self, request: GenerationRequest) -> GenerationResponse:
        pick = zlib.crc32(f"{self.seed}:{request.question}".encode()) % len(self.letters)
        return GenerationResponse(request.id, f"<answer>{self.letters[pick]}</answer>")

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResponse]:
        return [self._reply(r) for r in requests]

    def stream(self, requests: Iterable[GenerationRequest]) -> Iterator[GenerationResponse]:
        for request in requests:
            yield self._reply(request)


def _runs(tmp_path: Path, name: str, seeds: tuple[int, int] = (1, 2)) -> tuple[Path, Path]:
    data = build_mirror(name, tmp_path / f"{name}-data")
    folders = []
    for seed in seeds:
        out = tmp_path / f"{name}-{seed}"
        run(
            get_benchmark(name),
            LetterBackend(seed),
            f"letters-{seed}",
            out,
            data_dir=data,
            mode="plain",
            progress=False,
        )
        folders.append(out)
    return folders[0], folders[1]


def _scores(folder: Path) -> dict[str, float]:
    lines = [json.loads(line) for line in (folder / "samples.jsonl").read_text().splitlines()]
    return {line["id"]: line["score"] for line in lines}


def test_mcnemar_exact_agrees_with_scipy() -> None:
    binomtest = pytest.importorskip("scipy.stats").binomtest
    for a_only, b_only in [(0, 0), (1, 0), (3, 9), (10, 10), (25, 12), (0, 17), (40, 55)]:
        n = a_only + b_only
        expected = 1.0 if n == 0 else binomtest(min(a_only, b_only), n, 0.5).pvalue
        assert mcnemar_exact(a_only, b_only) == pytest.approx(expected, rel=1e-12)


def test_a_plain_accuracy_is_compared_by_mcnemar_on_the_paired_questions(tmp_path: Path) -> None:
    a, b = _runs(tmp_path, "vstar")
    scores_a, scores_b = _scores(a), _scores(b)
    comparison = compare_runs(a, b)
    found = {d.metric: d for d in comparison.differences}["score"]
    a_only = sum(scores_a[i] == 1.0 and scores_b[i] == 0.0 for i in scores_a)
    b_only = sum(scores_a[i] == 0.0 and scores_b[i] == 1.0 for i in scores_a)
    n = len(scores_a)
    assert found.test == "mcnemar-exact" and comparison.paired == n
    assert found.difference == pytest.approx(100.0 * (b_only - a_only) / n)
    assert found.p_value == pytest.approx(mcnemar_exact(a_only, b_only))
    assert len(comparison.right_to_wrong) == a_only and len(comparison.wrong_to_right) == b_only
    assert found.low <= found.difference <= found.high


def test_a_composite_formula_is_compared_by_a_paired_bootstrap(tmp_path: Path) -> None:
    a, b = _runs(tmp_path, "cvbench")
    comparison = compare_runs(a, b)
    by_metric = {d.metric: d for d in comparison.differences}
    score = by_metric["score"]
    results_a = json.loads((a / "results.json").read_text())["metrics"]
    results_b = json.loads((b / "results.json").read_text())["metrics"]
    assert score.test == "paired-bootstrap" and score.a == pytest.approx(results_a["score"])
    assert score.difference == pytest.approx(results_b["score"] - results_a["score"])
    assert 0.0 <= score.p_value <= 1.0 and score.low <= score.high
    same = compare_runs(a, a)  # a run against itself: no difference, nothing flipped
    assert all(d.difference == 0.0 and d.p_value == 1.0 for d in same.differences)
    assert same.right_to_wrong == same.wrong_to_right == []


def test_runs_that_cannot_be_paired_are_refused_saying_why(tmp_path: Path) -> None:
    vstar, _ = _runs(tmp_path, "vstar")
    cv, _ = _runs(tmp_path, "cvbench")
    with pytest.raises(NotPairable, match=r"differ in benchmark.*cannot be paired"):
        compare_runs(vstar, cv)
    result = runner.invoke(app, ["compare", str(vstar), str(cv)])
    assert result.exit_code == 1 and "cannot be paired" in result.output
    missing = runner.invoke(app, ["compare", str(vstar), str(tmp_path / "nowhere")])
    assert missing.exit_code == 1 and "does not exist" in missing.output


def test_the_cli_prints_a_table_strict_json_and_html(tmp_path: Path) -> None:
    a, b = _runs(tmp_path, "sat")
    table = runner.invoke(app, ["compare", str(a), str(b)])
    assert table.exit_code == 0 and "B - A" in table.output and "flipped:" in table.output
    as_json = runner.invoke(app, ["compare", str(a), str(b), "--json"])
    data = json.loads(as_json.output)  # strict: no NaN
    assert data["benchmark"] == "sat" and "score" in data["figures"] and data["figures"]["score"]["ci95"]
    # SAT's circular copies are one question: the score's test is the bootstrap over questions.
    assert data["figures"]["score"]["test"] == "paired-bootstrap"
    assert set(data) == {"a", "b", "benchmark", "paired_samples", "only_in_a", "only_in_b", "figures",
                         "right_to_wrong", "wrong_to_right"}  # fmt: skip
    assert (data["a"], data["b"]) == (str(a), str(b))
    assert set(data["figures"]["score"]) == {"a", "b", "difference", "stderr", "ci95", "p_value", "test",
                                             "clusters", "resamples", "seed"}  # fmt: skip
    assert (data["figures"]["score"]["resamples"], data["figures"]["score"]["seed"]) == (1000, 0)
    assert data["figures"]["score"]["clusters"] == len({line["sample"]["metadata"]["question_index"]
                                                         for line in map(json.loads, (a / "samples.jsonl").read_text().splitlines())})  # fmt: skip
    html = runner.invoke(app, ["compare", str(a), str(b), "--format", "html", "--out", str(tmp_path / "c.html")])
    assert html.exit_code == 0 and "<table>" in (tmp_path / "c.html").read_text()


def test_the_viewer_header_shows_each_runs_interval(tmp_path: Path) -> None:
    from sifeval.view import headline

    assert headline({"metrics": {"score": 62.34}, "intervals": {"score": {"ci95": [58.12, 66.4]}}}) == (
        ", score 62.3 [58.1, 66.4]"
    )
    assert headline({"metrics": {"score": 62.34}, "intervals": {"score": None}}) == ", score 62.3"
    a, b = _runs(tmp_path, "vstar")
    low, high = json.loads((a / "results.json").read_text())["intervals"]["score"]["ci95"]
    assert runner.invoke(app, ["view", str(a), str(b), "--out", str(tmp_path / "site")]).exit_code == 0
    manifest = (tmp_path / "site" / "data" / "manifest.js").read_text()
    assert f"[{low:.1f}, {high:.1f}]" in manifest


# ----------------------------------------------------------------------------- the paired tests, unit by unit


def _terms(groups: dict[str, list[float]], weights: dict[str, float]) -> list:  # type: ignore[type-arg]
    from sifeval.intervals import Term

    return [Term(weights[g], values, [f"{g}{i}" for i in range(len(values))]) for g, values in groups.items()]


def test_the_paired_bootstrap_by_an_independent_loop_and_by_its_spread() -> None:
    import numpy as np

    from sifeval.compare import _paired

    rng = np.random.default_rng(4)
    sizes, weights = {"A": 300, "B": 200, "C": 400}, {"A": 0.25, "B": 0.25, "C": 0.5}
    first = {g: 100.0 * (rng.random(n) < 0.55) for g, n in sizes.items()}
    flips = {g: rng.random(n) < 0.2 for g, n in sizes.items()}  # B differs from A on 20% of questions
    second = {g: np.where(flips[g], 100.0 - first[g], first[g]) for g in sizes}
    found = _paired("score", _terms({g: list(v) for g, v in first.items()}, weights),
                    _terms({g: list(v) for g, v in second.items()}, weights))  # fmt: skip
    assert found is not None and found.test == "paired-bootstrap" and found.clusters == 900
    by_hand = sum(weights[g] * (second[g].mean() - first[g].mean()) for g in sizes)
    assert found.difference == pytest.approx(by_hand)
    # The same draws, computed another way: a loop over resamples (same seed, same order of groups).
    draws = np.zeros(1000)
    loop = np.random.default_rng(0)
    for g, n in sizes.items():
        picks = loop.integers(0, n, size=(1000, n))
        for b in range(1000):
            draws[b] += weights[g] * (second[g][picks[b]].mean() - first[g][picks[b]].mean())
    assert found.stderr == pytest.approx(draws.std(ddof=1))
    assert (found.low, found.high) == pytest.approx(tuple(np.percentile(draws, [2.5, 97.5])))
    tail = min(np.mean(draws <= 0), np.mean(draws >= 0))
    assert found.p_value == pytest.approx(min(1.0, 2 * tail))
    # ... and its spread is the paired stratified standard error.
    plug_in = math.sqrt(sum(weights[g] ** 2 * np.var(second[g] - first[g]) / sizes[g] for g in sizes))
    assert found.stderr == pytest.approx(plug_in, rel=0.1) and found.low < by_hand < found.high


def test_mcnemars_branch_and_its_edges() -> None:
    import numpy as np

    from sifeval.compare import _paired
    from sifeval.intervals import Term

    a = [100.0, 0.0, 100.0, 0.0, 100.0, 100.0]
    b = [0.0, 100.0, 100.0, 100.0, 100.0, 0.0]
    ids = list("uvwxyz")
    found = _paired("score", [Term(1.0, a, ids)], [Term(1.0, b, ids)])
    d = np.array(b) - np.array(a)
    assert found is not None and found.test == "mcnemar-exact" and found.clusters == 6
    assert found.difference == pytest.approx(0.0) and found.p_value == pytest.approx(mcnemar_exact(2, 2))
    assert found.stderr == pytest.approx(d.std(ddof=1) / math.sqrt(6))  # of the per-question differences
    graded = _paired(
        "score", [Term(1.0, [50.0, 0.0, 100.0], ["p", "q", "r"])], [Term(1.0, [0.0, 0.0, 100.0], ["p", "q", "r"])]
    )
    assert graded is not None and graded.test == "paired-bootstrap"  # partial credit: not a McNemar table
    two = _paired("score", [Term(1.0, [100.0, 0.0], ["p", "q"])], [Term(1.0, [0.0, 0.0], ["p", "q"])])
    assert two is not None and two.clusters == 2  # two questions are enough to pair
    assert _paired("score", [Term(1.0, [100.0], ["p"])], [Term(1.0, [0.0], ["p"])]) is None
    lopsided = [Term(0.5, [1.0, 2.0], ["p", "q"]), Term(0.5, [1.0, 2.0], ["r", "s"])]
    assert _paired("score", lopsided, lopsided[:1]) is None  # the terms do not line up
    with pytest.raises(ValueError):
        _paired("score", [Term(1.0, [1.0, 2.0], ["p"])], [Term(1.0, [1.0, 2.0], ["p"])])  # values without clusters


def test_partly_shared_runs_pair_what_they_share_and_count_errors_as_wrong(tmp_path: Path) -> None:
    data = build_mirror("vstar", tmp_path / "data")
    bench = get_benchmark("vstar")
    run(bench, LetterBackend(1), "letters-1", tmp_path / "a", data_dir=data, mode="plain", progress=False)
    run(bench, LetterBackend(2), "letters-2", tmp_path / "b", data_dir=data, mode="plain", limit=2, progress=False)
    journal = tmp_path / "a" / "samples.jsonl"
    lines = [json.loads(line) for line in journal.read_text().splitlines()]
    lines[0].update(response=None, score=None, request_error={"kind": "request", "message": "refused"})
    journal.write_text("".join(json.dumps(line) + "\n" for line in lines))
    comparison = compare_runs(tmp_path / "a", tmp_path / "b")
    assert (comparison.paired, comparison.only_a, comparison.only_b) == (2, len(lines) - 2, 0)
    b_scores = _scores(tmp_path / "b")
    shared = list(b_scores)
    assert lines[0]["id"] in shared  # the sample whose request failed is one of the paired ones
    a_scores = {line["id"]: line["score"] or 0.0 for line in lines}  # the request error: a wrong answer
    found = {d.metric: d for d in comparison.differences}["score"]
    assert found.a == pytest.approx(100.0 * sum(a_scores[i] for i in shared) / 2)
    assert found.b == pytest.approx(100.0 * sum(b_scores.values()) / 2)
    with pytest.raises(NotPairable, match=r"benchmark: 'vstar' vs 'cvbench'"):
        compare_runs(tmp_path / "a", _runs(tmp_path, "cvbench")[0])
