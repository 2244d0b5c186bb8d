"""Typed pieces of an evaluation: samples, scored samples, results, and where data comes from."""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from sifdata.files import OutsideRoot, confined_path
from sifdata.images import open_image, read_image_bytes
from sifeval.transcripts import Transcript
from sifmodel.backends.base import GenerationError
from sifmodel.prompts import PromptMode


@dataclass(frozen=True)
class ImageRef:
    """An image by file path or encoded bytes, decoded only when a request is built.

    ``refused`` says why a path named by a data file is not read (it leaves the benchmark's
    folder): loading it is that sample's error, never a read outside the folder.
    """

    path: str | None = None
    data: bytes | None = field(default=None, repr=False)
    refused: str | None = None

    @classmethod
    def inside(cls, root: str | Path, relative: str) -> ImageRef:
        """The image ``relative`` names under ``root``, or a refused reference if it leaves it."""
        try:
            return cls(path=str(confined_path(root, relative)))
        except OutsideRoot as error:
            return cls(refused=str(error))

    def load(self) -> Image.Image:
        """The decoded image (:func:`sifdata.images.open_image`: a regular file within the size and
        pixel budget, fully decodable); ``ValueError`` or ``OSError`` naming it otherwise."""
        if self.refused is not None:
            raise ValueError(f"image refused: {self.refused}")
        if self.data is not None:
            return open_image(self.data)
        if self.path is None:
            raise ValueError("an ImageRef needs a path or bytes")
        return open_image(self.path)

    def header(self) -> Image.Image:
        """The image with only its header read (size, mode), checked as :meth:`load` checks it."""
        if self.refused is not None:
            raise ValueError(f"image refused: {self.refused}")
        return open_image(self.data if self.data is not None else Path(self.path or ""), decode=False)

    def digest(self) -> str:
        if self.refused is not None:
            raise ValueError(f"image refused: {self.refused}")
        payload = self.data if self.data is not None else read_image_bytes(self.path or "")
        return hashlib.sha256(payload).hexdigest()[:16]


@dataclass(frozen=True)
class Source:
    """Where a benchmark's data lives upstream, and under which terms."""

    hub_id: str
    split: str
    license: str
    config: str | None = None
    revision: str | None = None
    gated: bool = False
    homepage: str | None = None


@dataclass(frozen=True)
class Sample:
    """One question as asked (after protocol expansion: a rotation, one pass, ...).

    ``question`` is the benchmark's own prompt (its instruction included) for ``plain`` mode;
    ``sif_question`` is the question with its options and without the answer-format line, for
    the SIF prompt. ``target`` is an option letter or the reference answer.
    """

    id: str
    question: str
    target: str
    category: str
    images: tuple[ImageRef, ...] = ()
    choices: tuple[str, ...] = ()
    sif_question: str | None = None
    depth_image: ImageRef | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Everything needed to re-score without the images."""
        data = asdict(self)
        data.pop("images")
        data.pop("depth_image")
        data["choices"] = list(self.choices)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Sample:
        return cls(
            id=data["id"],
            question=data["question"],
            target=data["target"],
            category=data["category"],
            choices=tuple(data.get("choices") or ()),
            sif_question=data.get("sif_question"),
            metadata=dict(data.get("metadata") or {}),
        )


@dataclass
class ScoredSample:
    """A sample with the model's response and its score.

    Three ways a sample can lack a plain verdict, each counted on its own and never mistaken
    for another:

    - ``request_error``: no response (the request failed). Unanswered: the headline counts it
      as wrong (as the official scripts would a question without an answer), the run is flagged
      incomplete, and ``--resume`` asks it again.
    - ``parse_ok`` False: a response whose answer could not be read. Wrong, and counted as a
      parse failure; never replaced by anything.
    - ``judge_error``: answered, but the judge model failed to grade it. Neither a request
      error nor a 0: counted apart, left out of the judged figures with a note, and graded again
      by ``sifeval rescore``.
    """

    sample: Sample
    response: str | None
    extracted: str | None = None
    parse_ok: bool = False
    score: float | None = None
    request_error: GenerationError | None = None
    details: dict[str, Any] = field(default_factory=dict)
    judge_error: str | None = None
    transcript: Transcript | None = None  # an agent's turns (sifeval.transcripts); None for one reply

    @property
    def answered(self) -> bool:
        return self.request_error is None and self.response is not None


@dataclass
class BenchmarkResult:
    """A run's figures. ``metrics["score"]`` is the official headline over every sample of the
    run, request errors counted as unanswered; ``metrics["score_answered_only"]`` the same
    formula over the answered samples alone, under its own name. NaN means "cannot be computed
    from this run" (a missing category, a pair whose partner is missing) and is written as
    ``null``; ``notes`` say why. ``conflicting_replies``: answered samples whose option letter
    and option text disagree (scored by the letter); ``choice_judge_calls``: replies sent to the
    opt-in choice judge (none when it is off)."""

    benchmark: str
    metrics: dict[str, float]
    n: int
    n_scored: int
    parse_failure_rate: float
    request_error_rate: float
    protocol: str
    mode: PromptMode
    dataset: dict[str, Any]
    model: dict[str, Any]
    generation: dict[str, Any]
    versions: dict[str, str]
    complete: bool
    notes: list[str] = field(default_factory=list)
    request_errors: int = 0
    judge_failures: int = 0
    parse_failures: int = 0
    protocol_options: dict[str, Any] = field(default_factory=dict)
    conflicting_replies: int = 0
    choice_judge_calls: int = 0
    # Each metric's standard error and 95% interval, by the sampled unit (sifeval.intervals);
    # None where a figure has none.
    intervals: dict[str, Any] = field(default_factory=dict)
    # The smallest difference of the headline a comparison with another model could detect
    # (80% power, paired; sifeval.intervals.min_detectable_difference), with what it assumes.
    power: dict[str, Any] = field(default_factory=dict)
    # A zoom agent's settings and what it did (sifeval.agent_stats); {} for a run of single replies.
    agent: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Strict JSON: NaN and infinities become ``null`` (``json.dumps(..., allow_nan=False)`` holds)."""
        return strict_json(asdict(self))


def strict_json(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None, recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: strict_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [strict_json(item) for item in value]
    return value


def number(value: Any) -> float:
    """A metric read back from JSON: ``null`` is NaN again."""
    return float("nan") if value is None else float(value)
