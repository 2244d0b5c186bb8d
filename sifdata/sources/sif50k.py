"""The published SIF-50K JSON (``SIF-50K.json``, Hub ``jankin123/SIF-50K``): import and export.

**Box frames.** The published ``bbox_3d`` and every ``bbox_2d`` of the published chains are
Visual-CoT's *padded-square* values (the image pasted into a square of side max(W, H), then
divided by that side), which the original generator (``data_generation/produce.py`` of
zhangquanchen/SIFThinker at cce0042, ``process_data``: ``expand_and_merge_bboxes(boundingboxlist,
width, height)`` then ``box / width``, ``box / height``) used as if they were per-axis. On a
non-square image they sit beside the object, and the chains' depths were read from those
shifted regions. Import therefore, by default:

- converts the ground-truth boxes and every chain box to true per-axis boxes with the image's
  size (clipped to the image, 3 decimals) and sets ``box_frame = "per-axis"``;
- recomputes every chain depth from the record's own depth map over the converted box;
- keeps the published values in ``extra["published"]`` (``frame``, ``bbox_3d``, ``chain``,
  ``depths``), so that :func:`record_to_published` writes the file back byte for byte.

``keep_published_frame=True`` keeps the file as it is (``box_frame = "padded-square"``), for
evaluating or continuing the paper's checkpoints, which emit boxes in that frame.

**Image paths.** The released file names images ``../data/<dataset>/<file>``; the Hub release
ships them under ``images/`` beside the JSON. A path is looked up, with the ``../data/`` prefix
removed, under ``image_root`` when given, else under ``<json folder>/images``, the literal
``<json folder>/../data`` and the JSON's folder, in that order. A path that would leave its root
is refused. A record whose RGB or depth image is missing or unreadable is rejected with the
reason, never imported without it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from sifdata.chain import ChainError, format_chain, parse_chain
from sifdata.depth import DepthMap, load_depth_png
from sifdata.files import OutsideRoot, atomic_write, confined_path, read_json, safe_name
from sifdata.geometry import clip_box, normalized_to_padded_square, padded_square_to_normalized, round_box
from sifdata.prompt import sif_user_text
from sifdata.schema import Box, Chain, Focus, Provenance, SIFRecord, Text
from sifdata.sources.base import RejectHandler, SourceReject, bulk_allocation, image_size, log_reject
from sifdata.version import __version__

PUBLISHED_FILES = ("SIF-50K.json", "SIF-50K-sampled-200.json")
PUBLISHED_IMAGE_PREFIX = "../data/"
PUBLISHED_FRAME = "padded-square"
OWN_KEY = "sifthinker"  # a record exported from here, exactly (other readers ignore the key)


class PublishedRowError(ValueError):
    """A published row that cannot be imported, with the reason."""


@dataclass(frozen=True)
class PublishedRow:
    """One row of the published file, exactly as written (nothing converted yet)."""

    index: int
    dataset: str
    problem: str
    response: str
    bbox_3d: list[list[float]]
    illegal_content: Any
    user_prompt: str
    chain: str
    image: str
    depth_image: str
    images: Any
    message_keys: list[str]  # the key order of the messages, as written (produce.py: content, role)
    raw: Any  # the row as parsed, for the layout check

    @property
    def key(self) -> str:
        return f"sif50k/{self.index:06d}"


@dataclass(frozen=True)
class ImportedRecord:
    """A record and the image files it was read from (their bytes go into the shard)."""

    record: SIFRecord
    image_file: Path
    depth_file: Path


def parse_row(row: Any, index: int) -> PublishedRow:
    """The fields of one published row; :class:`PublishedRowError` names what is missing or malformed."""
    try:
        messages = row["messages"]
        user = next(m["content"] for m in messages if m["role"] == "user")
        assistant = next(m["content"] for m in messages if m["role"] == "assistant")
        solution = row["normalized_solution_round"]
        parsed = PublishedRow(
            index=index,
            dataset=row["dataset"],
            problem=row["problem"],
            response=row["response"],
            bbox_3d=solution["bbox_3d"],
            illegal_content=solution.get("illegal_content", False),
            user_prompt=user,
            chain=assistant,
            image=row["image"],
            depth_image=row["depth_image"],
            images=row.get("images"),
            message_keys=list(messages[0]),
            raw=row,
        )
    except StopIteration:
        raise PublishedRowError("messages: needs a user and an assistant message") from None
    except (KeyError, TypeError, AttributeError) as error:
        raise PublishedRowError(f"missing or malformed field: {error!r}") from None
    for name in ("dataset", "problem", "response", "image", "depth_image", "user_prompt", "chain"):
        if not isinstance(getattr(parsed, name), str):
            raise PublishedRowError(f"{name}: expected a string, got {type(getattr(parsed, name)).__name__}")
    if not isinstance(parsed.bbox_3d, list) or not all(
        isinstance(box, list) and len(box) == 4 and all(_is_number(v) for v in box) for box in parsed.bbox_3d
    ):
        raise PublishedRowError(
            f"normalized_solution_round.bbox_3d: expected a list of 4-number boxes, got {parsed.bbox_3d!r}"
        )
    return parsed


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# ----------------------------------------------------------------------------- image paths


def image_roots(json_path: str | Path, image_root: str | Path | None = None) -> list[Path]:
    """Where a published file's image paths are looked up, in order."""
    if image_root is not None:
        return [Path(image_root)]
    folder = Path(json_path).parent
    return [folder / "images", folder.parent / "data", folder]


