"""Running a benchmark: requests streamed through the backend (:mod:`sifeval.driver`), every
scored sample written the moment it is scored, resumable, cached, shardable; then the results by
the official formula.

Run folder: ``samples.jsonl`` (one line per sample, appended as it is scored: the sample
without images, the response or the request error, the extracted answer, the score) and
``results.json``. ``resume=True`` keeps every answered sample and asks again only for the
unanswered and the failed; a killed run loses at most the line being written.
"""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from sifdata.files import DiskCache, atomic_write, exclusive_lock
from sifdata.hub import sif_home
from sifdata.journal import Journal
from sifdata.progress import progress_bar
from sifdata.secrets import redact
from sifeval.adapters import Benchmark
from sifeval.driver import Driver, RunAborted
from sifeval.solvers import Solved
from sifeval.types import BenchmarkResult, Sample, ScoredSample
from sifmodel.backends import Backend, GenerationSettings

SAMPLES = "samples.jsonl"
RESULTS = "results.json"


def request_key(model: str, sample: Sample, mode: str, settings: GenerationSettings) -> str:
    """The response-cache key: the model's identity fingerprint (its weights, not its name: a
    model retrained into the same folder is another model), the prompt mode and text, the
    images, the settings.

    Built from the sample, before any image is decoded, so that a cached rerun decodes nothing.
    """
    text = sample.question if mode == "plain" else (sample.sif_question or sample.question)
    digests = [ref.digest() for ref in sample.images]
    depth = sample.depth_image.digest() if sample.depth_image is not None and mode == "sif" else None
    payload = json.dumps([model, mode, text, digests, depth, asdict(settings)], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


class ResponseCache:
    """Responses by (model, request), under ``$SIF_HOME/response-cache``; only successes are kept."""

    def __init__(self, folder: Path | None = None) -> None:
        self._store = DiskCache(folder or sif_home() / "response-cache", suffix=".json")

    def get(self, key: str) -> dict[str, Any] | None:
        """A cached response, or None (absent, or damaged: then removed with a warning)."""
        value = self._store.get_json(key)
        if value is None:
            return None
        if not isinstance(value, dict) or not isinstance(value.get("text"), str):
            self._store.discard(key, "not a cached response")
            return None
        return value

    def put(self, key: str, value: dict[str, Any]) -> None:
        self._store.put(key, json.dumps(value))


RUN = "run.json"
IDENTITY_KEYS = ("benchmark", "protocol", "options", "mode", "generation", "dataset", "model")


def run_identity(
    bench: Benchmark,
    mode: str,
    settings: GenerationSettings | None,
    data_dir: str | Path | None,
    model: dict[str, Any],
) -> dict[str, Any]:
    """What makes two runs the same run: only such runs may be resumed into or merged together."""
    return {
        "benchmark": bench.name,
        "protocol": bench.protocol,
        "options": bench.options(),
        "mode": mode,
        "generation": asdict(settings) if settings else None,
        "dataset": dataset_fingerprint(bench, data_dir),
        "model": model.get("fingerprint"),
    }


def dataset_fingerprint(bench: Benchmark, data_dir: str | Path | None) -> str:
    """The Hub id and revision, or a local folder's files (names and sizes: cheap, and a copy of
    the same folder elsewhere is the same dataset)."""
    info = bench.dataset_info(None)
    files: list[tuple[str, int]] = []
    if data_dir is not None:
        root = Path(data_dir)
        files = sorted((str(p.relative_to(root)), p.stat().st_size) for p in root.rglob("*") if p.is_file())
    payload = json.dumps([info.get("hub_id"), info.get("config"), info.get("revision"), files])
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    return [key for key in IDENTITY_KEYS if saved.get(key) != current.get(key)]


def check_same_run(out: Path, identity: dict[str, Any]) -> None:
    """Refuse to resume a run of another model, protocol, mode, settings or dataset."""
    saved_path = out / RUN
    if not saved_path.is_file() or not holds_samples(out):  # nothing answered yet: nothing to mix
        return
    saved = json.loads(saved_path.read_text(encoding="utf-8"))
    changed = differences(saved, identity)
    if changed:
        raise ValueError(
            f"{out} holds a run with another {', '.join(changed)}: resuming would mix two runs. "
            "Use another --out, the same model, protocol, mode, settings and data to resume, or --restart to "
            "start this folder's run over (its samples are deleted)."
        )


def holds_samples(out: str | Path) -> bool:
    """Whether ``out`` holds a run's answers (an empty journal is a start that failed: it blocks nothing)."""
    path = Path(out) / SAMPLES
    return path.is_file() and path.stat().st_size > 0


RUN_FILES = (RUN, SAMPLES, RESULTS, f"{SAMPLES}.before-rescore", f"{RESULTS}.before-rescore")


def restart_run(out: str | Path) -> list[Path]:
    """Remove a run's own files from ``out`` (``run.json``, ``samples.jsonl``, ``results.json`` and
    their pre-rescore copies), holding its lock: the run starts over. Other files are left."""
    out = Path(out)
    removed = []
    with exclusive_lock(out, "sifeval run --restart"):
        for name in RUN_FILES:
            if (out / name).is_file():
                (out / name).unlink()
                removed.append(out / name)
    return removed


def shard_samples(samples: list[Sample], shard: tuple[int, int] | None) -> list[Sample]:
    if shard is None:
        return samples
    index, count = shard
    return samples[index::count]


def scored_to_json(item: ScoredSample, usage: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "id": item.sample.id,
        "sample": item.sample.to_json(),
        "response": item.response,
        "request_error": item.request_error,
        "extracted": item.extracted,
        "parse_ok": item.parse_ok,
        "score": item.score,
        "details": item.details,
        "judge_error": item.judge_error,
        **(usage or {}),
    }


def scored_from_json(line: dict[str, Any]) -> ScoredSample:
    return ScoredSample(
        sample=Sample.from_json(line["sample"]),
        response=line.get("response"),
        extracted=line.get("extracted"),
        parse_ok=bool(line.get("parse_ok")),
        score=line.get("score"),
        request_error=line.get("request_error"),
        details=dict(line.get("details") or {}),
        judge_error=line.get("judge_error"),
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


def load_samples(bench: Benchmark, data_dir: str | Path | None) -> list[Sample]:
    """The benchmark's samples; a Hub that cannot be reached is a clear error saying what to do."""
    if data_dir is not None:
        if not Path(data_dir).is_dir():
            raise FileNotFoundError(f"--data {data_dir}: no such folder")
        try:
            return bench.load(data_dir)
        except Exception as error:  # any reader's error on a folder of another layout: say which was expected
            raise ValueError(
                f"{data_dir} is not in {bench.title}'s layout ({bench.layout}): {type(error).__name__}: {error}"
            ) from None
    try:
        return bench.load(None)
    except (ConnectionError, OSError) as error:
        gated = " It is gated: accept its licence on the Hub and set HF_TOKEN." if bench.source.gated else ""
        raise FileNotFoundError(
            f"{bench.title} could not be loaded from the Hub ({bench.source.hub_id}): {type(error).__name__}. "
            f"Pass --data DIR with a local copy in the upstream layout, or run online.{gated}"
        ) from error


def run(
    bench: Benchmark,
    backend: Backend,
    model: str,
    out: str | Path,
    *,
    data_dir: str | Path | None = None,
    mode: str = "sif",
    settings: GenerationSettings | None = None,
    limit: int | None = None,
    shard: tuple[int, int] | None = None,
    resume: bool = False,
    cache: ResponseCache | None = None,
    progress: bool = True,
    extra_info: dict[str, Any] | None = None,
    samples: list[Sample] | None = None,
) -> BenchmarkResult:
    """Evaluate ``backend`` on ``bench``; writes ``out/run.json`` (what this run is),
    ``out/samples.jsonl`` (each sample the moment it is scored) and ``out/results.json``.

    One writer per run folder: the run holds ``out``'s lock (:func:`sifdata.files.exclusive_lock`)
    from its first check to its results, so a second ``run``, ``--resume``, ``rescore`` or
    ``merge`` on it is refused (:class:`~sifdata.files.FolderBusy`) instead of asking every
    sample twice and losing lines when one of them compacts the journal. ``samples``: the
    benchmark's samples when already loaded (:func:`load_samples`), else loaded here."""
    with exclusive_lock(out, "sifeval run"):
        return _run(
            bench,
            backend,
            model,
            Path(out),
            data_dir=data_dir,
            mode=mode,
            settings=settings,
            limit=limit,
            shard=shard,
            resume=resume,
            cache=cache,
            progress=progress,
            extra_info=extra_info,
            samples=samples,
        )


def _run(
    bench: Benchmark,
    backend: Backend,
    model: str,
    out: Path,
    *,
    data_dir: str | Path | None,
    mode: str,
    settings: GenerationSettings | None,
    limit: int | None,
    shard: tuple[int, int] | None,
    resume: bool,
    cache: ResponseCache | None,
    progress: bool,
    extra_info: dict[str, Any] | None,
    samples: list[Sample] | None,
) -> BenchmarkResult:
    settings = settings or GenerationSettings()
    solver = bench.solver()
    asked_mode, mode = mode, solver.prompt_mode or mode
    if holds_samples(out) and not resume:
        raise FileExistsError(
            f"{out / SAMPLES} holds a run: pass --resume to continue it, --restart to start it over (its samples "
            "are deleted), or choose another --out"
        )
    identity = backend.identity()
    info = {"spec": redact(model), "backend": backend.name, **identity}  # a key in the spec is never written
    this_run = run_identity(bench, mode, settings, data_dir, info)
    check_same_run(out, this_run)
    samples = load_samples(bench, data_dir) if samples is None else samples
    total = len(samples)
    if limit is not None:
        samples = samples[:limit]
    # What the shards of this run cover together (merge checks it), beside the identity.
    this_run["samples_total"] = len(samples)
    # Where the data was (not part of the identity): the viewer loads the images from there again.
    this_run["data_dir"] = str(Path(data_dir).resolve()) if data_dir is not None else None
    samples = shard_samples(samples, shard)
    out.mkdir(parents=True, exist_ok=True)
    driver_check = Driver(bench, backend, solver, mode, settings, lambda item, usage: None)
    driver_check.check()  # a backend the protocol cannot use is refused before anything is written
    if not (out / RUN).is_file() or not holds_samples(out):
        (out / RUN).write_text(json.dumps(this_run, indent=2) + "\n", encoding="utf-8")
    fingerprint = identity["fingerprint"]
    use_cache = cache if cache is not None and solver.cacheable else None

    def cached(sample: Sample) -> Solved | None:
        if use_cache is None:
            return None
        try:
            key = request_key(fingerprint, sample, mode, settings)
        except (OSError, ValueError):  # an unreadable image: the request will say so, for this sample
            return None
        hit = use_cache.get(key)
        return Solved(hit["text"], usage=hit.get("usage", {})) if hit is not None else None

    def remember(sample: Sample, solved: Solved) -> None:
        if use_cache is not None and solved.text is not None:
            use_cache.put(
                request_key(fingerprint, sample, mode, settings), {"text": solved.text, "usage": solved.usage}
            )

    stopped = ""
    with Journal(out / SAMPLES) as journal:
        done = {line["id"] for line in latest_by_id(journal.entries).values() if line.get("request_error") is None}
        pending = [sample for sample in samples if sample.id not in done]
        errors = 0
        with progress_bar(f"{bench.name} ({mode})", len(samples), enabled=progress, fields={"errors": 0}) as advance:
            advance(len(samples) - len(pending))

            def journal_scored(item: ScoredSample, usage: dict[str, Any]) -> None:
                nonlocal errors
                journal.append(scored_to_json(item, usage))
                errors += item.request_error is not None
                advance(1, errors=errors)

            try:
                Driver(bench, backend, solver, mode, settings, journal_scored, cached, remember).run(pending)
            except RunAborted as error:
                stopped = str(error)
        latest = latest_by_id(journal.entries)
    if resume:
        compact_journal(out / SAMPLES)
    wanted = {sample.id for sample in samples}
    scored = [scored_from_json(line) for key, line in latest.items() if key in wanted]
    notes = list((extra_info or {}).get("notes", []))
    if asked_mode != mode:
        notes.append(f"the {bench.protocol} protocol writes its own prompts: it ran in mode {mode}, not {asked_mode}")
    partial = f"--limit {limit}" if limit is not None else ""
    if shard is not None:
        partial += f"{' and ' if partial else ''}--shard {shard[0]}/{shard[1]}"
    if stopped:
        notes.insert(0, f"the run stopped early: {stopped}. Scored samples are kept; fix the cause, then --resume")
    result = summarize(bench, scored, mode, data_dir, info, settings, {"notes": notes}, total=total, partial=partial)
    write_results(out, result)
    if stopped:
        raise RunAborted(stopped)
    return result


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
    mode: str,
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
    )


def read_run(run_dir: str | Path) -> tuple[dict[str, Any], list[ScoredSample]]:
    """A run's results.json and its scored samples (the last line per id)."""
    run_dir = Path(run_dir)
    results = json.loads((run_dir / RESULTS).read_text(encoding="utf-8")) if (run_dir / RESULTS).is_file() else {}
    with Journal(run_dir / SAMPLES) as journal:
        lines = latest_by_id(journal.entries)
    return results, [scored_from_json(line) for line in lines.values()]
