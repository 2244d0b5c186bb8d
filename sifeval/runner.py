"""Running a benchmark: requests streamed through the backend (:mod:`sifeval.driver`), every
scored sample written the moment it is scored, resumable, cached, shardable; then the results by
the official formula.

The run folder's files and line format are :mod:`sifeval.rundir`. ``resume=True`` keeps every
answered sample and asks again only for the unanswered and the failed; a killed run loses at
most the line being written.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from sifdata.files import DiskCache, exclusive_lock
from sifdata.hub import sif_home
from sifdata.journal import Journal
from sifdata.progress import progress_bar
from sifdata.secrets import redact
from sifeval.adapters import Benchmark, load_samples
from sifeval.agents import ZoomSettings, agent_solver
from sifeval.driver import Driver, RunAborted
from sifeval.rundir import (  # noqa: F401 - the run folder's names, importable from here as before
    IDENTITY_KEYS,
    RESULTS,
    RUN,
    RUN_FILES,
    SAMPLES,
    compact_journal,
    differences,
    holds_samples,
    latest_by_id,
    read_run,
    restart_run,
    scored_from_json,
    scored_to_json,
    summarize,
    write_results,
)
from sifeval.solvers import Solved, Solver
from sifeval.transcripts import TranscriptStore, image_key
from sifeval.types import BenchmarkResult, Sample, ScoredSample
from sifmodel.backends import Backend, GenerationRequest, GenerationResponse, GenerationSettings
from sifmodel.prompts import PromptMode
from sifmodel.turns import ToolCall


def request_key(model: str, sample: Sample, mode: PromptMode, settings: GenerationSettings) -> str:
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


def turn_key(model: str, request: GenerationRequest) -> str:
    """The cache key of one turn of a multi-turn agent: everything it sends (the model's
    identity, mode, system prompt, tools, settings, the first turn's text and images, and every
    later turn's role, text, images and tool calls), images by their pixels."""
    later = [
        [
            turn.role,
            turn.text,
            [image_key(image) for image in turn.images],
            [call.to_json() for call in turn.tool_calls],
            turn.tool_call_id,
        ]
        for turn in request.history
    ]
    depth = image_key(request.depth_image) if request.depth_image is not None else None
    payload = [
        model,
        request.mode,
        request.system,
        list(request.tools),
        asdict(request.settings),
        request.question,
        [image_key(image) for image in request.images],
        depth,
        later,
    ]
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def run_mode(bench: Benchmark, mode: PromptMode, agent: ZoomSettings | None = None) -> PromptMode:
    """The prompt mode a run really uses when ``mode`` is asked for: an agent's own (it writes
    its prompts), else the protocol's (:meth:`Benchmark.mode_for`). The CLI asks the same."""
    return "plain" if agent is not None else bench.mode_for(mode)


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

    def get_turn(self, key: str) -> GenerationResponse | None:
        hit = self.get(key)
        if hit is None:
            return None
        calls = tuple(ToolCall.from_json(call) for call in hit.get("tool_calls") or [])
        usage = hit.get("usage") or {}
        return GenerationResponse(
            "", hit["text"], None, usage.get("prompt_tokens"), usage.get("completion_tokens"), 0.0, calls
        )

    def put_turn(self, key: str, response: GenerationResponse) -> None:
        usage = {"prompt_tokens": response.prompt_tokens, "completion_tokens": response.completion_tokens}
        calls = [call.to_json() for call in response.tool_calls]
        self.put(key, {"text": response.text, "tool_calls": calls, "usage": usage})


def run_identity(
    bench: Benchmark,
    mode: PromptMode,
    settings: GenerationSettings | None,
    data_dir: str | Path | None,
    model: dict[str, Any],
    agent: ZoomSettings | None = None,
) -> dict[str, Any]:
    """What makes two runs the same run: only such runs may be resumed into or merged together."""
    return {
        "agent": agent.to_json() if agent is not None else None,
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


def shard_samples(samples: list[Sample], shard: tuple[int, int] | None) -> list[Sample]:
    if shard is None:
        return samples
    index, count = shard
    return samples[index::count]


def run(
    bench: Benchmark,
    backend: Backend,
    model: str,
    out: str | Path,
    *,
    data_dir: str | Path | None = None,
    mode: PromptMode = "sif",
    settings: GenerationSettings | None = None,
    limit: int | None = None,
    shard: tuple[int, int] | None = None,
    resume: bool = False,
    cache: ResponseCache | None = None,
    progress: bool = True,
    extra_info: dict[str, Any] | None = None,
    samples: list[Sample] | None = None,
    agent: ZoomSettings | None = None,
) -> BenchmarkResult:
    """Evaluate ``backend`` on ``bench``; writes ``out/run.json`` (what this run is),
    ``out/samples.jsonl`` (each sample the moment it is scored) and ``out/results.json``.

    One writer per run folder: the run holds ``out``'s lock (:func:`sifdata.files.exclusive_lock`)
    from its first check to its results, so a second ``run``, ``--resume``, ``rescore`` or
    ``merge`` on it is refused (:class:`~sifdata.files.FolderBusy`) instead of asking every
    sample twice and losing lines when one of them compacts the journal. ``samples``: the
    benchmark's samples when already loaded (:func:`load_samples`), else loaded here. ``agent``:
    run a zoom agent (:mod:`sifeval.agents`) over the benchmark's own first request; its turns
    and crops are kept in ``out`` (:mod:`sifeval.transcripts`)."""
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
            agent=agent,
        )


def _run(
    bench: Benchmark,
    backend: Backend,
    model: str,
    out: Path,
    *,
    data_dir: str | Path | None,
    mode: PromptMode,
    settings: GenerationSettings | None,
    limit: int | None,
    shard: tuple[int, int] | None,
    resume: bool,
    cache: ResponseCache | None,
    progress: bool,
    extra_info: dict[str, Any] | None,
    samples: list[Sample] | None,
    agent: ZoomSettings | None,
) -> BenchmarkResult:
    settings = settings or GenerationSettings()
    store = TranscriptStore(out) if agent is not None else None
    solver: Solver = agent_solver(bench, agent, store, backend) if agent is not None else bench.solver()
    asked_mode, mode = mode, run_mode(bench, mode, agent)  # the one rule, which the CLI asks too
    if holds_samples(out) and not resume:
        raise FileExistsError(
            f"{out / SAMPLES} holds a run: pass --resume to continue it, --restart to start it over (its samples "
            "are deleted), or choose another --out"
        )
    identity = backend.identity()
    info = {"spec": redact(model), "backend": backend.name, **identity}  # a key in the spec is never written
    this_run = run_identity(bench, mode, settings, data_dir, info, agent)
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

    def cached_turn(request: GenerationRequest) -> GenerationResponse | None:
        if cache is None:
            return None
        hit = cache.get_turn(turn_key(fingerprint, request))
        return dataclasses.replace(hit, id=request.id) if hit is not None else None

    def remember_turn(request: GenerationRequest, response: GenerationResponse) -> None:
        if cache is not None:
            cache.put_turn(turn_key(fingerprint, request), response)

    stopped = ""
    with contextlib.ExitStack() as stack:
        journal = stack.enter_context(Journal(out / SAMPLES))
        if store is not None:
            stack.enter_context(store)
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

            driver = Driver(
                bench, backend, solver, mode, settings, journal_scored, cached, remember, cached_turn, remember_turn
            )
            try:
                driver.run(pending)
            except RunAborted as error:
                stopped = str(error)
        latest = latest_by_id(journal.entries)
    if resume:
        compact_journal(out / SAMPLES)
    wanted = {sample.id for sample in samples}
    scored = [scored_from_json(line) for key, line in latest.items() if key in wanted]
    notes = list((extra_info or {}).get("notes", []))
    resumed = store.resume_summary() if store is not None else None
    if resumed:
        notes.append(f"--resume: {resumed}")
        if progress:
            print(f"--resume: {resumed}", file=sys.stderr)
    if asked_mode != mode:
        writer = "the zoom agent" if agent is not None else f"the {bench.protocol} protocol"
        notes.append(f"{writer} writes its own prompts: it ran in mode {mode}, not {asked_mode}")
    partial = f"--limit {limit}" if limit is not None else ""
    if shard is not None:
        partial += f"{' and ' if partial else ''}--shard {shard[0]}/{shard[1]}"
    if stopped:
        notes.insert(0, f"the run stopped early: {stopped}. Scored samples are kept; fix the cause, then --resume")
    extra = {"notes": notes, "agent": agent.to_json() if agent is not None else None}
    result = summarize(bench, scored, mode, data_dir, info, settings, extra, total=total, partial=partial)
    write_results(out, result)
    if stopped:
        raise RunAborted(stopped)
    return result