def strip_published_prefix(path: str) -> str:
    """``../data/flickr30k/1.jpg`` -> ``flickr30k/1.jpg``; other paths unchanged."""
    return path[len(PUBLISHED_IMAGE_PREFIX) :] if path.startswith(PUBLISHED_IMAGE_PREFIX) else path


def resolve_image(path: str, roots: list[Path]) -> Path:
    """The file a published image path names, under the first root that holds it.

    Raises :class:`PublishedRowError` when it leaves its root or is under none of them.
    """
    relative = strip_published_prefix(path)
    candidates = []
    for root in roots:
        try:
            candidate = confined_path(root, relative)
        except OutsideRoot as error:
            raise PublishedRowError(str(error)) from None
        if candidate.exists():  # a FIFO or a folder there is found, and refused when opened
            return candidate
        candidates.append(str(candidate))
    raise PublishedRowError(f"image not found: {path!r} (looked for {', '.join(candidates)})")


# ----------------------------------------------------------------------------- frames


def published_box_to_per_axis(box: list[float], width: int, height: int) -> Box:
    """A published (padded-square) box as a per-axis box of a ``width`` x ``height`` image.

    The part of a box that lies in the square's padding is cut off; a box that lies wholly in
    the padding has no per-axis equivalent and raises ``ValueError``.
    """
    converted = round_box(clip_box(padded_square_to_normalized(box, width, height)))
    if not (converted[0] < converted[2] and converted[1] < converted[3]):
        raise ValueError(
            f"box {list(box)} lies outside the {width}x{height} image once its padded-square frame is undone"
        )
    return converted


def convert_chain(chain: Chain, width: int, height: int, depth: DepthMap) -> Chain:
    """The chain with every box converted to per-axis and every depth read again from ``depth``."""
    steps: list[Focus | Text] = []
    for index, step in enumerate(chain.steps):
        if isinstance(step, Text):
            steps.append(step)
            continue
        boxes = []
        for box in step.boxes:
            try:
                boxes.append(published_box_to_per_axis(list(box), width, height))
            except ValueError as error:
                raise PublishedRowError(f"chain area {index // 2 + 1}: {error}") from None
        steps.append(Focus(boxes=boxes, depths=[round(depth.box_mean(box), 3) for box in boxes]))
    return Chain(steps=steps, answer=chain.answer)


# ----------------------------------------------------------------------------- import


def to_record(
    row: PublishedRow, image_file: Path, depth_file: Path, *, keep_published_frame: bool = False
) -> SIFRecord:
    """A published row as a :class:`SIFRecord` (see the module docstring for the frames).

    Raises :class:`PublishedRowError` or ``ValidationError`` with the reason when it cannot be one.
    """
    try:
        size = image_size(image_file, decode=True)  # a truncated image is this row's reject, now
        depth_values = load_depth_png(depth_file)
    except (ValueError, OSError) as error:
        raise PublishedRowError(str(error)) from None
    if size is None:
        raise PublishedRowError(f"image not found: {image_file}")
    width, height = size
    if depth_values.shape != (height, width):
        raise PublishedRowError(
            f"depth image {depth_file.name} is {depth_values.shape[1]}x{depth_values.shape[0]}, "
            f"image is {width}x{height}"
        )
    exported = restore_exported(row, width, height)
    if exported is not None:
        return exported
    try:
        published_chain = parse_chain(row.chain, strict=True)
    except ChainError as error:
        raise PublishedRowError(f"chain: {error}") from None
    extra: dict[str, Any] = {
        "illegal_content": row.illegal_content,
        "image_path": row.image,
        "depth_image_path": row.depth_image,
    }
    if row.user_prompt != sif_user_text(row.problem):
        extra["user_prompt"] = row.user_prompt
    if row.images != [row.image, row.depth_image]:
        extra["images"] = row.images
    if row.message_keys != ["role", "content"]:
        extra["message_keys"] = row.message_keys
    if keep_published_frame:
        gt_boxes = [tuple(float(v) for v in box) for box in row.bbox_3d]
        chain_text, frame = row.chain, PUBLISHED_FRAME
    else:
        try:
            gt_boxes = [published_box_to_per_axis(box, width, height) for box in row.bbox_3d]
        except ValueError as error:
            raise PublishedRowError(f"ground-truth box: {error}") from None
        converted = convert_chain(published_chain, width, height, DepthMap(depth_values))
        chain_text, frame = format_chain(converted), "per-axis"
        extra["published"] = {
            "frame": PUBLISHED_FRAME,
            "bbox_3d": row.bbox_3d,
            "chain": row.chain,
            "depths": [list(step.depths) for step in published_chain.focus_steps],
        }
    record = SIFRecord(
        id=row.key,
        source=row.dataset,
        source_id=str(row.index),
        question=row.problem,
        answer=row.response,
        gt_boxes=gt_boxes,  # type: ignore[arg-type]  # 4-tuples, checked by the model
        width=width,
        height=height,
        image=row.image,
        depth_image=row.depth_image,
        chain=chain_text,
        box_frame=frame,  # type: ignore[arg-type]
        provenance=Provenance(writer_kind="imported", library_version=__version__),
        extra=extra,
    )
    if json.dumps(record_to_published(record), ensure_ascii=False) != json.dumps(row.raw, ensure_ascii=False):
        # A layout this module does not write (other keys, other key order): keep the row itself,
        # so that export still gives the file back.
        record = record.model_copy(update={"extra": {**extra, "published_row": row.raw}})
    return record


