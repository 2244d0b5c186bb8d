"""Running a benchmark: requests in batches, every scored sample written as it comes, resumable,
cached, shardable; then the results by the official formula.

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

from sifdata.files import DiskCache
from sifdata.hub import sif_home
from sifdata.journal import Journal
from sifdata.progress import progress_bar
from sifeval.adapters import Benchmark
from sifeval.types import BenchmarkResult, Sample, ScoredSample
from sifmodel.backends import Backend, GenerationSettings

SAMPLES = "samples.jsonl"
RESULTS = "results.json"


def request_key(model: str, sample: Sample, mode: str, settings: GenerationSettings) -> str:
    """The response-cache key: the model, the prompt mode and text, the images, the settings.

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
        text = self._store.get(key)
        return json.loads(text) if text is not None else None

    def put(self, key: str, value: dict[str, Any]) -> None:
        self._store.put(key, json.dumps(value))


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
    )


def latest_by_id(lines: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The last line per sample id (a retried sample's success replaces its earlier error)."""
    latest: dict[str, dict[str, Any]] = {}
    for line in lines:
        latest[line["id"]] = line
    return latest


def score_many(bench: Benchmark, samples: Sequence[Sample], texts: Sequence[str], mode: str) -> list[ScoredSample]:
    batch_scorer = getattr(bench, "score_many", None)
    if batch_scorer is not None:
        return list(batch_scorer(samples, texts, mode))
    return [bench.score(sample, text, mode) for sample, text in zip(samples, texts, strict=True)]


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
        return bench.load(data_dir)
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
    batch_size: int = 16,
    progress: bool = True,
    extra_info: dict[str, Any] | None = None,
) -> BenchmarkResult:
    """Evaluate ``backend`` on ``bench``; writes ``out/samples.jsonl`` and ``out/results.json``."""
    out = Path(out)
    settings = settings or GenerationSettings()
    if (out / SAMPLES).is_file() and not resume:
        raise FileExistsError(f"{out / SAMPLES} exists: pass --resume to continue that run, or choose another --out")
    samples = load_samples(bench, data_dir)
    if limit is not None:
        samples = samples[:limit]
    samples = shard_samples(samples, shard)
    with Journal(out / SAMPLES) as journal:
        done = {line["id"] for line in latest_by_id(journal.entries).values() if line.get("request_error") is None}
        pending = [sample for sample in samples if sample.id not in done]
        with progress_bar(f"{bench.name} ({mode})", len(samples), enabled=progress) as advance:
            advance(len(samples) - len(pending))
            likelihood = bench.protocol == "likelihood"
            for start in range(0, len(pending), batch_size):
                batch = pending[start : start + batch_size]
                if likelihood:
                    new_lines = _likelihood_batch(bench, backend, batch, settings)
                elif bench.protocol == "two-pass":
                    new_lines = _two_pass_batch(bench, backend, batch, settings)
                else:
                    new_lines = _run_batch(bench, backend, model, batch, mode, settings, cache)
                for line in new_lines:
                    journal.append(line)
                advance(len(batch))
        latest = latest_by_id(journal.entries)
    wanted = {sample.id for sample in samples}
    scored = [scored_from_json(line) for key, line in latest.items() if key in wanted]
    info = {"spec": model, "backend": getattr(backend, "name", type(backend).__name__)}
    result = summarize(bench, scored, mode, data_dir, info, settings, extra_info)
    (out / RESULTS).write_text(json.dumps(result.to_json(), indent=2, allow_nan=True) + "\n", encoding="utf-8")
    return result


def _likelihood_batch(bench: Any, backend: Backend, batch: list[Sample], settings: GenerationSettings) -> list[dict]:
    """The likelihood protocol: each option scored by the model; no text is generated."""
    scorer = getattr(backend, "option_losses", None)
    if scorer is None:
        raise ValueError(f"the {bench.name} likelihood protocol needs a backend that scores text (hf:...)")
    lines = []
    for sample in batch:
        request, options = bench.likelihood_request(sample, settings)
        try:
            item = bench.score_losses(sample, scorer(request, options))
        except Exception as error:  # typed per-sample error, the run goes on
            item = ScoredSample(sample, None, request_error=f"request: {type(error).__name__}: {error}")
        lines.append(scored_to_json(item))
    return lines


def _two_pass_batch(bench: Any, backend: Backend, batch: list[Sample], settings: GenerationSettings) -> list[dict]:
    """Box first, then the answer with a crop around that box (the original VisCoT protocol)."""
    from sifeval.viscot import parse_padded_box

    first = backend.generate([bench.first_pass(sample, settings) for sample in batch])
    ready = [i for i, response in enumerate(first) if response.ok]
    second = backend.generate(
        [bench.second_pass(batch[i], parse_padded_box(first[i].text or ""), settings) for i in ready]
    )
    answered = [i for i, response in zip(ready, second, strict=True) if response.ok]
    texts = {i: response.text or "" for i, response in zip(ready, second, strict=True) if response.ok}
    scored = bench.score_two_pass(
        [batch[i] for i in answered], [first[i].text or "" for i in answered], [texts[i] for i in answered]
    )
    by_index = dict(zip(answered, scored, strict=True))
    failures = {i: first[i].error for i in range(len(batch)) if not first[i].ok}
    failures.update({i: r.error for i, r in zip(ready, second, strict=True) if not r.ok})
    lines = []
    for index, sample in enumerate(batch):
        item = by_index.get(index)
        if item is None:
            error = failures[index]
            item = ScoredSample(sample, None, request_error=f"{error.kind}: {error.message}" if error else "request")
        lines.append(scored_to_json(item))
    return lines


def _run_batch(
    bench: Benchmark,
    backend: Backend,
    model: str,
    batch: list[Sample],
    mode: str,
    settings: GenerationSettings,
    cache: ResponseCache | None,
) -> list[dict[str, Any]]:
    keys = [request_key(model, sample, mode, settings) for sample in batch] if cache is not None else []
    cached = {i: hit for i, key in enumerate(keys) if cache is not None and (hit := cache.get(key)) is not None}
    asked = [i for i in range(len(batch)) if i not in cached]
    requests = [bench.request(batch[i], mode, settings) for i in asked]  # type: ignore[arg-type]
    responses = dict(zip(asked, backend.generate(requests), strict=True)) if asked else {}
    texts: dict[int, str] = {}
    usage: dict[int, dict[str, Any]] = {}
    errors: dict[int, str] = {}
    for index in range(len(batch)):
        if index in cached:
            texts[index] = cached[index]["text"]
            usage[index] = {**cached[index].get("usage", {}), "cached": True}
            continue
        response = responses[index]
        if response.ok:
            texts[index] = response.text or ""
            usage[index] = {
                "prompt_tokens": response.prompt_tokens,
                "completion_tokens": response.completion_tokens,
                "latency_s": response.latency_s,
            }
            if cache is not None:
                cache.put(keys[index], {"text": texts[index], "usage": usage[index]})
        else:
            assert response.error is not None
            errors[index] = f"{response.error.kind}: {response.error.message}"
    answered = sorted(texts)
    scored = dict(
        zip(answered, score_many(bench, [batch[i] for i in answered], [texts[i] for i in answered], mode), strict=True)
    )
    lines = []
    for index, sample in enumerate(batch):
        item = scored.get(index) or ScoredSample(sample, None, request_error=errors[index])
        lines.append(scored_to_json(item, usage.get(index)))
    return lines


def summarize(
    bench: Benchmark,
    scored: Sequence[ScoredSample],
    mode: str,
    data_dir: str | Path | None,
    model: dict[str, Any],
    settings: GenerationSettings | None,
    extra: dict[str, Any] | None = None,
) -> BenchmarkResult:
    n = len(scored)
    errors = sum(1 for s in scored if s.request_error is not None)
    answered = [s for s in scored if s.request_error is None]
    parse_failures = sum(1 for s in answered if not s.parse_ok)
    metrics = bench.aggregate(answered) if answered else {"score": float("nan")}
    notes = []
    if errors:
        notes.append(f"{errors} request error(s): metrics cover the answered samples only; rerun with --resume")
    if any(isinstance(v, float) and math.isnan(v) for v in metrics.values()):
        notes.append("some metrics are NaN: their samples are missing from this run (--limit, --shard, errors)")
    return BenchmarkResult(
        benchmark=bench.name,
        metrics=metrics,
        n=n,
        n_scored=len(answered),
        parse_failure_rate=parse_failures / len(answered) if answered else float("nan"),
        request_error_rate=errors / n if n else float("nan"),
        protocol=bench.protocol,
        mode=mode,
        dataset=bench.dataset_info(data_dir),
        model=model,
        generation=asdict(settings) if settings else {},
        versions=_versions(),
        complete=errors == 0,
        notes=notes + list((extra or {}).get("notes", [])),
    )


def read_run(run_dir: str | Path) -> tuple[dict[str, Any], list[ScoredSample]]:
    """A run's results.json and its scored samples (the last line per id)."""
    run_dir = Path(run_dir)
    results = json.loads((run_dir / RESULTS).read_text(encoding="utf-8")) if (run_dir / RESULTS).is_file() else {}
    with Journal(run_dir / SAMPLES) as journal:
        lines = latest_by_id(journal.entries)
    return results, [scored_from_json(line) for line in lines.values()]
