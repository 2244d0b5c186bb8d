"""The one benchmark adapter interface, its registry, and the shared answer extraction.

An adapter declares its source, loads samples (expanded by its protocol) from the Hub or a
local folder in the upstream layout, turns a sample into a generation request in ``plain``
or ``sif`` mode, scores a response, and aggregates by the official formula (the headline
under ``"score"``, on a 0-100 scale, plus per-category keys).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from sifdata.answers import LETTERS, answer_part, read_option
from sifdata.chain import parse_chain
from sifdata.geometry import Box
from sifdata.plugins import Registry, subclass_of
from sifeval.choice_judge import ChoiceItem, ChoiceJudge
from sifeval.intervals import Term
from sifeval.published import published
from sifeval.solvers import Generate, Solver
from sifeval.types import Sample, ScoredSample, Source
from sifmodel.backends import GenerationError, GenerationRequest, GenerationSettings
from sifmodel.prompts import PromptMode

FocusBox = tuple[Box, float | None]  # a box of a focus step and its stated depth

ANSWER_WITH_LETTER = "Answer with the option's letter from the given choices directly."


# ----------------------------------------------------------------------------- extraction


def answer_text(response: str, mode: PromptMode | None = None) -> str | None:
    """The part of a response that is its answer (:func:`sifdata.answers.answer_part`: the last
    ``<answer>``, else after ``</think>``, else ``\\boxed{}``, else the whole reply), the same in
    every prompt mode (``mode`` is accepted for benchmarks written against the older signature);
    None when there is none: a parse failure, never replaced by anything."""
    return answer_part(response)


def options_block(choices: Sequence[str]) -> str:
    return "\n".join(f"({LETTERS[i]}) {choice}" for i, choice in enumerate(choices))


# ----------------------------------------------------------------------------- the interface


class Benchmark(ABC):
    """A benchmark: where its data lives, its protocols, and for the protocol in use its solver
    (how a sample is asked: :meth:`solver`), its scorer (:meth:`score`) and its official
    aggregate (:meth:`aggregate`), as inspect_ai's Task is dataset + solver + scorer.

    A benchmark is one module: this class, registered under the ``sifeval.benchmarks`` entry
    point group (``name = "module:Class"``; the five built-ins register the same way in
    sifthinker's ``pyproject.toml``), with its mirror builder beside it (:meth:`build_mirror`).

    ``categories`` lists the categories an official headline averages over (CV-Bench's sources,
    SpatialBench's five categories, VisCoT's eleven subsets); a run that lacks one of them gets
    NaN for it and for the headline, with a note, never an average of what is there.
    """

    name: ClassVar[str]
    title: ClassVar[str]
    source: ClassVar[Source]
    protocols: ClassVar[tuple[str, ...]]
    default_protocol: ClassVar[str]
    categories: ClassVar[tuple[str, ...]] = ()
    lmms_eval_protocol: ClassVar[str | None] = None  # the protocol lmms-eval's task of it asks
    provides_depth: ClassVar[bool] = False  # True: every sample brings its depth map (no estimation)
    layout: ClassVar[str] = "its upstream layout"  # what --data must hold, said when it does not

    def __init__(self, protocol: str | None = None) -> None:
        self.protocol = protocol or self.default_protocol
        if self.protocol not in self.protocols:
            raise ValueError(
                f"{self.name}: unknown protocol {self.protocol!r}; choose one of {', '.join(self.protocols)}"
            )

    def solver(self) -> Solver:
        """How this protocol asks a sample: one request built by :meth:`request` by default."""
        return Generate(self.request)

    def options(self) -> dict[str, Any]:
        """Settings beyond the protocol that change scores (a judge, a box frame): recorded with
        the run, and part of what makes two runs the same run."""
        return {}

    def mode_for(self, mode: PromptMode) -> PromptMode:
        """The prompt mode this protocol really runs in when ``mode`` is asked for."""
        return self.solver().prompt_mode or mode

    def figure_terms(self, scored: Sequence[ScoredSample]) -> dict[str, list[Term]]:
        """Each metric of :meth:`aggregate` as a weighted sum of group means, its values clustered
        by the unit that was sampled (:mod:`sifeval.intervals`): what its interval is computed
        from. None given (the default): the figures carry no interval, never a made-up one."""
        return {}

    def unanswered(self, sample: Sample, error: GenerationError) -> ScoredSample:
        """How a sample without a response counts in the headline: as a wrong answer."""
        return ScoredSample(sample, None, None, False, 0.0, request_error=error)

    def scoring_workers(self) -> int:
        """Threads that may score at once (more than 1 where scoring waits on a judge model)."""
        return 1

    def score_many(
        self, samples: Sequence[Sample], responses: Sequence[str], mode: PromptMode = "sif"
    ) -> list[ScoredSample]:
        """Score several responses (a benchmark with a judge model judges them concurrently)."""
        return [self.score(sample, text, mode) for sample, text in zip(samples, responses, strict=True)]

    @classmethod
    def build_mirror(cls, out: str | Path, seed: int = 0) -> Path:
        """Write a tiny copy of the benchmark in its upstream layout (synthetic, known answers)."""
        raise NotImplementedError(f"{cls.name} has no embedded mirror")

    def samples_from_lmms_eval(self, doc: dict[str, Any], doc_id: int) -> list[Sample]:
        """Our sample(s) for an lmms-eval task's ``doc`` (the upstream row), to re-score its logs."""
        raise ValueError(f"re-scoring lmms-eval logs is not supported for {self.name}")

    @abstractmethod
    def load(self, data_dir: str | Path | None = None) -> list[Sample]:
        """Samples, expanded by the protocol, from ``data_dir`` (upstream layout) or the Hub."""

    def request(self, sample: Sample, mode: PromptMode, settings: GenerationSettings) -> GenerationRequest:
        images = tuple(ref.load() for ref in sample.images)
        if mode == "plain":
            return GenerationRequest(sample.id, sample.question, images, mode="plain", settings=settings)
        depth = sample.depth_image.load() if sample.depth_image is not None and mode == "sif" else None
        question = sample.sif_question or sample.question
        return GenerationRequest(sample.id, question, images, depth_image=depth, mode=mode, settings=settings)

    @abstractmethod
    def score(self, sample: Sample, response_text: str, mode: PromptMode = "sif") -> ScoredSample:
        """Score one response (``mode`` says where the answer is: in ``<answer>`` or the reply)."""

    @abstractmethod
    def aggregate(self, scored: Sequence[ScoredSample]) -> dict[str, float]:
        """The official metric under ``score`` (0-100) and per-category figures."""

    # ----------------------------------------------------------------- reading a run again

    @classmethod
    def from_options(cls, protocol: str | None, options: Mapping[str, Any]) -> Benchmark:
        """The benchmark as a run recorded it (its protocol and :meth:`options`), to read that
        run's responses again the way it read them (the viewer); a judge is not restored."""
        return cls(protocol)

    def truth_boxes(self, sample: Sample, width: int, height: int) -> list[Box]:
        """The sample's ground-truth boxes, per-axis normalized in the image's frame, where the
        benchmark has them (none by default)."""
        return []

    def focus_steps(self, sample: Sample, response: str, width: int, height: int) -> list[list[FocusBox]]:
        """The focus steps a response wrote, each a list of (box per-axis normalized in the
        image frame, stated depth), read as the benchmark reads boxes (pixel values by the image
        size); none for a response with no readable ``<area>``."""
        chain = parse_chain(response, strict=False, width=width, height=height)
        return [list(zip(step.boxes, step.depths, strict=True)) for step in chain.focus_steps]

    def reference_results(self) -> list[dict[str, Any]]:
        """Published numbers for this benchmark, each with its source and protocol note."""
        return list(published().get(self.name, {}).get("rows", []))

    def dataset_info(self, data_dir: str | Path | None) -> dict[str, Any]:
        return {
            "hub_id": self.source.hub_id,
            "split": self.source.split,
            "config": self.source.config,
            "revision": self.source.revision,
            "license": self.source.license,
            "local_path": str(data_dir) if data_dir else None,
        }


class MultipleChoiceBenchmark(Benchmark):
    """Scoring shared by option-letter benchmarks: the answer part of the reply
    (:func:`answer_text`) is read for an option (:func:`sifdata.answers.read_option`: its letter,
    else the whole text of one option, else the one option whose distinguishing words it states);
    the option must be the target letter. A reply committing to none is a parse failure and
    scores 0. A reply whose letter names one option and whose words another is scored by its
    letter and counted (``details["conflicting_option"]``, ``conflicting_replies`` in the results).

    ``choice_judge`` (opt-in, :mod:`sifeval.choice_judge`): the replies the rules cannot map go
    to a judge model, which maps them to an option or to none; a judge failure is a judge
    failure, never a 0.
    """

    choice_judge: ChoiceJudge | None = None
    #: The choice judge a saved run used, when it is read again without one (merge, the viewer).
    recorded_choice_judge: str | None = None

    def options(self) -> dict[str, Any]:
        """The choice judge, when one is set (a run with one is not the official protocol)."""
        model = self.choice_judge.model if self.choice_judge is not None else self.recorded_choice_judge
        return {"choice_judge": model} if model else {}

    @classmethod
    def from_options(cls, protocol: str | None, options: Mapping[str, Any]) -> Benchmark:
        bench = cls(protocol)
        bench.recorded_choice_judge = options.get("choice_judge")
        return bench

    def scoring_workers(self) -> int:
        return self.choice_judge.concurrency if self.choice_judge is not None else 1

    def score(self, sample: Sample, response_text: str, mode: PromptMode = "sif") -> ScoredSample:
        return self.score_many([sample], [response_text], mode)[0]

    def score_many(
        self, samples: Sequence[Sample], responses: Sequence[str], mode: PromptMode = "sif"
    ) -> list[ScoredSample]:
        """The rules on every reply; then, with a choice judge, the judge on those they cannot map."""
        scored = [self.score_by_rules(sample, text) for sample, text in zip(samples, responses, strict=True)]
        if self.choice_judge is None:
            return scored
        unmapped = [item for item in scored if not self.mapped(item) and answer_text(item.response or "")]
        items = [
            ChoiceItem(_question_of(item.sample), item.sample.choices, answer_text(item.response or "") or "")
            for item in unmapped
        ]
        for item, verdict in zip(unmapped, self.choice_judge.map_many(items), strict=True):
            item.details["choice_judge"] = "failed" if verdict.error is not None else (verdict.option or "none")
            if verdict.error is not None:
                item.score, item.judge_error = None, verdict.error
            elif verdict.option is not None:
                item.extracted, item.score = self.option_verdict(item.sample, verdict.option)
                item.parse_ok = True
                item.details["read_by"] = "choice judge"
        return scored

    def score_by_rules(self, sample: Sample, response_text: str) -> ScoredSample:
        """The protocol's rules alone: the option letter read from the answer part."""
        reading = read_option(answer_text(response_text), sample.choices)
        details: dict[str, Any] = {"read_by": reading.how}
        if reading.conflicting:
            details["conflicting_option"] = reading.by_text
        return ScoredSample(
            sample,
            response_text,
            extracted=reading.option,
            parse_ok=reading.option is not None,
            score=float(reading.option == sample.target),
            details=details,
        )

    def mapped(self, item: ScoredSample) -> bool:
        """Whether the rules mapped a scored reply onto an option (else the choice judge may)."""
        return item.extracted is not None

    def option_verdict(self, sample: Sample, letter: str) -> tuple[str, float]:
        """What is recorded as extracted, and the score, when the judge maps a reply to ``letter``."""
        return letter, float(letter == sample.target)


def _question_of(sample: Sample) -> str:
    """The question without its options and instructions where the sample keeps it, for the judge."""
    return str(sample.metadata.get("question_core") or sample.metadata.get("raw_question") or sample.question)


def accuracy(scored: Sequence[ScoredSample]) -> float:
    """Mean score (0-100) of the graded samples (a judge failure has no grade); NaN for none."""
    graded = [s.score for s in scored if s.score is not None]
    return 100.0 * sum(graded) / len(graded) if graded else float("nan")


def accuracy_term(
    scored: Sequence[ScoredSample],
    cluster: Callable[[Sample], Hashable] = lambda sample: sample.id,
    weight: float = 1.0,
) -> list[Term]:
    """:func:`accuracy` as a term of a figure (graded samples, 0-100), clustered by ``cluster``;
    [] for none (the figure has no interval)."""
    graded = [s for s in scored if s.score is not None]
    if not graded:
        return []
    return [Term(weight, [100.0 * (s.score or 0.0) for s in graded], [cluster(s.sample) for s in graded])]


def mean_of_groups(groups: Mapping[str, list[Term]], expected: Sequence[str], weight: float = 1.0) -> list[Term]:
    """The terms of the unweighted mean over ``expected`` groups (:func:`mean_over`); [] when a
    group has no term (the figure is NaN, and so has no interval)."""
    if any(not groups.get(name) for name in expected):
        return []
    return [
        Term(weight * term.weight / len(expected), term.values, term.clusters)
        for name in expected
        for term in groups[name]
    ]


def by(scored: Sequence[ScoredSample], key: Callable[[ScoredSample], str]) -> dict[str, list[ScoredSample]]:
    groups: dict[str, list[ScoredSample]] = {}
    for item in scored:
        groups.setdefault(key(item), []).append(item)
    return groups


def mean_over(values: dict[str, float], expected: Sequence[str]) -> float:
    """The unweighted mean over ``expected`` keys: NaN when any is missing or NaN (never the mean
    of what happens to be there)."""
    present = [values.get(key, float("nan")) for key in expected]
    if not present or any(math.isnan(value) for value in present):
        return float("nan")
    return sum(present) / len(present)


# ----------------------------------------------------------------------------- the registry

ENTRY_POINT_GROUP = "sifeval.benchmarks"


BENCHMARKS: Registry[type[Benchmark]] = Registry(
    group=ENTRY_POINT_GROUP, noun="benchmark", accepts=subclass_of(Benchmark), expected="a sifeval Benchmark class"
)


def benchmark_class(name: str) -> type[Benchmark]:
    """The class registered as ``name`` (loaded from its entry point)."""
    cls = BENCHMARKS.load(name)
    if cls.name != name:
        raise ValueError(f"entry point {name!r} names a benchmark called {cls.name!r}")
    return cls


def get_benchmark(name: str, protocol: str | None = None) -> Benchmark:
    """The benchmark registered as ``name`` (``cvbench``, ``vstar``, ``sat``, ``spatialbench``,
    ``viscot``, or any a package registers under ``sifeval.benchmarks``), set to ``protocol``."""
    return benchmark_class(name)(protocol)


def list_benchmarks() -> list[type[Benchmark]]:
    return [benchmark_class(name) for name in BENCHMARKS.names()]


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
