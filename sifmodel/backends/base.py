"""The one small interface every inference backend has: ``generate(requests) -> responses``.

A response carries text or a typed error, never an error string posing as an answer, with
token counts and latency. Requests name their prompt mode; a request in mode ``sif`` without
a depth image gets one from sifdata's depth estimator (:class:`DepthProvider`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

from PIL import Image

from sifdata.depth import DEFAULT_DEPTH_MODEL, DepthEstimator, depth_to_image
from sifmodel.prompts import Prompt, PromptMode, build_messages
from sifmodel.turns import ToolCall, Turn


@dataclass(frozen=True)
class GenerationSettings:
    max_new_tokens: int = 2048
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    seed: int | None = None

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0


@dataclass(frozen=True)
class GenerationRequest:
    id: str
    question: str
    images: tuple[Image.Image, ...]
    depth_image: Image.Image | None = field(default=None, compare=False)
    mode: PromptMode = "sif"
    settings: GenerationSettings = GenerationSettings()
    system: str | None = None
    history: tuple[Turn, ...] = ()  # the turns after the first user turn (a multi-turn agent)
    tools: tuple[dict[str, Any], ...] = ()  # OpenAI tool declarations, for servers that call tools


@dataclass(frozen=True)
class GenerationError:
    """Why a request has no reply, typed from the backend to the run folder: ``kind`` is
    ``request`` (this request failed), ``backend`` (the backend is unusable: every request would
    fail), ``timeout``, ``input`` (the sample's input could not be read), or a producer's own
    (``lmms-eval``); ``message`` the reason. In ``samples.jsonl`` it is ``{"kind", "message"}``."""

    kind: str
    message: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind, "message": self.message}

    @classmethod
    def from_json(cls, value: Any) -> GenerationError | None:
        """From ``{"kind", "message"}``; ``"kind: message"`` as run folders before typed failures
        wrote it (a text without a kind is a ``request`` failure); None stays None."""
        if value is None:
            return None
        if isinstance(value, dict):
            return cls(str(value.get("kind", "request")), str(value.get("message", "")))
        kind, sep, message = str(value).partition(": ")
        if sep and kind and " " not in kind:
            return cls(kind, message)
        return cls("request", str(value))


@dataclass(frozen=True)
class GenerationResponse:
    id: str
    text: str | None
    error: GenerationError | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_s: float | None = None
    tool_calls: tuple[ToolCall, ...] = ()  # a server's API tool calls (the reply's text may hold others)

    @property
    def ok(self) -> bool:
        return self.error is None and self.text is not None


class Backend(Protocol):
    """An inference engine. ``generate`` answers a list in order; ``stream`` answers an iterable
    (or a growing :class:`~sifmodel.backends.streaming.RequestFeed`) in the order requests finish,
    keeping ``max_in_flight`` of them busy."""

    name: str
    max_in_flight: int

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResponse]: ...

    def stream(self, requests: Iterable[GenerationRequest]) -> Iterator[GenerationResponse]: ...

    def identity(self) -> dict[str, Any]:
        """What the model *is*, not what it was called: a dict with a ``fingerprint`` that
        changes when the weights do (see :func:`model_identity`). Response caches and resumed
        runs are keyed by it."""
        ...


class BackendFactory(Protocol):
    """What a ``sifmodel.backends`` entry point names: a class that builds its backend from a
    model spec's parts (``KIND:TARGET?options``)."""

    spec_target: ClassVar[str]  # how TARGET reads, for help and errors: "PATH_OR_ID", "MODEL@BASE_URL"

    @classmethod
    def from_spec(cls, target: str, options: dict[str, Any], depth: DepthProvider | None) -> Backend: ...


@runtime_checkable
class TextScorer(Protocol):
    """A backend that can score given replies (likelihood protocols), not only generate."""

    def option_losses(self, request: GenerationRequest, options: Sequence[str]) -> list[float]: ...


FINGERPRINT_EDGE = 1 << 20  # bytes read from each end of a large weight file


def folder_fingerprint(folder: str | Path) -> str:
    """A digest of a local model folder: every small file whole, every large one by its size and
    its first and last MiB (a retrained checkpoint changes both: safetensors files open with a
    header of offsets and end in tensor data), so that fingerprinting 15 GB reads 2 MB a file."""
    folder = Path(folder)
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
        size = path.stat().st_size
        digest.update(f"{path.relative_to(folder)}:{size}\n".encode())
        with open(path, "rb") as handle:
            if size <= 2 * FINGERPRINT_EDGE:
                digest.update(handle.read())
            else:
                digest.update(handle.read(FINGERPRINT_EDGE))
                handle.seek(-FINGERPRINT_EDGE, 2)
                digest.update(handle.read())
    return digest.hexdigest()


def model_identity(model: str, revision: str | None = None, commit: str | None = None) -> dict[str, Any]:
    """The identity of a model given as a local folder (its files' fingerprint) or a Hub id (the
    commit it resolved to: ``commit``, else the cached snapshot's, else the revision asked for)."""
    path = Path(model)
    if path.is_dir():
        return {"kind": "local", "path": str(path.resolve()), "fingerprint": folder_fingerprint(path)}
    if commit is None:
        try:
            from huggingface_hub import snapshot_download

            commit = Path(snapshot_download(model, revision=revision, local_files_only=True)).name
        except Exception:  # not in the cache: the revision asked for is all that is known
            commit = None
    resolved = commit or revision or "main (unresolved)"
    fingerprint = hashlib.sha256(f"{model}@{resolved}".encode()).hexdigest()
    return {"kind": "hub", "id": model, "revision": resolved, "fingerprint": fingerprint}


class DepthProvider:
    """Estimates depth for requests that need it, with one estimator loaded on first use."""

    def __init__(self, model: str = DEFAULT_DEPTH_MODEL, device: str | None = None) -> None:
        self.model = model
        self.device = device
        self._estimator: DepthEstimator | None = None

    @property
    def estimator(self) -> DepthEstimator:
        if self._estimator is None:
            self._estimator = DepthEstimator(self.model, device=self.device)
        return self._estimator

    def ensure_available(self) -> None:
        """Load the depth model now: :class:`~sifdata.depth.DepthModelUnavailable` before any work,
        rather than a failure in every request."""
        self.estimator.pipeline  # noqa: B018 - loading is the point

    def depth_images(self, images: Sequence[Image.Image]) -> list[Image.Image]:
        return [depth_to_image(depth) for depth in self.estimator.estimate(list(images))]


class ModelUnavailable(RuntimeError):
    """A model that cannot be loaded: which one, why, and what to pass instead."""

    def __init__(self, model: str, error: Exception) -> None:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        looks_local = model.startswith((".", "/", "~")) or Path(model).is_absolute()
        if looks_local and not Path(model).exists():
            super().__init__(f"model folder {model} does not exist")
            return
        where = "the folder" if Path(model).exists() else "the Hub id (not in the Hugging Face cache, or offline)"
        super().__init__(
            f"model {model!r} cannot be loaded from {where}: {first}. Pass a local folder, or download it first "
            f"(`hf download {model}`)"
        )


def check_depth_available(requests: Sequence[GenerationRequest], depth: DepthProvider | None) -> None:
    """A configuration error, raised before any work: ``sif`` requests without depth and no model."""
    missing = sum(r.mode == "sif" and r.depth_image is None for r in requests)
    if missing and depth is None:
        raise ValueError(
            f"{missing} request(s) in mode 'sif' have no depth image and no depth model was given "
            "(pass depth_model=..., or give depth images, or use mode 'sif-rgb')"
        )


def prompts_for(requests: Sequence[GenerationRequest], depth: DepthProvider | None) -> list[Prompt]:
    """Build each request's prompt, estimating depth (in one batch) where mode ``sif`` needs it."""
    check_depth_available(requests, depth)
    missing = [i for i, r in enumerate(requests) if r.mode == "sif" and r.depth_image is None]
    estimated: dict[int, Image.Image] = {}
    if missing and depth is not None:
        for index, picture in zip(missing, depth.depth_images([requests[i].images[0] for i in missing]), strict=True):
            estimated[index] = picture
    prompts = []
    for index, request in enumerate(requests):
        first = build_messages(
            request.question,
            request.images,
            estimated.get(index, request.depth_image),
            request.mode,
            system=request.system,
        )
        prompts.append(Prompt(first.parts, first.mode, first.system, request.history))
    return prompts
