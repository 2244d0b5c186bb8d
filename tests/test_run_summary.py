"""The run folder's summary and files (sifeval.rundir), field by field, with every figure worked
out by hand: the denominators (answered vs all), the rates, the counts, completeness and its
notes, the lines of samples.jsonl both ways, the journal compaction, the restart (issue 23)."""

from __future__ import annotations

import contextlib
import json
import math
import os
import subprocess
from importlib import metadata
from pathlib import Path
from statistics import NormalDist

import pytest

from sifdata.files import FolderBusy, exclusive_lock
from sifeval import rundir
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
    assert result.notes == [
        "1 of 5 samples have no response (request errors): `score` counts them as wrong, as the official scripts "
        "count a question without an answer; `score_answered_only` leaves them out. Run again with --resume to ask "
        "them again.",
        "this run covers 5 of the benchmark's 10 samples (--limit 5): not a full-benchmark figure",
        "1 replies state one option's letter and another option's text: scored by the letter, the protocol's rule "
        "(the viewer's 'conflict' filter lists them)",
    ]
    assert result.dataset["local_path"] is None and result.protocol_options == {}
    # The headline's interval is by question (5 of them: 100, 0, 0, 0, 100): the standard error
    # of their mean is sqrt(3000) / sqrt(5); the answered-only one over 4 (100, 0, 0, 100).
    score = result.intervals["score"]
    assert (score["stderr"], score["clusters"]) == (pytest.approx(math.sqrt(3000 / 5)), 5)
    answered_only = result.intervals["score_answered_only"]
    assert (answered_only["stderr"], answered_only["clusters"]) == (pytest.approx(math.sqrt(10000 / 3) / 2), 4)
    z = NormalDist().inv_cdf(0.975) + NormalDist().inv_cdf(0.8)
    assert result.power == {
        "min_detectable_difference": pytest.approx(z * math.sqrt(2) * math.sqrt(3000 / 5)),
        "power": 0.8,
        "alpha": 0.05,
        "assumes": "a paired comparison with a model as variable as this one, errors uncorrelated",
    }
    assert result.agent == {}


def _git_head() -> str:
    """What the results must record as the code's version: the checkout's commit, if any."""
    try:
        run = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True)
    except OSError:
        return "unknown"
    return run.stdout.strip() or "unknown"


def test_the_versions_recorded_are_the_installed_packages_and_the_commit() -> None:
    result = summarize(get_benchmark("vstar"), SCORED[:2], "sif", "/data/vstar", {}, None)
    listed = ("sifthinker", "transformers", "torch", "datasets", "trl", "vllm", "openai")
    installed = {}
    for package in listed:
        with contextlib.suppress(metadata.PackageNotFoundError):  # not installed: no entry, not a null
            installed[package] = metadata.version(package)
    assert result.versions == {**installed, "git": _git_head()}
    assert result.dataset["local_path"] == "/data/vstar"


