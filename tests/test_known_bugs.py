"""Six one-line bugs that once went through the whole suite unnoticed (issue 23), each with the
test that now catches it. Expected values are by hand; the upstream rule is cited where there
is one. ``docs/mutation.md`` lists them with the mutant each one is."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sifdata.answers import extract_choice
from sifdata.depth import DepthMap
from sifeval.adapters import get_benchmark, load_samples
from sifeval.mirrors import build_mirror
from sifeval.rundir import summarize
from sifeval.sat import official_reading
from sifeval.types import Sample, ScoredSample
from sifmodel.backends import GenerationError
from sifmodel.rewards import SIFRewards, depth_consistency_score


def test_the_last_stated_answer_wins() -> None:
    """extract_choice takes the last "the answer is X" (its docstring's table), not the first."""
    assert extract_choice("The answer is A. Looking again at the left side, the answer is C.", "ABCD") == "C"
    assert extract_choice("Answer: B\nOn reflection, answer: D", "ABCD") == "D"
    assert extract_choice("Option A looks close, but the answer is (B).", "ABCD") == "B"


def test_spatialbench_pairs_are_positions_2k_and_2k_plus_1(tmp_path: Path) -> None:
    """Upstream eval_spatialbench.py L159-200 pairs consecutive records (0, 1), (2, 3): a pair
    index shifted by one pairs (1, 2) and leaves 0 and 3 alone."""
    bench = get_benchmark("spatialbench")
    samples = load_samples(bench, build_mirror("spatialbench", tmp_path / "sb"))
    by_category: dict[str, list[Sample]] = {}
    for sample in samples:
        by_category.setdefault(sample.category, []).append(sample)
    assert all([s.metadata["pair"] for s in group] == [0, 0, 1, 1] for group in by_category.values())
    wrong = {"positional": {3}, "existence": {3}, "reach": {3}, "size": {1, 2}}
    scored = []
    for category, group in by_category.items():
        for position, sample in enumerate(group):
            reply = "zzz" if position in wrong.get(category, set()) else sample.target
            scored.append(bench.score(sample, reply, "plain"))
    figures = bench.aggregate(scored)
    # positional: 3 of 4; existence: pair (0,1) both right, (2,3) not: 1 of 2; counting: exact;
    # reach: (1+1+1) + (1+0+0) of 6; size: (1+0+0) + (0+1+0) of 6.
    assert figures["category/positional"] == pytest.approx(75.0)
    assert figures["category/existence"] == pytest.approx(50.0)
    assert figures["category/counting"] == pytest.approx(100.0)
    assert figures["category/reach"] == pytest.approx(100 * 4 / 6)
    assert figures["category/size"] == pytest.approx(100 * 2 / 6)
    assert figures["score"] == pytest.approx((75 + 50 + 100 + 400 / 6 + 200 / 6) / 5)


def test_an_unreadable_box_is_a_miss_in_the_depth_denominator() -> None:
    """One box right, one unreadable: 1 of 2 (0.5), never 1 of 1."""
    depth = DepthMap(np.full((20, 20), 0.2, dtype=np.float32))
    good = '{"bbox_2d":[0.100,0.100,0.500,0.500],"depth":0.200}'
    unreadable = '{"bbox_2d":[0.5,"far",0.9,0.9],"depth":0.200}'
    completion = f"<think><area>[{good},{unreadable}]</area><text>x</text></think><answer>a</answer>"
    assert depth_consistency_score(completion, depth) == 0.5


def test_the_progress_bonus_at_and_above_the_reference() -> None:
    """grpo-sif.md: with s >= s_prev, reward = s + (s - s_prev). At s == s_prev the bonus is 0,
    so ``>=`` and ``>`` give the same reward there: that mutant is equivalent (docs/mutation.md).
    What can break is the bonus above the reference and its absence below it."""
    rewards = SIFRewards()
    rewards.progress.update({"a": 0.5, "b": 0.5, "c": 0.5})
    assert rewards._with_progress([0.75, 0.5, 0.25], ["a", "b", "c"]) == [1.0, 0.5, 0.25]


def test_sat_drops_what_follows_highlighted_by() -> None:
    """SAT's reading (upstream L1886-1887): "X (highlighted by a red box)" is read as "X"."""
    question = "Which object is to the left?"
    assert official_reading("The chair (highlighted by a red box)", question) == "the chair"
    assert official_reading("Left (highlighted by blue)", question) == "left"


def test_the_parse_failure_rate_is_over_answered_samples() -> None:
    """1 request error, 3 answered of which 1 unreadable: 1/3, not 1/4."""
    bench = get_benchmark("vstar")
    sample = Sample("0", "q", "A", "direct_attributes", choices=("x", "y"))

    def item(number: int, **fields: object) -> ScoredSample:
        return ScoredSample(Sample(str(number), "q", "A", "direct_attributes", choices=("x", "y")), **fields)  # type: ignore[arg-type]

    scored = [
        item(0, response=None, request_error=GenerationError("request", "boom")),
        item(1, response="A", extracted="A", parse_ok=True, score=1.0),
        item(2, response="B", extracted="B", parse_ok=True, score=0.0),
        item(3, response="?", extracted=None, parse_ok=False, score=0.0),
    ]
    assert sample.id == "0"
    result = summarize(bench, scored, "plain", None, {}, None)
    assert result.parse_failure_rate == pytest.approx(1 / 3)
    assert result.request_error_rate == pytest.approx(1 / 4)
    assert (result.parse_failures, result.request_errors, result.n_scored) == (1, 1, 3)
