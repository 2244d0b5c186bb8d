"""The run folder: what a run, a re-score, a merge or an lmms-eval log re-scored writes, and what
the report, the viewer and the lmms-eval tasks read.

``run.json`` (what the run is: benchmark, protocol, mode, model, settings, data; written when its
work starts), ``samples.jsonl`` (one line per scored sample, appended as it is scored: the
sample without images, the response or the request error, the extracted answer, the score;
the last line of an id wins) and ``results.json`` (the official figures, strict JSON). This
module holds the file names, the line format, and the figures of a set of scored samples
(:func:`summarize`); running a benchmark is :mod:`sifeval.runner`.
"""

from __future__ import annotations

import json
import math
import subprocess
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from sifdata.files import atomic_write, exclusive_lock
from sifdata.journal import Journal
from sifeval.adapters import Benchmark
from sifeval.agent_stats import agent_statistics
from sifeval.intervals import intervals_json, min_detectable_difference
from sifeval.transcripts import CROPS, TURNS, Transcript
from sifeval.types import BenchmarkResult, Sample, ScoredSample
from sifmodel.backends import GenerationError, GenerationSettings
from sifmodel.prompts import PromptMode

SAMPLES = "samples.jsonl"
RESULTS = "results.json"
RUN = "run.json"
# What run.json says a run is: resuming or merging needs every one of them the same.
IDENTITY_KEYS = ("benchmark", "protocol", "options", "mode", "generation", "dataset", "model", "agent")


def holds_samples(out: str | Path) -> bool:
    """Whether ``out`` holds a run's answers (an empty journal is a start that failed: it blocks nothing)."""
    path = Path(out) / SAMPLES
    return path.is_file() and path.stat().st_size > 0


RUN_FILES = (RUN, SAMPLES, RESULTS, f"{SAMPLES}.before-rescore", f"{RESULTS}.before-rescore", TURNS)


def restart_run(out: str | Path) -> list[Path]:
    """Remove a run's own files from ``out`` (``run.json``, ``samples.jsonl``, ``results.json``,
    their pre-rescore copies, an agent's ``turns.jsonl`` and ``crops/``), holding its lock: the
    run starts over. Other files are left."""
    out = Path(out)
    removed = []
    with exclusive_lock(out, "sifeval run --restart"):
        for name in RUN_FILES:
            if (out / name).is_file():
                (out / name).unlink()
                removed.append(out / name)
        crops = out / CROPS
        if crops.is_dir():
            for path in crops.glob("*.png"):
                path.unlink()
            if not any(crops.iterdir()):
                crops.rmdir()
            removed.append(crops)
    return removed


def scored_to_json(item: ScoredSample, usage: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "id": item.sample.id,
        "sample": item.sample.to_json(),
        "response": item.response,
        "request_error": item.request_error.to_json() if item.request_error is not None else None,
        "extracted": item.extracted,
        "parse_ok": item.parse_ok,
        "score": item.score,
        "details": item.details,
        "judge_error": item.judge_error,
        **({"transcript": item.transcript.to_json()} if item.transcript is not None else {}),
        **(usage or {}),
    }


def scored_from_json(line: dict[str, Any]) -> ScoredSample:
    return ScoredSample(
        sample=Sample.from_json(line["sample"]),
        response=line.get("response"),
        extracted=line.get("extracted"),
        parse_ok=bool(line.get("parse_ok")),
        score=line.get("score"),
        request_error=GenerationError.from_json(line.get("request_error")),
        details=dict(line.get("details") or {}),
        judge_error=line.get("judge_error"),
        transcript=Transcript.from_json(line.get("transcript")),
    )