def read_rows(path: str | Path) -> list[Any]:
    """The rows of a published file (a JSON list)."""
    path = Path(path)
    with bulk_allocation():
        rows = read_json(path)
    if not isinstance(rows, list):
        raise ValueError(f"{path}: expected a JSON list of SIF-50K records")
    return rows


def read(
    path: str | Path,
    *,
    image_root: str | Path | None = None,
    keep_published_frame: bool = False,
    on_reject: RejectHandler = log_reject,
) -> Iterator[ImportedRecord]:
    """Yield the importable records of a published file; every other row goes to ``on_reject``
    with its reason (a missing image, a broken chain, a box outside the image, ...)."""
    roots = image_roots(path, image_root)
    for index, raw in enumerate(read_rows(path)):
        key = f"sif50k/{index:06d}"
        try:
            row = parse_row(raw, index)
            image_file = resolve_image(row.image, roots)
            depth_file = resolve_image(row.depth_image, roots)
            record = to_record(row, image_file, depth_file, keep_published_frame=keep_published_frame)
        except PublishedRowError as error:
            on_reject(SourceReject(key, str(error)))
            continue
        except ValidationError as error:
            reasons = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
            on_reject(SourceReject(key, reasons))
            continue
        yield ImportedRecord(record, image_file, depth_file)


def ground_truth_gap(record: SIFRecord) -> str | None:
    """Why an imported record's last chain area is not its ground truth, or None if it is.

    The generator wrote the chain's last box as ``round(int(b * W) / W, 3)`` of the ground
    truth ``b`` (produce.py, ``denormalize_bboxes`` then the 3-decimal normalization), so in the
    published frame the two differ by up to one pixel plus rounding; in the converted frame by
    that much times the padded square's side over the image's.
    """
    published = record.extra.get("published")
    if published:
        chain = parse_chain(published["chain"], strict=True)
        truth: list[Any] = published["bbox_3d"]
    else:
        chain, truth = record.parsed_chain(), [list(box) for box in record.gt_boxes]
    last = chain.last_boxes
    # x and y tolerances, for coordinates 0, 2 and 1, 3.
    tolerances = [1.0 / record.width + 0.0015, 1.0 / record.height + 0.0015] * 2
    if len(last) != len(truth):
        return f"last area has {len(last)} boxes, the ground truth {len(truth)}"
    for box in truth:
        if not any(all(abs(a - b) <= t for a, b, t in zip(box, other, tolerances, strict=True)) for other in last):
            shown = [list(b) for b in last]
            return f"no box of the last area {shown} is the ground truth {list(box)} (published frame)"
    return None


# ----------------------------------------------------------------------------- export


def _round3(value: float) -> float:
    return round(float(value), 3)


def published_paths(record: SIFRecord, suffix: str = ".jpg") -> tuple[str, str]:
    """The (image, depth image) paths a record has in the published layout."""
    image = record.extra.get("image_path")
    depth = record.extra.get("depth_image_path")
    if image and depth:
        return image, depth
    stem = f"{PUBLISHED_IMAGE_PREFIX}{safe_name(record.source)}/{safe_name(record.id)}"
    return f"{stem}{suffix}", f"{stem}_d.png"


