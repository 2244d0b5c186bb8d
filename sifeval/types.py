"""Typed pieces of an evaluation: samples, scored samples, results, and where data comes from."""

from __future__ import annotations

import hashlib
import io
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image


@dataclass(frozen=True)
class ImageRef:
    """An image by file path or encoded bytes, decoded only when a request is built."""

    path: str | None = None
    data: bytes | None = field(default=None, repr=False)

    def load(self) -> Image.Image:
        if self.data is not None:
            return Image.open(io.BytesIO(self.data))
        if self.path is None:
            raise ValueError("an ImageRef needs a path or bytes")
        with Image.open(self.path) as image:
            image.load()
            return image

    def digest(self) -> str:
        payload = self.data if self.data is not None else Path(self.path or "").read_bytes()
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

    ``score`` is None when there is no response (a request error): such samples are counted as
    request errors, never as wrong answers. A response whose answer could not be extracted has
    ``parse_ok`` False and scores as wrong, and is counted as a parse failure.
    """

    sample: Sample
    response: str | None
    extracted: str | None = None
    parse_ok: bool = False
    score: float | None = None
    request_error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def answered(self) -> bool:
        return self.request_error is None and self.response is not None


@dataclass
class BenchmarkResult:
    benchmark: str
    metrics: dict[str, float]
    n: int
    n_scored: int
    parse_failure_rate: float
    request_error_rate: float
    protocol: str
    mode: str
    dataset: dict[str, Any]
    model: dict[str, Any]
    generation: dict[str, Any]
    versions: dict[str, str]
    complete: bool
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
