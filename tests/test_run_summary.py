"""The run folder's summary and files (sifeval.rundir), field by field, with every figure worked
out by hand: the denominators (answered vs all), the rates, the counts, completeness and its
notes, the lines of samples.jsonl both ways, the journal compaction, the restart (issue 23)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from sifeval.adapters import get_benchmark
from sifeval.rundir import (
    RESULTS,
    SAMPLES,
    compact_journal,
    differences,
    holds_samples,
    read_run,
    restart_run,
    scored_from_json,
    scored_to_json,
    summarize,
    write_results,
)
from sifeval.transcripts import AgentTurn, ToolStep, Transcript
from sifeval.types import Sample, ScoredSample
from sifmodel.backends import GenerationError, GenerationSettings
from sifmodel.turns import ToolCall


def _sample(number: int, category: str) -> Sample:
    return Sample(str(number), f"q{number}", "A", category, choices=("x", "y"))


SCORED = [
    ScoredSample(_sample(0, "direct_attributes"), "A", "A", True, 1.0),  # right
    ScoredSample(_sample(1, "direct_attributes"), "B", "B", True, 0.0),  # wrong
    ScoredSample(_sample(2, "direct_attributes"), "?", None, False, 0.0),  # unreadable
    ScoredSample(_sample(3, "relative_position"), None, request_error=GenerationError("request", "HTTP 500")),
    ScoredSample(_sample(4, "relative_position"), "A (y)", "A", True, 1.0, details={"conflicting_option": "B"}),
]


def test_the_summary_of_a_mixed_partial_run_by_hand() -> None:
    settings = GenerationSettings(max_new_tokens=7)
    result = summarize(
        get_benchmark("vstar"), SCORED, "plain", None, {"spec": "m"}, settings, total=10, partial="--limit 5"
    )
    # 2 right of 5 (the request error is wrong in the headline); 2 of the 4 answered.
    assert result.metrics["score"] == pytest.approx(40.0)
    assert result.metrics["score_answered_only"] == pytest.approx(50.0)
    assert result.metrics["category/direct_attributes"] == pytest.approx(100 / 3)
    assert result.metrics["category/relative_position"] == pytest.approx(50.0)
    assert (result.n, result.n_scored, result.request_errors, result.parse_failures) == (5, 4, 1, 1)
    assert result.parse_failure_rate == pytest.approx(1 / 4) and result.request_error_rate == pytest.approx(1 / 5)
    assert (result.judge_failures, result.conflicting_replies, result.choice_judge_calls) == (0, 1, 0)
    assert result.complete is False and result.protocol == "generation" and result.mode == "plain"
    assert result.generation["max_new_tokens"] == 7 and result.model == {"spec": "m"}
    assert result.notes[0].startswith("1 of 5 samples have no response (request errors)")
    assert "this run covers 5 of the benchmark's 10 samples (--limit 5): not a full-benchmark figure" in result.notes
    assert any(
        note.startswith("1 replies state one option's letter and another option's text") for note in result.notes
    )
    assert len(result.notes) == 3
    assert result.versions["git"] and "sifthinker" in result.versions
    # The headline's interval is by question (5 of them), and so is the power.
    score = result.intervals["score"]
    assert score["ci95"][0] < 40.0 < score["ci95"][1] and result.power["power"] == 0.8
    assert result.power["min_detectable_difference"] > 0 and result.agent == {}


def test_a_run_missing_a_category_and_an_empty_run() -> None:
    whole = [s for s in SCORED if s.request_error is None and "conflicting_option" not in s.details]
    result = summarize(get_benchmark("vstar"), whole, "sif", None, {}, None, total=3)
    assert result.complete is True  # every sample answered: complete, though a category has none
    assert math.isnan(result.metrics["category/relative_position"])
    assert any(note.startswith("cannot be computed from this run (null): ") for note in result.notes)
    assert result.generation == {}
    empty = summarize(get_benchmark("vstar"), [], "sif", None, {}, None)
    assert math.isnan(empty.metrics["score"]) and math.isnan(empty.parse_failure_rate)
    assert math.isnan(empty.request_error_rate) and empty.n == 0


def test_lines_of_samples_jsonl_round_trip(tmp_path: Path) -> None:
    step = ToolStep(
        ToolCall("image_zoom_in_tool", {"bbox_2d": [1, 2, 3, 4]}, "{}"), 0, (1, 2, 3, 4), "ab", None, (8, 8)
    )
    item = ScoredSample(
        Sample("s", "q", "B", "c", choices=("x", "y"), sif_question="sq", metadata={"pair": 3}),
        "reply",
        "B",
        True,
        1.0,
        details={"why": "x"},
        judge_error="judge down",
        transcript=Transcript((AgentTurn("reply", (step,), {"completion_tokens": 3}),), "answer", 0.5),
    )
    line = scored_to_json(item, {"latency_s": 0.25})
    assert line["latency_s"] == 0.25 and line["id"] == "s" and line["request_error"] is None
    assert scored_from_json(json.loads(json.dumps(line))) == item
    failed = ScoredSample(Sample("t", "q", "A", "c"), None, request_error=GenerationError("timeout", "60 s"))
    assert scored_from_json(json.loads(json.dumps(scored_to_json(failed)))) == failed
    assert scored_to_json(failed)["request_error"] == {"kind": "timeout", "message": "60 s"}
    assert "transcript" not in scored_to_json(failed)


def test_journal_compaction_restart_and_what_a_folder_holds(tmp_path: Path) -> None:
    journal = tmp_path / SAMPLES
    assert not holds_samples(tmp_path)
    journal.write_text("")
    assert not holds_samples(tmp_path)  # an empty journal is a start that failed
    lines = [{"id": "a", "v": 1}, {"id": "b", "v": 1}, {"id": "a", "v": 2}]
    journal.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert holds_samples(tmp_path)
    compact_journal(journal)
    assert [json.loads(x) for x in journal.read_text().splitlines()] == [{"id": "a", "v": 2}, {"id": "b", "v": 1}]
    before = journal.read_bytes()
    compact_journal(journal)  # nothing to drop: the file is left as it is
    assert journal.read_bytes() == before
    compact_journal(tmp_path / "absent.jsonl")
    assert not (tmp_path / "absent.jsonl").exists()

    for name in ("run.json", RESULTS, "turns.jsonl", "notes.txt"):
        (tmp_path / name).write_text("{}")
    (tmp_path / "crops").mkdir()
    (tmp_path / "crops" / "ab.png").write_bytes(b"png")
    removed = restart_run(tmp_path)
    assert sorted(path.name for path in removed) == sorted(["run.json", SAMPLES, RESULTS, "turns.jsonl", "crops"])
    left = sorted(path.name for path in tmp_path.iterdir() if not path.name.startswith("."))
    assert left == ["notes.txt"]  # others' files stay (and the folder's lock)


def test_results_are_strict_json_and_read_back(tmp_path: Path) -> None:
    result = summarize(get_benchmark("vstar"), SCORED[:3], "plain", None, {}, None)
    (tmp_path / SAMPLES).write_text("".join(json.dumps(scored_to_json(s)) + "\n" for s in SCORED[:3]))
    write_results(tmp_path, result)
    text = (tmp_path / RESULTS).read_text()
    assert "NaN" not in text and json.loads(text)["metrics"]["category/relative_position"] is None
    results, scored = read_run(tmp_path)
    assert results["n"] == 3 and [s.sample.id for s in scored] == ["0", "1", "2"]
    saved = {"benchmark": "vstar", "protocol": "generation", "mode": "plain", "model": "m1", "agent": None}
    assert differences(saved, {**saved, "model": "m2", "mode": "sif"}) == ["mode", "model"]
    assert differences(saved, {**saved, "extra": 1}) == []
