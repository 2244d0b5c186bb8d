"""`sifeval compare` (issue 21): two runs paired on their questions, McNemar's exact test agreeing
with scipy, a paired bootstrap for composite formulas, refusals that say why, strict JSON."""

from __future__ import annotations

import json
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
