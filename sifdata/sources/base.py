"""What every source yields: a question, its answer and ground-truth boxes on one image."""

from __future__ import annotations

import contextlib
import functools
import gc
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, field_validator

from sifdata.chain_types import Box
from sifdata.geometry import pixel_to_normalized
from sifdata.images import open_image
from sifdata.plugins import Registry, subclass_of

log = logging.getLogger("sifdata.sources")


@dataclass(frozen=True)
class SourceRecord:
    """A (question, answer, ground-truth boxes) record before any chain exists.

    ``gt_boxes`` are per-axis normalized, ``gt_boxes_pixel`` the same boxes in pixels of the
    original image. The image is a file (``image_path``) or, for generated scenes, an
    in-memory picture with its exact depth map.
    """

    source: str
    source_id: str
    question: str
    answer: str
    gt_boxes: list[Box]
    gt_boxes_pixel: list[Box]
    width: int
    height: int
    image_path: Path | None = None
    image: Image.Image | None = field(default=None, compare=False, repr=False)
    depth: np.ndarray | None = field(default=None, compare=False, repr=False)
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def key(self) -> str:
        """Unique across sources: ``source/source_id``."""
        return f"{self.source}/{self.source_id}"

    def load_image(self) -> Image.Image:
        """The RGB image; raises :class:`SourceError` naming the record if it is missing or corrupt."""
        if self.image is not None:
            return self.image.convert("RGB")
        if self.image_path is None:
            raise SourceError(self.key, "record has no image")
        try:
            with open_image(self.image_path) as opened:
                return opened.convert("RGB")
        except FileNotFoundError:
            raise SourceError(self.key, f"image file not found: {self.image_path}") from None
        except (OSError, ValueError) as error:
            raise SourceError(self.key, f"image file unreadable ({error}): {self.image_path}") from None


class SourceError(ValueError):
    """A source record that cannot be used, with its key and the reason."""

    def __init__(self, key: str, reason: str) -> None:
        self.key = key
        self.reason = reason
        super().__init__(f"{key}: {reason}")


@dataclass(frozen=True)
class SourceReject:
    key: str
    reason: str


RejectHandler = Callable[[SourceReject], None]


class Candidate(NamedTuple):
    """A source record known by its key before anything of its image is read.

    Selection (filters, caps, sampling) and sharding work on candidates, so that a
    ``--shard i/n`` job opens only its own share of the images. ``resolve()`` reads what the
    record needs (the image header for its size, the boxes) and returns the record, or raises
    :class:`SourceError` naming the record and the reason. (A named tuple: a source index holds
    hundreds of thousands of them.)
    """

    key: str
    subset: str
    resolve: Callable[[], SourceRecord]


# ----------------------------------------------------------------------------- the source interface


class NoOptions(BaseModel):
    """The options of a source that takes none (an unknown option is an error naming it)."""

    model_config = ConfigDict(extra="forbid")


