"""How a benchmark's samples become responses: its solver (inspect_ai's Task is dataset +
solver + scorer; so is a sifeval benchmark).

A solver turns one sample into a coroutine (:meth:`Solver.steps`) that yields what it needs
from the model, a :class:`~sifmodel.backends.GenerationRequest` to generate or an
:class:`OptionsRequest` to score, receives the answer, and returns a :class:`Solved`: the one
response text the benchmark's scorer reads (and ``sifeval rescore`` reads again). The runner
drives every sample's coroutine through one streaming backend at once, so a two-pass sample's
second request is sent the moment its first is answered, while other samples are in flight;
it never knows which solver it runs.

Three solvers cover the five benchmarks: :class:`Generate` (one request; CV-Bench, SAT,
SpatialBench, V* generation, VisCoT one-pass), :class:`TwoPass` (VisCoT's own protocol) and
:class:`Likelihood` (V*'s original protocol). A protocol's dataset expansion, such as SAT's
circular copies, happens where the samples are made (each copy is a sample, asked, cached,
resumed and re-scored like any other).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sifeval.transcripts import Transcript
from sifeval.types import Sample
from sifmodel.backends import GenerationError, GenerationRequest, GenerationResponse, GenerationSettings
from sifmodel.prompts import PromptMode


@dataclass(frozen=True)
class OptionsRequest:
    """Score each of ``options`` as the reply to ``request`` (a likelihood protocol)."""

    request: GenerationRequest
    options: tuple[str, ...]


@dataclass(frozen=True)
class Solved:
    """A sample's outcome: the response text to score, or why there is none; an agent's
    transcript (every turn, even when a request failed midway)."""

    text: str | None
    error: GenerationError | None = None
    usage: dict[str, Any] = field(default_factory=dict)
    transcript: Transcript | None = None


Need = GenerationRequest | OptionsRequest
Answer = GenerationResponse | list[float]
Steps = Generator[Need, Answer, Solved]


def usage_of(response: GenerationResponse) -> dict[str, Any]:
    return {
        "prompt_tokens": response.prompt_tokens,
        "completion_tokens": response.completion_tokens,
        "latency_s": response.latency_s,
    }


def _response(answer: Answer) -> GenerationResponse:
    if not isinstance(answer, GenerationResponse):
        raise TypeError(f"a generation step was answered with {type(answer).__name__}")
    return answer


def failure(response: GenerationResponse) -> Solved:
    return Solved(None, response.error or GenerationError("request", "no text"))


class Solver(ABC):
    """``prompt_mode`` is the mode a solver that writes its own prompts runs in (None: the mode
    the run asks for); ``cacheable`` solvers' responses are cached by sample and settings."""

    name: str
    prompt_mode: PromptMode | None = None
    cacheable: bool = False
    turn_cacheable: bool = False
    needs_text_scoring: bool = False

    @abstractmethod
    def steps(self, sample: Sample, mode: PromptMode, settings: GenerationSettings) -> Steps:
        """The coroutine of one sample (see the module docstring)."""


class Generate(Solver):
    """One request per sample, its reply the response."""

    name = "generate"
    cacheable = True

    def __init__(self, build: Callable[[Sample, PromptMode, GenerationSettings], GenerationRequest]) -> None:
        self.build = build

    def steps(self, sample: Sample, mode: PromptMode, settings: GenerationSettings) -> Steps:
        response = _response((yield self.build(sample, mode, settings)))
        if not response.ok:
            return failure(response)
        return Solved(response.text or "", usage=usage_of(response))


class TwoPass(Solver):
    """Two requests per sample, the second built from the first's reply; the response is JSON
    holding both replies (``{"first_pass": ..., "answer": ...}``), which the scorer reads."""

    name = "two-pass"
    prompt_mode = "plain"

    def __init__(
        self,
        first: Callable[[Sample, GenerationSettings], GenerationRequest],
        second: Callable[[Sample, str, GenerationSettings], GenerationRequest],
    ) -> None:
        self.first = first
        self.second = second

    def steps(self, sample: Sample, mode: PromptMode, settings: GenerationSettings) -> Steps:
        first = _response((yield self.first(sample, settings)))
        if not first.ok:
            return failure(first)
        second = _response((yield self.second(sample, first.text or "", settings)))
        if not second.ok:
            return failure(second)
        usage = {key: value for key, value in usage_of(second).items()}
        usage["first_pass_completion_tokens"] = first.completion_tokens
        return Solved(json.dumps({"first_pass": first.text or "", "answer": second.text or ""}), usage=usage)


class Likelihood(Solver):
    """The options scored as replies, no text generated; the response is JSON of their losses
    (``{"option_losses": [...]}``, at full precision). Needs a backend that scores text."""

    name = "likelihood"
    prompt_mode = "plain"
    needs_text_scoring = True

    def __init__(self, build: Callable[[Sample, GenerationSettings], tuple[GenerationRequest, Sequence[str]]]) -> None:
        self.build = build

    def steps(self, sample: Sample, mode: PromptMode, settings: GenerationSettings) -> Steps:
        request, options = self.build(sample, settings)
        losses = yield OptionsRequest(request, tuple(options))
        if not isinstance(losses, list):
            raise TypeError(f"an options step was answered with {type(losses).__name__}")
        # Full precision (JSON floats round-trip exactly): rounded losses tie where the model's do
        # not, and the re-score of a run must give every verdict the run gave.
        return Solved(json.dumps({"option_losses": [float(value) for value in losses]}))
