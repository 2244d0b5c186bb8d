"""The streaming core of a run: every sample's solver coroutine driven through one backend
stream, each finished sample scored and handed back the moment it is done.

Requests flow at the backend's own pace (``backend.max_in_flight`` in flight, twice that queued
ahead, so the engine never waits for the runner); a response goes back to its sample's
coroutine at once, which either returns the sample's outcome or asks for its next request. A
killed run loses only the requests in flight: every finished sample has been handed to
``on_scored`` (which journals it) before the next response is read.

Scoring that waits on a judge model runs in a pool of ``bench.scoring_workers()`` threads, so
judged samples do not queue behind each other; the results are still handed over in the
runner's thread, one at a time.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sifeval.adapters import Benchmark
from sifeval.agent_stats import with_truth_coverage
from sifeval.solvers import OptionsRequest, Solved, Solver, Steps
from sifeval.types import Sample, ScoredSample
from sifmodel.backends import (
    Backend,
    GenerationError,
    GenerationRequest,
    GenerationResponse,
    GenerationSettings,
    TextScorer,
)
from sifmodel.backends.streaming import RequestFeed
from sifmodel.prompts import PromptMode

ScoredHandler = Callable[[ScoredSample, dict[str, Any]], None]
FAILURE_STREAK = 8  # the same request error this many times in a row stops the run


class RunAborted(RuntimeError):
    """A systematic failure (a refused key, the endpoint down for good, every request refused the
    same way): going on would only fail every remaining sample. Scored samples are kept."""


@dataclass
class _Entry:
    sample: Sample
    steps: Steps
    request: GenerationRequest | None = None  # the request it waits on


@dataclass
class Driver:
    """One pass over ``samples``: ``cached(sample)`` may answer a sample without the model
    (a :class:`Solved` or None); ``on_solved(sample, solved)`` sees every fresh answer (the
    response cache); ``on_scored(scored, usage)`` receives each scored sample. For a
    ``turn_cacheable`` solver (a multi-turn agent), ``cached_turn(request)`` may answer one
    request without the model and ``on_answered(request, response)`` sees every fresh one."""

    bench: Benchmark
    backend: Backend
    solver: Solver
    mode: PromptMode
    settings: GenerationSettings
    on_scored: ScoredHandler
    cached: Callable[[Sample], Solved | None] = lambda sample: None
    on_solved: Callable[[Sample, Solved], None] = lambda sample, solved: None
    cached_turn: Callable[[GenerationRequest], GenerationResponse | None] = lambda request: None
    on_answered: Callable[[GenerationRequest, GenerationResponse], None] = lambda request, response: None
    _feed: RequestFeed = field(default_factory=RequestFeed)
    _waiting: dict[str, _Entry] = field(default_factory=dict)
    _scoring: list[Future[ScoredSample]] = field(default_factory=list)
    _usage: dict[str, dict[str, Any]] = field(default_factory=dict)
    _pool: ThreadPoolExecutor | None = None
    _streak: list[str] = field(default_factory=list)

    def check(self) -> None:
        """Refuse a backend this solver cannot use (before anything is asked or written)."""
        if self.solver.needs_text_scoring and not isinstance(self.backend, TextScorer):
            raise ValueError(
                f"the {self.bench.name} {self.bench.protocol} protocol scores options by the model's likelihood: "
                f"it needs a backend that scores text (hf:...), not {self.backend.name}"
            )

    def run(self, samples: Iterable[Sample]) -> None:
        self.check()
        pending = iter(samples)
        lookahead = max(1, 2 * self.backend.max_in_flight)
        workers = self.bench.scoring_workers()
        if workers > 1:
            self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sif-score")
        try:
            exhausted = self._fill(pending, lookahead)
            if not self._waiting and exhausted:
                self._feed.close()
            for response in self.backend.stream(self._feed):
                entry = self._waiting.pop(response.id)
                if self.solver.turn_cacheable and entry.request is not None and response.ok:
                    self.on_answered(entry.request, response)
                self._advance(entry, response)
                self._hand_over(block=False)
                if not exhausted:
                    exhausted = self._fill(pending, lookahead)
                if exhausted and not self._waiting:
                    self._feed.close()
            self._hand_over(block=True)
        finally:
            self._feed.close()
            if self._pool is not None:
                self._pool.shutdown(wait=True)

    # ----------------------------------------------------------------- samples in

    def _fill(self, pending: Any, lookahead: int) -> bool:
        """Start samples until ``lookahead`` requests wait; True when no sample is left."""
        while len(self._waiting) < lookahead:
            sample = next(pending, None)
            if sample is None:
                return True
            hit = self.cached(sample)
            if hit is not None:
                self._finish(sample, hit, cached=True)
                continue
            try:
                steps = self.solver.steps(sample, self.mode, self.settings)
                need = next(steps)
            except StopIteration as stop:
                self._finish(sample, stop.value)
                continue
            except (OSError, ValueError) as error:  # its input cannot be read: this sample's error
                self._finish(sample, Solved(None, GenerationError("input", f"{type(error).__name__}: {error}")))
                continue
            self._dispatch(_Entry(sample, steps), need)
        return False

    def _dispatch(self, entry: _Entry, need: GenerationRequest | OptionsRequest) -> None:
        if isinstance(need, OptionsRequest):
            assert isinstance(self.backend, TextScorer)  # checked in run()
            try:
                losses = self.backend.option_losses(need.request, need.options)
            except Exception as error:  # a typed per-sample error; the run goes on
                self._finish(entry.sample, Solved(None, GenerationError("request", f"{type(error).__name__}: {error}")))
                return
            self._advance(entry, losses)
            return
        if self.solver.turn_cacheable:
            hit = self.cached_turn(need)
            if hit is not None:
                self._advance(entry, hit)
                return
        entry.request = need
        self._waiting[need.id] = entry
        self._feed.put(need)

    def _advance(self, entry: _Entry, answer: GenerationResponse | list[float]) -> None:
        try:
            need = entry.steps.send(answer)
        except StopIteration as stop:
            self._finish(entry.sample, stop.value, fresh=True)
            return
        except (OSError, ValueError) as error:
            self._finish(entry.sample, Solved(None, GenerationError("input", f"{type(error).__name__}: {error}")))
            return
        self._dispatch(entry, need)

    # ----------------------------------------------------------------- samples out

    def _finish(self, sample: Sample, solved: Solved, *, cached: bool = False, fresh: bool = False) -> None:
        usage = {**solved.usage, **({"cached": True} if cached else {})}
        if solved.transcript is not None:
            solved = dataclasses.replace(solved, transcript=with_truth_coverage(self.bench, sample, solved.transcript))
        if fresh and solved.error is None:
            self.on_solved(sample, solved)
        if solved.error is not None or solved.text is None:
            error = solved.error or GenerationError("request", "no response")
            self.on_scored(ScoredSample(sample, None, request_error=error, transcript=solved.transcript), usage)
            self._watch(error)
            return
        self._streak.clear()
        self._usage[sample.id] = usage
        if self._pool is None:
            self.on_scored(self._score(sample, solved), usage)
            return
        self._scoring.append(self._pool.submit(self._score, sample, solved))

    def _score(self, sample: Sample, solved: Solved) -> ScoredSample:
        scored = self.bench.score(sample, solved.text or "", self.mode)
        return scored if solved.transcript is None else dataclasses.replace(scored, transcript=solved.transcript)

    def _watch(self, error: GenerationError) -> None:
        """Stop at once on an error every request would get (``backend``: a refused key, an unknown
        model), and after ``FAILURE_STREAK`` identical errors in a row on any other."""
        if error.kind == "backend":
            raise RunAborted(error.message)
        kind = re.sub(r"\b(?:record|sample) \S+", "", str(error))[:160]
        self._streak.append(kind)
        if len(self._streak) >= FAILURE_STREAK and len(set(self._streak[-FAILURE_STREAK:])) == 1:
            raise RunAborted(f"the same error {FAILURE_STREAK} times in a row: {kind}")

    def _hand_over(self, *, block: bool) -> None:
        """Give ``on_scored`` the scorings that are done (all of them when ``block``)."""
        still = []
        for future in self._scoring:
            if block or future.done():
                scored = future.result()
                self.on_scored(scored, self._usage.pop(scored.sample.id, {}))
            else:
                still.append(future)
        self._scoring = still
