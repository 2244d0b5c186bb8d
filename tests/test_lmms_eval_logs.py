"""Re-scoring the logs lmms-eval 0.7.3 really writes (tests/data/lmms_eval, made by lmms-eval
itself: see its README) by the official protocols, the figures computed by hand below."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from lmms_eval_layouts import build_local_copies
from typer.testing import CliRunner

from sifdata.files import LOCK_FILE
from sifeval.cli import app
from sifeval.lmms_logs import TASKS, LogRefused, logged_reply

LOGS = Path(__file__).parent / "data" / "lmms_eval"
DEFAULT = LOGS / "default" / "scripted__sif-writer"
CV_BENCH_LOG = next(DEFAULT.glob("*_samples_cv_bench.jsonl"))
VSTAR_LOG = next(DEFAULT.glob("*_samples_vstar_bench.jsonl"))
SAT_FILTERED_LOG = next(DEFAULT.glob("*_samples_sat.jsonl"))
SAT_RAW_LOG = next((LOGS / "raw" / "scripted__sif-writer").glob("*_samples_sat.jsonl"))
runner = CliRunner()


@pytest.fixture(scope="module")
def copies(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_local_copies(tmp_path_factory.mktemp("lmms-data"))


def _data(copies: dict[str, Path]) -> list[str]:
    return [
        "--data",
        f"cv_bench={copies['nyu-visionx/CV-Bench']}",
        "--data",
        f"vstar_bench={copies['lmms-lab-encoder/vstar-bench']}",
        "--data",
        f"sat={copies['nv-njb/SAT']}",
    ]


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _rescore(*args: str) -> Any:
    return runner.invoke(app, ["rescore", "--from-lmms-eval", *args])


def test_the_real_logs_have_no_doc(copies: dict[str, Path]) -> None:
    """What the rest of this file relies on: lmms-eval pops ``doc`` from every line
    (loggers/evaluation_tracker.py L286) and ``resps`` where it equals ``filtered_resps`` (L280-283)."""
    for log in (CV_BENCH_LOG, VSTAR_LOG, SAT_FILTERED_LOG, SAT_RAW_LOG):
        lines = _lines(log)
        assert lines and all("doc" not in line and "doc_id" in line for line in lines)
    assert all("resps" not in line for line in _lines(SAT_FILTERED_LOG))


def test_cv_bench_log_scored_by_the_official_formula(copies: dict[str, Path], tmp_path: Path) -> None:
    result = _rescore(str(CV_BENCH_LOG), "--out", str(tmp_path / "o"), *_data(copies))
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "o" / "results.json").read_text())
    metrics = results["metrics"]
    # By hand, from the log's replies and the rows' targets (doc_id: reply -> ours):
    # ADE20K 0 "A" right, 2 "The second option, (B)." right, 4 "Answer: D" (2 options) no answer,
    #   6 "D" (2 options) no answer: 2/4 = 50; COCO 1 "(C) 1" wrong, 3 "I cannot tell" no answer,
    #   5 "(A)" right, 7 "b" wrong: 1/4 = 25; Omni3D 8..15: 11 "B", 12 "The answer is (B).",
    #   15 "(A)" right, 10 a request failure, the rest wrong: 3/8 = 37.5.
    assert metrics["source/ADE20K"] == 50.0 and metrics["source/COCO"] == 25.0
    assert metrics["source/Omni3D"] == 37.5
    assert metrics["acc_2D"] == 37.5 and metrics["acc_3D"] == 37.5 and metrics["score"] == 37.5
    # lmms-eval's own figure: the micro share of replies whose first letter is the answer
    # (tasks/cv_bench/utils.py L6-24, L55-64): 5/16, crediting "Answer: D" as A.
    assert "cv_bench_acc,none = 0.3125" in " ".join(results["notes"])
    logged = {line["doc_id"]: line["cv_bench_acc"] for line in _lines(CV_BENCH_LOG)}
    assert logged[4]["pred"] == "Answer: D" and logged[4]["is_correct"] is True
    scored = {line["id"]: line for line in _lines(tmp_path / "o" / "samples.jsonl")}
    assert scored["4"]["score"] == 0.0 and scored["4"]["parse_ok"] is False
    # lmms-eval scores its own failed request as an answer (models/chat/openai.py L143-147); here it
    # is a request error, counted as unanswered and named.
    failed = scored["10"]["request_error"]  # typed in the run folder: its kind and its message
    assert failed["kind"] == "lmms-eval" and failed["message"].startswith("[LMMS_EVAL_REQUEST_FAILED")
    assert results["request_errors"] == 1 and results["complete"] is False
    assert "run it again for them" in " ".join(results["notes"]) and "--resume" not in " ".join(results["notes"])
    assert "re-scored from lmms-eval's cv_bench log" in " ".join(results["notes"])


def test_vstar_log_joined_by_doc_id(copies: dict[str, Path], tmp_path: Path) -> None:
    result = _rescore(str(VSTAR_LOG), "--out", str(tmp_path / "v"), *_data(copies))
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "v" / "results.json").read_text())["metrics"]
    # direct_attributes 2 "C." and 5 "The answer is B" right of 6; relative_position none of 6
    # ("(D)", "Answer: C", "The answer is (C)." name no option of two).
    assert metrics["category/direct_attributes"] == pytest.approx(100 / 3)
    assert metrics["category/relative_position"] == 0.0 and metrics["score"] == pytest.approx(100 / 6)
    scored = _lines(tmp_path / "v" / "samples.jsonl")
    assert next(line["sample"]["choices"] for line in scored) == ["red", "blue", "orange", "white"]


def test_sat_log_of_filtered_words_is_refused(copies: dict[str, Path], tmp_path: Path) -> None:
    result = _rescore(str(SAT_FILTERED_LOG), "--out", str(tmp_path / "s"), *_data(copies))
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert "filter's output" in text and "--reasoning_tags none" in text and "sif_sat" in text
    assert not (tmp_path / "s" / "results.json").exists()


def test_sat_log_with_raw_replies_is_scored(copies: dict[str, Path], tmp_path: Path) -> None:
    result = _rescore(str(SAT_RAW_LOG), "--out", str(tmp_path / "s"), *_data(copies))
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "s" / "results.json").read_text())
    # lmms-eval's SAT asks lettered options in one order: our `letters` protocol, one rotation.
    # Right: 0 "<think>hmm</think>A", 1 "A", 9 "A", 10 "The answer is A." (4 of 12); lmms-eval's
    # exact match on the first word got 2 ("The" is no letter).
    assert results["protocol"] == "letters" and results["metrics"]["score"] == pytest.approx(100 / 3)
    assert "exact_match,flexible-extract = 0.1667" in " ".join(results["notes"])


def test_an_output_folder_is_rescored_log_by_log(copies: dict[str, Path], tmp_path: Path) -> None:
    source = tmp_path / "lmms-out"
    shutil.copytree(LOGS, source)
    (source / "default" / "scripted__sif-writer" / "20261126_000000_samples_mme.jsonl").write_text("{}\n")
    result = _rescore(str(source), "--out", str(tmp_path / "o"), *_data(copies))
    assert result.exit_code == 1  # the filtered SAT log was not scored
    written = sorted(path.name for path in (tmp_path / "o").iterdir() if path.name != LOCK_FILE)
    assert [name.split("_", 2)[2] for name in written] == ["cv_bench", "vstar_bench", "sat"]
    assert "skipped 20261126_000000_samples_mme.jsonl" in " ".join(result.output.split())


def test_a_join_against_the_wrong_copy_is_refused(copies: dict[str, Path], tmp_path: Path) -> None:
    wrong = ["--data", f"cv_bench={copies['lmms-lab-encoder/vstar-bench']}"]
    result = _rescore(str(CV_BENCH_LOG), "--out", str(tmp_path / "o"), *wrong)
    assert result.exit_code == 1 and "not the copy lmms-eval's cv_bench read" in " ".join(result.output.split())
    shuffled = tmp_path / "20261126_000000_samples_vstar_bench.jsonl"
    lines = _lines(VSTAR_LOG)
    lines[0]["doc_id"], lines[1]["doc_id"] = lines[1]["doc_id"], lines[0]["doc_id"]
    shuffled.write_text("".join(json.dumps(line) + "\n" for line in lines))
    result = _rescore(str(shuffled), "--out", str(tmp_path / "v"), *_data(copies))
    text = " ".join(result.output.split())
    assert result.exit_code == 1 and "doc_id 1: the log says question_id" in text


def test_without_rows_it_says_where_to_find_them(tmp_path: Path) -> None:
    result = _rescore(str(CV_BENCH_LOG), "--out", str(tmp_path / "o"))  # offline: no Hub copy
    text = " ".join(result.output.split())
    assert result.exit_code == 1 and "give --data cv_bench=DIR" in text


@pytest.mark.parametrize(
    ("entry", "task", "raw_everywhere", "reply"),
    [
        ({"filtered_resps": "The answer is (B)."}, "cv_bench", False, "The answer is (B)."),
        ({"resps": "<think>x</think>B", "filtered_resps": "B"}, "cv_bench", False, "<think>x</think>B"),
        ({"resps": [["(B)"]], "filtered_resps": ["(B)"]}, "sat", False, "(B)"),  # the older layout
        ({"resps": ["The answer is B."], "filtered_resps": "The"}, "sat", False, "The answer is B."),
        ({"filtered_resps": "A"}, "sat", True, "A"),
    ],
)
def test_where_the_reply_is(entry: dict[str, Any], task: str, raw_everywhere: bool, reply: str) -> None:
    """evaluator.py L303-346 and evaluation_tracker.py L266-283: which field holds the reply."""
    assert logged_reply(entry, TASKS[task], raw_everywhere) == reply


def test_a_filtered_word_is_never_taken_for_a_reply() -> None:
    with pytest.raises(LogRefused, match="first word"):
        logged_reply({"filtered_resps": "The"}, TASKS["sat"], False)
    with pytest.raises(LogRefused):  # a string resps of a filtered task is the filter's output
        logged_reply({"resps": "thinkhmmthinkA", "filtered_resps": "thinkhmmthinkA"}, TASKS["sat"], False)


def test_bad_logs_name_the_file_line_and_reason(copies: dict[str, Path], tmp_path: Path) -> None:
    lines = CV_BENCH_LOG.read_text().splitlines()
    broken = tmp_path / "logs" / CV_BENCH_LOG.name
    broken.parent.mkdir()
    broken.write_text("\n".join([*lines[:3], "{not json", *lines[3:]]) + "\n")
    no_id = tmp_path / "logs" / "20261126_000001_samples_vstar_bench.jsonl"
    no_id.write_text('{"target": "A"}\n')
    result = _rescore(str(tmp_path / "logs"), "--out", str(tmp_path / "o"), *_data(copies))
    text = " ".join(result.output.split())
    assert result.exit_code == 1
    assert "line 4: not valid JSON" in text and "samples_cv_bench" in text  # the file (wrapped) and its line
    assert "line 1: not an lmms-eval sample (no doc_id)" in text
    left = [path.name for path in (tmp_path / "o").iterdir()] if (tmp_path / "o").exists() else []
    assert left in ([], [LOCK_FILE])  # nothing half-written (the released lock blocks nothing)
    mismatch = _rescore(str(CV_BENCH_LOG), "--bench", "vstar", "--out", str(tmp_path / "m"))
    assert mismatch.exit_code == 1 and "is a log of lmms-eval's cv_bench (cvbench), not of vstar" in " ".join(
        mismatch.output.split()
    )
    renamed = tmp_path / "mylog.jsonl"
    renamed.write_text(CV_BENCH_LOG.read_text())
    unnamed = _rescore(str(renamed), "--out", str(tmp_path / "u"))
    assert unnamed.exit_code == 1 and "give --bench" in " ".join(unnamed.output.split())
    renamed_ok = _rescore(str(renamed), "--bench", "cvbench", "--out", str(tmp_path / "u"), *_data(copies))
    assert renamed_ok.exit_code == 0, renamed_ok.output


# ----------------------------------------------------------------------------- counting right (issue 18)


def _copy_log(source: Path, folder: Path, lines: list[str] | None = None, raw: bytes | None = None) -> Path:
    """The log (and its results.json) under ``folder``, its lines replaced when given."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(source.with_name(source.name.split("_samples_")[0] + "_results.json"), folder)
    target = folder / source.name
    if raw is not None:
        target.write_bytes(raw)
    else:
        target.write_text("".join(line + "\n" for line in (lines or [])) if lines is not None else source.read_text())
    return target