def box_to_padded_square(box: Box | list[float], width: int, height: int) -> list[float]:
    """A per-axis box in the published frame (the padded square), 3 decimals; a box that rounding
    would make empty keeps 0.001 of width or height."""
    x1, y1, x2, y2 = round_box(normalized_to_padded_square(box, width, height))
    if x2 <= x1:
        x2 = min(1.0, round(x1 + 0.001, 3)) if x1 < 1.0 else x1
        x1 = min(x1, round(x2 - 0.001, 3))
    if y2 <= y1:
        y2 = min(1.0, round(y1 + 0.001, 3)) if y1 < 1.0 else y1
        y1 = min(y1, round(y2 - 0.001, 3))
    return [x1, y1, x2, y2]


def chain_to_padded_square(chain: Chain, width: int, height: int) -> Chain:
    """The chain with every box in the published frame and every depth as it was: each depth was
    read over the region its box names, and the box still names that region."""
    steps: list[Focus | Text] = [
        Focus(boxes=[tuple(box_to_padded_square(box, width, height)) for box in step.boxes], depths=step.depths)  # type: ignore[misc]
        if isinstance(step, Focus)
        else step
        for step in chain.steps
    ]
    return Chain(steps=steps, answer=chain.answer)


def record_to_published(record: SIFRecord, image_suffix: str = ".jpg") -> dict[str, Any]:
    """The published layout of one record (keys in the published order); ``image_suffix`` is the
    extension of the image file written beside it (named in the JSON).

    The layout always holds the published frame, as the original training code and anyone's
    scripts read it. An imported record gets its published values back (so that import then
    export is the identity). A record built here (per-axis) is converted: its boxes and its
    chain's boxes onto the padded square, its depths kept; the record itself, exactly, goes under
    the extra key ``sifthinker`` (which other readers ignore), so that importing the export gives
    the record back (:func:`restore_exported`).
    """
    if "published_row" in record.extra:
        return record.extra["published_row"]
    published = record.extra.get("published") or {}
    image, depth_image = published_paths(record, image_suffix)
    images = record.extra.get("images") or [image, depth_image]
    own: dict[str, Any] | None = None
    if published:
        bbox_3d, chain = published["bbox_3d"], published["chain"]
    elif record.box_frame == PUBLISHED_FRAME:
        bbox_3d, chain = [[_round3(v) for v in box] for box in record.gt_boxes], record.chain
    else:
        bbox_3d = [box_to_padded_square(box, record.width, record.height) for box in record.gt_boxes]
        chain = format_chain(chain_to_padded_square(record.parsed_chain(), record.width, record.height))
        own = record.model_dump(mode="json", exclude={"image", "depth_image"})
    row = {
        "dataset": record.source,
        "image": image,
        "depth_image": depth_image,
        "problem": record.question,
        "normalized_solution_round": {
            "bbox_3d": bbox_3d,
            "illegal_content": record.extra.get("illegal_content", False),
        },
        "response": record.answer,
        "messages": [
            _message("user", record.extra.get("user_prompt") or sif_user_text(record.question), record),
            _message("assistant", chain, record),
        ],
        "images": images,
    }
    if own is not None:
        row[OWN_KEY] = own
    return row


def restore_exported(row: PublishedRow, width: int, height: int) -> SIFRecord | None:
    """The record a row exported by :func:`record_to_published` carries under ``sifthinker``, when
    the row's published fields are still exactly what that record exports to (None otherwise: a
    row edited since, imported from its published fields like any other)."""
    own = row.raw.get(OWN_KEY) if isinstance(row.raw, dict) else None
    if not isinstance(own, dict):
        return None
    try:
        record = SIFRecord.model_validate({**own, "image": row.image, "depth_image": row.depth_image})
    except ValidationError:
        return None
    if (record.width, record.height) != (width, height):
        return None
    suffix = Path(row.image).suffix or ".jpg"
    if json.dumps(record_to_published(record, suffix), sort_keys=True) != json.dumps(row.raw, sort_keys=True):
        return None
    return record


def _message(role: str, content: str, record: SIFRecord) -> dict[str, str]:
    values = {"role": role, "content": content}
    return {key: values[key] for key in record.extra.get("message_keys", ["role", "content"])}


def dumps(records: Iterable[SIFRecord], image_suffixes: Iterable[str] | None = None) -> str:
    """The canonical published file text: a JSON list, ``indent=2``, UTF-8 unescaped
    (``image_suffixes``: each record's image file extension, ``.jpg`` by default)."""
    suffixes = iter(image_suffixes) if image_suffixes is not None else None
    rows = [record_to_published(r, next(suffixes) if suffixes is not None else ".jpg") for r in records]
    return json.dumps(rows, ensure_ascii=False, indent=2) + "\n"


def write(records: Iterable[SIFRecord], path: str | Path, image_suffixes: Iterable[str] | None = None) -> Path:
    return atomic_write(path, dumps(records, image_suffixes).encode("utf-8"))