def latest_by_id(lines: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The last line per sample id (a retried sample's success replaces its earlier error)."""
    latest: dict[str, dict[str, Any]] = {}
    for line in lines:
        latest[line["id"]] = line
    return latest


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for package in ("sifthinker", "transformers", "torch", "datasets", "trl", "vllm", "openai"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            continue
    try:
        found["git"] = (
            subprocess.run(
                ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
            ).stdout.strip()
            or "unknown"
        )
    except (OSError, subprocess.SubprocessError):
        found["git"] = "unknown"
    return found


def compact_journal(path: Path) -> None:
    """Keep one line per sample (its latest) in a resumed run's journal: a retried sample's
    earlier error lines are dropped, atomically."""
    if not path.is_file():
        return
    with Journal(path) as journal:
        latest = latest_by_id(journal.entries)
        if len(latest) == len(journal.entries):
            return
    text = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in latest.values())
    atomic_write(path, text.encode("utf-8"))


def write_results(out: Path, result: BenchmarkResult) -> None:
    """``results.json`` in strict JSON (``null`` where a figure cannot be computed)."""
    text = json.dumps(result.to_json(), indent=2, allow_nan=False) + "\n"
    (out / RESULTS).write_text(text, encoding="utf-8")


def summarize(
    bench: Benchmark,
    scored: Sequence[ScoredSample],
    mode: PromptMode,
    data_dir: str | Path | None,
    model: dict[str, Any],
    settings: GenerationSettings | None,
    extra: dict[str, Any] | None = None,
    *,
    total: int | None = None,
    partial: str = "",
    ask_again: str = "Run again with --resume to ask them again.",
) -> BenchmarkResult:
    """The official figures of a run (``ask_again``: how to ask the unanswered samples again).

    ``score`` is the official aggregate over every sample, a sample without a response counted
    as the benchmark counts an unanswered question (:meth:`Benchmark.unanswered`: wrong);
    ``score_answered_only`` is the same formula over the answered samples, under its own name.
    A run with request errors or judge failures, or fewer samples than the benchmark has, is
    flagged incomplete with a note saying why.
    """
    n = len(scored)
    errors = [s for s in scored if s.request_error is not None]
    answered = [s for s in scored if s.request_error is None]
    judge_failures = [s for s in answered if s.judge_error is not None]
    parse_failures = sum(1 for s in answered if not s.parse_ok and s.judge_error is None)
    headline_set = [bench.unanswered(s.sample, s.request_error) if s.request_error else s for s in scored]
    metrics = dict(bench.aggregate(headline_set)) if scored else {"score": float("nan")}
    answered_metrics = bench.aggregate(answered) if answered else {"score": float("nan")}
    metrics["score_answered_only"] = answered_metrics["score"]
    # Intervals by the headline's own rules: a request error is a wrong answer in `score`, left
    # out of `score_answered_only`; a judge failure has no grade in either.
    figures = dict(bench.figure_terms(headline_set)) if scored else {}
    if answered and "score" in figures:
        figures["score_answered_only"] = bench.figure_terms(answered).get("score", [])
    notes: list[str] = []
    if errors:
        notes.append(
            f"{len(errors)} of {n} samples have no response (request errors): `score` counts them as wrong, as the "
            f"official scripts count a question without an answer; `score_answered_only` leaves them out. {ask_again}"
        )
    if judge_failures:
        notes.append(
            f"{len(judge_failures)} answers could not be graded by the judge: they are left out of the judged "
            "figures (neither a request error nor a 0); `sifeval rescore RUN` grades them again."
        )
    if total is not None and n < total:
        how = f" ({partial})" if partial else ""
        notes.append(f"this run covers {n} of the benchmark's {total} samples{how}: not a full-benchmark figure")
    missing = sorted(key for key, value in metrics.items() if isinstance(value, float) and math.isnan(value))
    if missing:
        notes.append(
            f"cannot be computed from this run (null): {', '.join(missing)} (a category, pair or subset of "
            "the official formula has no sample here)"
        )
    conflicts = sum(1 for s in answered if "conflicting_option" in s.details)
    if conflicts:
        notes.append(
            f"{conflicts} replies state one option's letter and another option's text: scored by the letter, "
            "the protocol's rule (the viewer's 'conflict' filter lists them)"
        )
    referred = [s for s in answered if "choice_judge" in s.details]
    judge_model = bench.options().get("choice_judge")
    if judge_model:
        verdicts = [s.details["choice_judge"] for s in referred]
        mapped = sum(1 for v in verdicts if v not in ("none", "failed"))
        notes.append(
            f"choice judge {judge_model}: {len(referred)} replies the rules could not map were sent to it "
            f"({mapped} mapped to an option, {verdicts.count('none')} to none, {verdicts.count('failed')} failed); "
            "the official protocol has no judge, so these figures are not the official protocol's"
        )
    intervals = intervals_json(figures, metrics)
    complete = not errors and not judge_failures and (total is None or n >= total)
    return BenchmarkResult(
        benchmark=bench.name,
        metrics=metrics,
        n=n,
        n_scored=len(answered),
        parse_failure_rate=parse_failures / len(answered) if answered else float("nan"),
        request_error_rate=len(errors) / n if n else float("nan"),
        protocol=bench.protocol,
        mode=mode,
        dataset=bench.dataset_info(data_dir),
        model=model,
        generation=asdict(settings) if settings else {},
        versions=_versions(),
        complete=complete,
        notes=notes + list((extra or {}).get("notes", [])),
        request_errors=len(errors),
        judge_failures=len(judge_failures),
        parse_failures=parse_failures,
        protocol_options=bench.options(),
        conflicting_replies=conflicts,
        choice_judge_calls=len(referred),
        intervals=intervals,
        power=_power(intervals.get("score")),
        agent=_agent(scored, (extra or {}).get("agent")),
    )


def _agent(scored: Sequence[ScoredSample], settings: dict[str, Any] | None) -> dict[str, Any]:
    found = agent_statistics(scored)
    if not found and settings is None:
        return {}
    return {"settings": settings, **found}


def _power(score: dict[str, Any] | None) -> dict[str, Any]:
    if not score or score.get("stderr") is None:
        return {}
    return {
        "min_detectable_difference": min_detectable_difference(score["stderr"]),
        "power": 0.8,
        "alpha": 0.05,
        "assumes": "a paired comparison with a model as variable as this one, errors uncorrelated",
    }


def read_run(run_dir: str | Path) -> tuple[dict[str, Any], list[ScoredSample]]:
    """A run's results.json and its scored samples (the last line per id)."""
    run_dir = Path(run_dir)
    results = json.loads((run_dir / RESULTS).read_text(encoding="utf-8")) if (run_dir / RESULTS).is_file() else {}
    with Journal(run_dir / SAMPLES) as journal:
        lines = latest_by_id(journal.entries)
    return results, [scored_from_json(line) for line in lines.values()]


def differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    return [key for key in IDENTITY_KEYS if saved.get(key) != current.get(key)]