class FileSourceOptions(NoOptions):
    """Options every source read from a file shares: the file, the folder its image paths are
    relative to, and which of its subsets to keep (``subsets``; at most ``per_subset_cap`` of
    each, sampled by the build's seed)."""

    path: Path = Field(description="the source file (or folder of files)")
    image_root: Path | None = Field(default=None, description="folder the image paths are relative to")
    subsets: list[str] | None = Field(default=None, description="keep only these subsets")
    per_subset_cap: int | None = Field(default=None, ge=1, description="at most this many per subset (sampled)")

    @field_validator("subsets", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        return [part for part in value.split(",") if part] if isinstance(value, str) else value


class BuildSource(ABC):
    """What a ``sifdata.sources`` entry point names: where a build's questions and boxes come from.

    ``Options`` is the source's own typed options (``sifdata build --option KEY=VALUE``,
    ``BuildConfig.source_options``); the builder knows none of them. ``candidates`` lists what
    the source offers without reading an image; ``select`` keeps the build's share, the same in
    every process that runs the same config (filters, caps and sampling on keys and subsets).
    """

    name: ClassVar[str]
    description: ClassVar[str]
    Options: ClassVar[type[BaseModel]] = NoOptions
    # False for a source whose records carry their exact depth: the build loads no depth model.
    estimates_depth: ClassVar[bool] = True

    def __init__(self, options: BaseModel) -> None:
        self.options = options

    @abstractmethod
    def candidates(self, *, n: int | None, seed: int, on_reject: RejectHandler) -> list[Candidate]:
        """Every candidate for a build of at most ``n`` records, in source order, no image read."""

    def select(
        self, candidates: list[Candidate], *, n: int | None, rng: np.random.Generator, on_reject: RejectHandler
    ) -> list[Candidate]:
        """The build's candidates: duplicates rejected, then ``n`` sampled by ``rng`` (in order)."""
        return sample_candidates(unique_candidates(candidates, on_reject), n, rng)


SOURCES: Registry[type[BuildSource]] = Registry(
    group="sifdata.sources", noun="source", accepts=subclass_of(BuildSource), expected="a sifdata BuildSource class"
)


def sample_candidates(items: list[Candidate], limit: int | None, rng: np.random.Generator) -> list[Candidate]:
    """``limit`` candidates drawn by ``rng``, kept in their original order."""
    if limit is None or len(items) <= limit:
        return items
    chosen = sorted(rng.choice(len(items), size=limit, replace=False))
    return [items[i] for i in chosen]


def unique_candidates(items: list[Candidate], on_reject: RejectHandler) -> list[Candidate]:
    """The first candidate of each key; the others are rejected as duplicates, by name."""
    seen: set[str] = set()
    unique = []
    for candidate in items:
        if candidate.key in seen:
            on_reject(SourceReject(candidate.key, "duplicate source id"))
            continue
        seen.add(candidate.key)
        unique.append(candidate)
    return unique


def keep_subsets(
    items: list[Candidate],
    options: FileSourceOptions,
    rng: np.random.Generator,
    drop: Callable[[Candidate], bool] = lambda candidate: False,
) -> list[Candidate]:
    """``options.subsets`` (all when None) less what ``drop`` says, at most ``per_subset_cap``
    of each subset sampled by ``rng``."""
    kept = [c for c in items if not drop(c) and (options.subsets is None or c.subset in options.subsets)]
    if options.per_subset_cap is not None:
        by_subset: dict[str, list[Candidate]] = {}
        for candidate in kept:
            by_subset.setdefault(candidate.subset, []).append(candidate)
        capped = {id(c) for group in by_subset.values() for c in sample_candidates(group, options.per_subset_cap, rng)}
        kept = [c for c in kept if id(c) in capped]
    return kept


@contextlib.contextmanager
def bulk_allocation() -> Iterator[None]:
    """Pause the cyclic garbage collector while a source index is built.

    Reading a 363K-row JSON and making a candidate per row allocates millions of objects and
    none of them is garbage; the collector's repeated passes over that growing heap took more
    than half of the time (3.5x slower in ``benchmarks/shard_selection.py``).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def resolve_row(key: str, parse: Callable[..., SourceRecord], *args: Any) -> SourceRecord:
    """``parse(*args)`` with every way a malformed row can fail turned into a :class:`SourceError`."""
    try:
        return parse(*args)
    except SourceError:
        raise
    except (KeyError, IndexError, TypeError, ValueError) as error:
        raise SourceError(key, f"{type(error).__name__}: {error}") from None


def resolving(key: str, parse: Callable[..., SourceRecord], *args: Any) -> Callable[[], SourceRecord]:
    """A candidate's ``resolve``: ``parse(*args)``, failing with a :class:`SourceError` for ``key``."""
    return functools.partial(resolve_row, key, parse, *args)


def resolve_all(candidates: Sequence[Candidate], on_reject: RejectHandler) -> Iterator[SourceRecord]:
    """The records of ``candidates``; the ones that fail go to ``on_reject`` with their reason."""
    for candidate in candidates:
        try:
            yield candidate.resolve()
        except SourceError as error:
            on_reject(SourceReject(error.key, error.reason))


def log_reject(reject: SourceReject) -> None:
    """The default handler: every rejected record is named in the log, never dropped unseen."""
    log.warning("rejected %s: %s", reject.key, reject.reason)


def clean_pixel_box(box: Sequence[float], width: int, height: int) -> Box:
    """Clip a pixel box that overshoots the image by rounding; refuse one that is broken.

    Overshoot up to max(2 px, 2% of the side) is rounding and gets clipped. Inverted or empty
    boxes and boxes beyond that tolerance raise ``ValueError`` with the reason.
    """
    if len(box) != 4:
        raise ValueError(f"box needs 4 numbers, got {list(box)}")
    x1, y1, x2, y2 = (float(v) for v in box)
    if x2 < x1 or y2 < y1:
        raise ValueError(f"inverted box {[x1, y1, x2, y2]}")
    slack_x, slack_y = max(2.0, 0.02 * width), max(2.0, 0.02 * height)
    if x1 < -slack_x or y1 < -slack_y or x2 > width + slack_x or y2 > height + slack_y:
        raise ValueError(f"box {[x1, y1, x2, y2]} lies outside the {width}x{height} image")
    clipped = (max(x1, 0.0), max(y1, 0.0), min(x2, float(width)), min(y2, float(height)))
    if clipped[2] - clipped[0] <= 0 or clipped[3] - clipped[1] <= 0:
        raise ValueError(f"empty box {[x1, y1, x2, y2]}")
    return clipped


def make_record(
    *,
    source: str,
    source_id: str,
    question: str,
    answer: str,
    boxes_pixel: Sequence[Sequence[float]],
    width: int,
    height: int,
    **extra: Any,
) -> SourceRecord:
    """Build a record from pixel boxes, cleaning each (``ValueError`` with the reason if broken)."""
    if width <= 0 or height <= 0:
        raise ValueError(f"image size {width}x{height} is not positive")
    if not boxes_pixel:
        raise ValueError("no ground-truth box")
    if not question.strip():
        raise ValueError("empty question")
    if not str(answer).strip():
        raise ValueError("empty answer")
    cleaned = [clean_pixel_box(box, width, height) for box in boxes_pixel]
    normalized = [pixel_to_normalized(box, width, height) for box in cleaned]
    return SourceRecord(
        source=source,
        source_id=source_id,
        question=question.strip(),
        answer=str(answer).strip(),
        gt_boxes=normalized,
        gt_boxes_pixel=cleaned,
        width=width,
        height=height,
        **extra,
    )


def image_size(path: Path, *, decode: bool = False) -> tuple[int, int] | None:
    """(width, height) from the file header (``decode``: after decoding every pixel, so that a
    truncated file is found now); None when there is nothing at ``path``.

    Something there that is no readable image (not a regular file, over the budget, cut short)
    raises ``ValueError`` naming it (:func:`sifdata.images.open_image`).
    """
    if not path.exists() and not path.is_symlink():
        return None
    try:
        with open_image(path, decode=decode) as image:
            return image.size
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise ValueError(f"image file unreadable ({error})") from None
