"""Each benchmark end to end (``sifeval run`` against a loopback model) with replies right for some
samples and wrong for others, in two prompt modes, and every figure recomputed here from the
mirror's raw files by the official rule written out again (issue 23): a wrong denominator, a
wrong pairing or a wrong formula changes a figure. SAT's circular figures are checked the same
way in test_eval.py (``test_shards_merge_rescore_and_report``).

The rules, as the upstream code has them:
- CV-Bench (dataset card, nyu-visionx/CV-Bench): accuracy per source; score =
  ((ADE20K + COCO) / 2 + Omni3D) / 2.
- V* (penghao-wu/vstar 4ede664, vstar_bench_eval): accuracy over all questions and per category.
- SpatialBench (BAAI-DCAI/SpatialBot 2d84503, eval_spatialbench.py L159-207): the reference must
  occur in the reply, case-sensitive; positional: accuracy; existence: a pair of consecutive
  records (2k, 2k + 1) counts when both are right; reach and size: per pair, one point per right
  answer plus one when both are, out of 3; counting: 100 minus the mean absolute percentage
  error; score: the mean of the five.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from sifeval.cli import app
from sifeval.mirrors import build_mirror
from sifeval.scripted import ScriptedSIFServer

runner = CliRunner()
CHAIN = '<think><area>[{"bbox_2d":[0.000,0.000,1.000,1.000],"depth":0.500}]</area><text>look</text></think>'


def reply_text(answer: str, mode: str) -> str:
    return f"{CHAIN}<answer>{answer}</answer>" if mode.startswith("sif") else answer


def run(bench: str, data: Path, out: Path, mode: str, replies: dict[str, str], *extra: str) -> dict[str, Any]:
    with ScriptedSIFServer({question: reply_text(answer, mode) for question, answer in replies.items()}) as server:
        result = runner.invoke(
            app,
            [
                "run",
                "--no-progress",
                "--bench",
                bench,
                "--model",
                f"openai:m@{server.base_url}",
                "--data",
                str(data),
                "--out",
                str(out),
                "--mode",
                mode,
                "--no-cache",
                *extra,
            ],
        )
    assert result.exit_code == 0, result.output
    return json.loads((out / "results.json").read_text(encoding="utf-8"))


def choose(
    rows: list[dict[str, Any]], key: str, right: Callable[[dict], str], wrong: Callable[[dict], str]
) -> dict[str, str]:
    """One reply per distinct question (a question asked twice gets the same reply): wrong for
    every third distinct question, right for the others, judged against its first record."""
    replies: dict[str, str] = {}
    for row in rows:
        if row[key] not in replies:
            replies[row[key]] = wrong(row) if len(replies) % 3 == 0 else right(row)
    return replies


def percent(values: list[float]) -> float:
    return 100.0 * sum(values) / len(values)


@pytest.mark.parametrize("mode", ["plain", "sif-rgb"])
def test_cvbench_by_the_cards_formula(mode: str, tmp_path: Path) -> None:
    data = build_mirror("cvbench", tmp_path / "data")
    rows = [
        json.loads(line)
        for name in ("test_2d", "test_3d")
        for line in (data / f"{name}.jsonl").read_text().splitlines()
    ]
    # The mirror's whole set is balanced (4 ADE20K, 4 COCO, 8 Omni3D), where the card's formula
    # equals the plain mean; its first 12 questions (the 2D file, then 4 of the 3D one) are not.
    rows = rows[:12]
    replies = choose(
        rows, "question", lambda row: row["answer"], lambda row: "(B)" if row["answer"] == "(A)" else "(A)"
    )
    right = {id(row): replies[row["question"]] == row["answer"] for row in rows}
    by_source = {
        source: percent([right[id(row)] for row in rows if row["source"] == source])
        for source in ("ADE20K", "COCO", "Omni3D")
    }
    expected = ((by_source["ADE20K"] + by_source["COCO"]) / 2 + by_source["Omni3D"]) / 2
    micro = percent(list(right.values()))
    assert 0 < expected < 100 and expected != pytest.approx(micro)  # the formula is not the plain mean
    results = run("cvbench", data, tmp_path / "out", mode, replies, "--limit", "12")
    assert (results["n"], results["parse_failures"], results["request_errors"]) == (len(rows), 0, 0)
    assert results["metrics"]["score"] == pytest.approx(expected)
    assert results["metrics"]["micro_accuracy"] == pytest.approx(micro)
    for source, value in by_source.items():
        assert results["metrics"][f"source/{source}"] == pytest.approx(value)


@pytest.mark.parametrize("mode", ["plain", "sif-rgb"])
def test_vstar_by_its_official_accuracy(mode: str, tmp_path: Path) -> None:
    data = build_mirror("vstar", tmp_path / "data")
    rows = [json.loads(line) for line in (data / "test_questions.jsonl").read_text().splitlines()]
    for row in rows:
        row["question"] = row["text"].split("\n")[0]
    replies = choose(rows, "question", lambda row: row["label"], lambda row: "A" if row["label"] != "A" else "B")
    right = {id(row): replies[row["question"]] == row["label"] for row in rows}
    results = run("vstar", data, tmp_path / "out", mode, replies)
    assert (results["n"], results["parse_failures"]) == (len(rows), 0)
    assert 0 < results["metrics"]["score"] < 100
    assert results["metrics"]["score"] == pytest.approx(percent(list(right.values())))
    for category in ("direct_attributes", "relative_position"):
        expected = percent([right[id(row)] for row in rows if row["category"] == category])
        assert results["metrics"][f"category/{category}"] == pytest.approx(expected)


@pytest.mark.parametrize("mode", ["plain", "sif"])
def test_spatialbench_by_the_official_script(mode: str, tmp_path: Path) -> None:
    data = build_mirror("spatialbench", tmp_path / "data")
    figures: dict[str, float] = {}
    replies: dict[str, str] = {}
    for category in ("positional", "existence", "counting", "reach", "size"):
        rows = json.loads((data / f"{category}.json").read_text())
        if category == "counting":
            chosen = choose(rows, "question", lambda row: row["answer"], lambda row: str(int(row["answer"]) + 1))
            apes = [abs(float(chosen[r["question"]]) - float(r["answer"])) / float(r["answer"]) * 100 for r in rows]
            figures[category] = 100.0 - sum(apes) / len(apes)
        else:
            chosen = choose(rows, "question", lambda row: row["answer"], lambda row: "unsure")
            right = [row["answer"] in chosen[row["question"]] for row in rows]  # case-sensitive containment
            pairs = [(right[k], right[k + 1]) for k in range(0, len(right), 2)]
            if category == "positional":
                figures[category] = percent(right)
            elif category == "existence":
                figures[category] = percent([a and b for a, b in pairs])
            else:
                figures[category] = 100.0 * sum(a + b + (a and b) for a, b in pairs) / (3 * len(pairs))
        assert not set(chosen) & set(replies)  # no question shared across files
        replies.update(chosen)
    expected = sum(figures.values()) / len(figures)
    assert 0 < expected < 100
    results = run("spatialbench", data, tmp_path / "out", mode, replies)
    assert (results["n"], results["parse_failures"], results["request_errors"]) == (20, 0, 0)
    assert results["metrics"]["score"] == pytest.approx(expected)
    for category, value in figures.items():
        assert results["metrics"][f"category/{category}"] == pytest.approx(value)