def test_a_doc_logged_twice_counts_once_or_is_refused(copies: dict[str, Path], tmp_path: Path) -> None:
    lines = VSTAR_LOG.read_text().splitlines()
    twice = _copy_log(VSTAR_LOG, tmp_path / "twice", [*lines, lines[0], lines[4]])
    result = _rescore(str(twice), "--out", str(tmp_path / "o1"), *_data(copies))
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "o1" / "results.json").read_text())
    assert results["n"] == len(lines) and results["metrics"]["score"] == pytest.approx(100 / 6)  # as the clean log
    assert "2 lines repeat a doc_id already logged with the same reply: counted once" in results["notes"]
    changed = json.loads(lines[0])
    changed["filtered_resps"] = "(D) a different reply"
    changed.pop("resps", None)
    conflict = _copy_log(VSTAR_LOG, tmp_path / "conflict", [*lines, json.dumps(changed)])
    refused = _rescore(str(conflict), "--out", str(tmp_path / "o2"), *_data(copies))
    text = _flat(refused.output)
    assert refused.exit_code == 1 and f"line {len(lines) + 1}" in text and "logged on line 1" in text
    assert not (tmp_path / "o2" / "results.json").exists()


def test_a_short_or_empty_log_is_never_complete(copies: dict[str, Path], tmp_path: Path) -> None:
    lines = VSTAR_LOG.read_text().splitlines()
    short = _copy_log(VSTAR_LOG, tmp_path / "short", lines[:5])
    result = _rescore(str(short), "--out", str(tmp_path / "o"), *_data(copies))
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "o" / "results.json").read_text())
    assert results["n"] == 5 and results["complete"] is False
    assert any("covers 5 of the benchmark's 12 samples" in note for note in results["notes"])
    # without the rows or lmms-eval's record, nothing says what the log should hold
    own = next(DEFAULT.parent.parent.glob("**/*_samples_cv_bench.jsonl"))
    alone = tmp_path / "alone" / own.name
    alone.parent.mkdir()
    shutil.copy(own, alone)
    unknown = _rescore(str(alone), "--out", str(tmp_path / "u"), *_data(copies))
    assert unknown.exit_code == 0, unknown.output  # (the rows are joined: their count is known)
    assert json.loads((tmp_path / "u" / "results.json").read_text())["n"] == 16
    empty = _copy_log(VSTAR_LOG, tmp_path / "empty", [])
    nothing = _rescore(str(empty), "--out", str(tmp_path / "e"), *_data(copies))
    assert nothing.exit_code == 1 and "is empty" in _flat(nothing.output)


def test_one_unreadable_log_is_named_and_the_others_are_scored(copies: dict[str, Path], tmp_path: Path) -> None:
    folder = tmp_path / "lmms-out" / "model"
    _copy_log(CV_BENCH_LOG, folder)
    _copy_log(VSTAR_LOG, folder, raw=VSTAR_LOG.read_bytes().replace(b"\n", b"\n\xff\xfe", 1))
    result = _rescore(str(tmp_path / "lmms-out"), "--out", str(tmp_path / "o"), *_data(copies))
    text = _flat(result.output)
    assert result.exit_code == 1  # one log was not scored
    assert "samples_vstar_bench.jsonl (vstar_bench)" in text and "jsonl: line 2: not UTF-8 text" in text
    assert "official score 37.50" in text  # the CV-Bench log beside it, scored
    assert (tmp_path / "o" / f"{CV_BENCH_LOG.name.split('_samples_')[0]}_cv_bench" / "results.json").is_file()


def _flat(output: str) -> str:
    return " ".join(output.split())
