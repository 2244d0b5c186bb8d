"""Scoring again without the model: a run's saved responses, or the parts of shard runs
(lmms-eval sample logs: :mod:`sifeval.lmms_logs`)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sifdata.files import exclusive_lock
from sifeval.adapters import Benchmark
from sifeval.rundir import (
    RUN,
    SAMPLES,
    differences,
    read_run,
    scored_to_json,
    summarize,
    write_results,
)
from sifeval.transcripts import CROPS
from sifeval.types import BenchmarkResult, ScoredSample


def rescore_run(bench: Benchmark, run_dir: str | Path, out: str | Path | None = None) -> BenchmarkResult:
    """Re-score every saved response of ``run_dir`` with ``bench``'s current scoring; request
    errors stay errors. Writes ``samples.jsonl`` and ``results.json`` into ``out`` (default: in
    place, the old files kept as ``*.before-rescore``). Holds the lock of ``run_dir`` and of
    ``out`` meanwhile: a run still writing there is not read half-way nor overwritten."""
    with contextlib.ExitStack() as locks:
        for folder in dict.fromkeys([Path(run_dir), *([Path(out)] if out else [])]):
            locks.enter_context(exclusive_lock(folder, "sifeval rescore"))
        return _rescore_run(bench, Path(run_dir), out)


def _merge_crops(runs: Sequence[str | Path], out: Path) -> None:
    """A zoom agent's crops, each once, from every shard into the merged run (its transcripts
    name them)."""
    for run in runs:
        for crop in sorted((Path(run) / CROPS).glob("*.png")):
            target = out / CROPS / crop.name
            if not target.is_file():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(crop, target)


def _rescore_run(bench: Benchmark, run_dir: Path, out: str | Path | None) -> BenchmarkResult:
    previous, scored = read_run(run_dir)
    mode = previous.get("mode", "sif")
    answered = [s for s in scored if s.response is not None and s.request_error is None]
    rescored = bench.score_many([s.sample for s in answered], [s.response or "" for s in answered], mode)
    transcripts = {s.sample.id: s.transcript for s in answered}
    by_id = {s.sample.id: dataclasses.replace(s, transcript=transcripts[s.sample.id]) for s in rescored}
    final = [by_id.get(s.sample.id, s) for s in scored]
    target = Path(out) if out else run_dir
    target.mkdir(parents=True, exist_ok=True)
    if target == run_dir:
        for name in (SAMPLES, "results.json"):
            if (run_dir / name).is_file():
                (run_dir / name).replace(run_dir / f"{name}.before-rescore")
    (target / SAMPLES).write_text("".join(json.dumps(scored_to_json(s)) + "\n" for s in final), encoding="utf-8")
    result = summarize(
        bench,
        final,
        mode,
        previous.get("dataset", {}).get("local_path"),
        previous.get("model", {}),
        None,
        {"notes": ["re-scored from saved responses"], "agent": (previous.get("agent") or {}).get("settings")},
    )
    result.generation = previous.get("generation", {})
    if target != run_dir and (run_dir / RUN).is_file():
        (target / RUN).write_text((run_dir / RUN).read_text(encoding="utf-8"), encoding="utf-8")
    write_results(target, result)
    return result


def merge_runs(bench: Benchmark, runs: list[str | Path], out: str | Path) -> BenchmarkResult:
    """Combine the runs of ``--shard i/n`` jobs into one run (each sample once).

    Only parts of one run combine: the same benchmark, protocol, mode, generation settings,
    dataset and model (their ``run.json``); anything else is refused, naming what differs. Holds
    the lock of every part and of ``out``: a part still being written is not merged half-done.
    """
    with contextlib.ExitStack() as locks:
        for folder in dict.fromkeys([*(Path(run) for run in runs), Path(out)]):
            locks.enter_context(exclusive_lock(folder, "sifeval merge"))
        return _merge_runs(bench, runs, Path(out))


def _merge_runs(bench: Benchmark, runs: list[str | Path], out: Path) -> BenchmarkResult:
    identities = []
    for run in runs:
        path = Path(run) / RUN
        if not path.is_file():
            raise ValueError(f"{run} has no {RUN}: it was not written by `sifeval run`, so what it ran is unknown")
        identities.append(json.loads(path.read_text(encoding="utf-8")))
    for run, identity in zip(runs[1:], identities[1:], strict=True):
        changed = differences(identities[0], identity)
        if changed:
            raise ValueError(f"{run} differs from {runs[0]} in {', '.join(changed)}: these are not parts of one run")
    if identities[0].get("benchmark") != bench.name:
        raise ValueError(f"{runs[0]} is a {identities[0].get('benchmark')} run, not {bench.name}")
    out.mkdir(parents=True, exist_ok=True)
    merged: dict[str, ScoredSample] = {}
    first: dict[str, Any] = {}
    for run in runs:
        results, scored = read_run(run)
        first = first or results
        for item in scored:
            if item.sample.id in merged and merged[item.sample.id].request_error is None:
                continue
            merged[item.sample.id] = item
    final = list(merged.values())
    _merge_crops(runs, out)
    (out / SAMPLES).write_text("".join(json.dumps(scored_to_json(s)) + "\n" for s in final), encoding="utf-8")
    (out / RUN).write_text(json.dumps(identities[0], indent=2) + "\n", encoding="utf-8")
    result = summarize(
        bench,
        final,
        first.get("mode", "sif"),
        first.get("dataset", {}).get("local_path"),
        first.get("model", {}),
        None,
        {"notes": [f"merged from {len(runs)} shard runs"], "agent": identities[0].get("agent")},
        total=identities[0].get("samples_total"),
    )
    result.generation = first.get("generation", {})
    write_results(out, result)
    return result