def test_every_note_of_an_unfinished_judged_run_by_hand() -> None:
    bench = get_benchmark("vstar")
    bench.recorded_choice_judge = "judge-x"  # type: ignore[attr-defined]
    scored = [
        ScoredSample(_sample(0, "direct_attributes"), "A", "A", True, 1.0, details={"choice_judge": "B"}),
        ScoredSample(_sample(1, "direct_attributes"), "?", None, False, 0.0, details={"choice_judge": "none"}),
        ScoredSample(_sample(2, "direct_attributes"), "?", None, False, 0.0, details={"choice_judge": "none"}),
        ScoredSample(_sample(3, "direct_attributes"), "?", None, False, 0.0, details={"choice_judge": "failed"}),
        ScoredSample(_sample(4, "direct_attributes"), "red", None, False, None, judge_error="judge down"),
    ]
    result = summarize(
        bench, scored, "plain", None, {}, None, {"notes": ["from the runner"], "agent": {"max_turns": 3}}, total=7
    )
    assert result.notes == [
        "1 answers could not be graded by the judge: they are left out of the judged figures (neither a request "
        "error nor a 0); `sifeval rescore RUN` grades them again.",
        "this run covers 5 of the benchmark's 7 samples: not a full-benchmark figure",
        "cannot be computed from this run (null): category/relative_position (a category, pair or subset of the "
        "official formula has no sample here)",
        "choice judge judge-x: 4 replies the rules could not map were sent to it (1 mapped to an option, 2 to none, "
        "1 failed); the official protocol has no judge, so these figures are not the official protocol's",
        "from the runner",
    ]
    assert result.protocol_options == {"choice_judge": "judge-x"} and result.choice_judge_calls == 4
    assert (result.judge_failures, result.n_scored, result.parse_failures) == (1, 5, 3)
    assert result.agent == {"settings": {"max_turns": 3}}  # asked for, though no sample has a transcript
    # A judge failure leaves a run incomplete even when every sample was asked.
    assert summarize(bench, scored, "plain", None, {}, None, total=5).complete is False
    assert summarize(bench, scored[:4], "plain", None, {}, None, total=4).complete is True
    assert summarize(bench, scored[:4], "plain", None, {}, None, total=4).notes[:1] == [
        "cannot be computed from this run (null): category/relative_position (a category, pair or subset of the "
        "official formula has no sample here)"
    ]


def test_an_empty_run_has_only_the_two_headline_figures() -> None:
    empty = summarize(get_benchmark("vstar"), [], "sif", None, {}, None)
    assert list(empty.metrics) == ["score", "score_answered_only"]
    assert empty.intervals == {"score": None, "score_answered_only": None}
    assert empty.notes == [
        "cannot be computed from this run (null): score, score_answered_only (a category, pair or subset of the "
        "official formula has no sample here)"
    ]


@pytest.mark.parametrize("git", ["missing", "not a checkout"])
def test_the_commit_is_unknown_without_git_or_outside_a_checkout(git: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def run(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        if git == "missing":
            raise FileNotFoundError(2, "No such file or directory", command[0])
        return subprocess.CompletedProcess(command, 128, "", "fatal: not a git repository")

    monkeypatch.setattr(rundir.subprocess, "run", run)
    assert summarize(get_benchmark("vstar"), SCORED[:1], "sif", None, {}, None).versions["git"] == "unknown"


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
    journal.write_text(json.dumps({"id": "c", "q": "café"}) + "\n" + json.dumps({"id": "c", "q": "naïve"}) + "\n")
    compact_journal(journal)  # lines as UTF-8 text, not \\u escapes
    assert journal.read_text(encoding="utf-8") == '{"id": "c", "q": "naïve"}\n'
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


def test_a_restart_waits_for_no_one_it_is_refused_while_a_run_holds_the_folder(tmp_path: Path) -> None:
    (tmp_path / SAMPLES).write_text('{"id": "a"}\n')
    with exclusive_lock(tmp_path, "sifeval run"), pytest.raises(FolderBusy) as raised:
        restart_run(tmp_path)
    assert f"{tmp_path} is in use by another process (pid {os.getpid()}): sifeval run --restart would mix" in str(
        raised.value
    )
    assert (tmp_path / SAMPLES).is_file()  # nothing removed


def test_results_json_layout_and_a_folder_without_results(tmp_path: Path) -> None:
    write_results(tmp_path, summarize(get_benchmark("vstar"), SCORED[:1], "plain", None, {}, None))
    lines = (tmp_path / RESULTS).read_text(encoding="utf-8").splitlines()
    assert lines[0] == "{" and lines[1].startswith('  "benchmark": ') and lines[-1] == "}"  # 2-space indent
    (tmp_path / RESULTS).unlink()
    (tmp_path / SAMPLES).write_text(json.dumps(scored_to_json(SCORED[0])) + "\n")
    results, scored = read_run(tmp_path)  # a run stopped before its first summary
    assert results == {} and scored == [SCORED[0]]
