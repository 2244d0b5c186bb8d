"""The one parser and formatter of the SIF chain grammar (sif-format.md).

Strict mode is the grammar the format reward enforces and validation checks: it raises
:class:`ChainError` with the character position and the reason of the first violation.
Lenient mode is for evaluating model output in the wild: it never raises, recovers the
answer and whatever boxes are readable, and lists what it had to forgive in
``Chain.issues``.
"""

from __future__ import annotations

import ast
import json
import math
import re
from dataclasses import dataclass
from typing import Any

from sifdata.chain_types import MAX_DECIMALS, Box, Chain, Focus, Text, check_normalized_box
from sifdata.geometry import clip_box

_TAG = re.compile(r"<(/?)(think|area|text|answer)>")
_NON_SPACE = re.compile(r"\S")


class ChainError(ValueError):
    """A strict-grammar violation at ``position`` (a character offset) for ``reason``."""

    def __init__(self, position: int, reason: str, text: str | None = None) -> None:
        self.position = position
        self.reason = reason
        where = f"character {position}"
        if text is not None:
            line = text.count("\n", 0, position) + 1
            column = position - (text.rfind("\n", 0, position) + 1) + 1
            where += f" (line {line}, column {column})"
        super().__init__(f"at {where}: {reason}")


# ---------------------------------------------------------------------------- strict


class _NumberError(ValueError):
    pass


def _reject_constant(name: str) -> float:
    raise _NumberError(f"{name} is not a number the grammar allows")


# A number with 4+ decimals or an exponent (an exponent always follows a digit; "depth" has
# an "e" but no digit before it). Checked on the area text after the structure is known to be
# {"bbox_2d": [...], "depth": d} objects, so only numbers can match; one scan of a simple
# pattern is much cheaper than a Python callback per float inside json.loads.
_OVERLONG_HINT = re.compile(r"\.\d{4}|\d[eE]")
_NUMBER_LITERAL = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _number_problem(literal: str) -> str:
    if "e" in literal or "E" in literal:
        return f"number {literal} uses exponent notation"
    return f"number {literal} has {len(literal.partition('.')[2])} decimals (at most {MAX_DECIMALS})"


_NUMBER_TYPES = (int, float)
_KEYS = {"bbox_2d", "depth"}
_new_focus = Focus.__new__
_new_text = Text.__new__
_set = object.__setattr__


def _focus(boxes: list[Box], depths: list[float | None]) -> Focus:
    """A Focus from already-checked values, without pydantic's per-field machinery (hot path)."""
    focus = _new_focus(Focus)
    _set(focus, "__dict__", {"kind": "focus", "boxes": boxes, "depths": depths})
    _set(focus, "__pydantic_fields_set__", {"boxes", "depths"})
    _set(focus, "__pydantic_extra__", None)
    _set(focus, "__pydantic_private__", None)
    return focus


def _text(narration: str) -> Text:
    text = _new_text(Text)
    _set(text, "__dict__", {"kind": "text", "text": narration})
    _set(text, "__pydantic_fields_set__", {"text"})
    _set(text, "__pydantic_extra__", None)
    _set(text, "__pydantic_private__", None)
    return text


def _chain(steps: list[Focus | Text], answer: str | None, issues: list[str]) -> Chain:
    chain = Chain.__new__(Chain)
    _set(chain, "__dict__", {"steps": steps, "answer": answer, "issues": issues})
    _set(chain, "__pydantic_fields_set__", {"steps", "answer", "issues"})
    _set(chain, "__pydantic_extra__", None)
    _set(chain, "__pydantic_private__", None)
    return chain


def _area_error(offset: int, where: str, reason: str, text: str) -> ChainError:
    return ChainError(offset, f"{where}{reason}", text)


def _parse_area(content: str, offset: int, text: str) -> Focus:
    """Parse one area's JSON; ``offset`` is where ``content`` starts in ``text``."""
    try:
        items = _DECODER.decode(content)
    except _NumberError as error:
        raise ChainError(offset, f"area: {error}", text) from None
    except json.JSONDecodeError as error:
        raise ChainError(offset + error.pos, f"area is not valid JSON: {error.msg}", text) from None
    if type(items) is not list or not items:
        raise ChainError(offset, "area must hold a non-empty JSON list of boxes", text)
    boxes: list[Box] = []
    depths: list[float | None] = []
    for index, item in enumerate(items):
        if type(item) is not dict:
            raise _area_error(offset, f"area box {index}", " must be an object", text)
        if item.keys() != _KEYS:
            keys = set(item)
            missing, unknown = sorted(_KEYS - keys), sorted(keys - _KEYS)
            detail = "; ".join(
                ([f"missing {', '.join(missing)}"] if missing else [])
                + ([f"unknown {', '.join(unknown)}"] if unknown else [])
            )
            raise _area_error(offset, f"area box {index}", f" must have exactly bbox_2d and depth ({detail})", text)
        bbox = item["bbox_2d"]
        if type(bbox) is not list or len(bbox) != 4 or not all(type(v) in _NUMBER_TYPES for v in bbox):
            raise _area_error(offset, f"area box {index}", ": bbox_2d must be a list of 4 numbers", text)
        x1, y1, x2, y2 = bbox
        if not (0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1):
            reason = check_normalized_box(bbox)
            raise _area_error(offset, f"area box {index}", f": bbox_2d {reason}", text)
        depth = item["depth"]
        if type(depth) not in _NUMBER_TYPES or not 0 <= depth <= 1:
            raise _area_error(offset, f"area box {index}", f": depth must be a number in [0, 1], got {depth!r}", text)
        boxes.append((float(x1), float(y1), float(x2), float(y2)))
        depths.append(float(depth))
    if _OVERLONG_HINT.search(content):
        for literal in _NUMBER_LITERAL.finditer(content):
            number = literal.group(0)
            if "e" in number or "E" in number or len(number.partition(".")[2]) > MAX_DECIMALS:
                raise ChainError(offset + literal.start(), f"area: {_number_problem(number)}", text)
    return _focus(boxes, depths)


def _is_number(value: Any) -> bool:
    return type(value) in _NUMBER_TYPES


def _first_non_space(text: str, start: int, stop: int) -> int | None:
    """Position of the first non-whitespace character in text[start:stop], or None."""
    match = _NON_SPACE.search(text, start, stop)
    return match.start() if match else None


def _parse_strict(text: str) -> Chain:
    tags = [(*m.span(), m.group()) for m in _TAG.finditer(text)]
    count = len(tags)
    state = {"cursor": 0, "index": 0}  # end of the last consumed tag; next tag to consume

    def take(wanted: str, gap_must_be_empty: bool) -> tuple[int, int]:
        """Consume the next tag, which must be ``wanted``; returns the span of what preceded it."""
        cursor, index = state["cursor"], state["index"]
        if index >= count:
            stray = _first_non_space(text, cursor, len(text)) if gap_must_be_empty else None
            raise ChainError(stray if stray is not None else len(text), f"expected {wanted}, found end of text", text)
        start, end, tag = tags[index]
        if gap_must_be_empty:
            stray = _first_non_space(text, cursor, start)
            if stray is not None:
                raise ChainError(stray, f"expected {wanted}, found text outside tags", text)
        if tag != wanted:
            raise ChainError(start, f"expected {wanted}, found {tag}", text)
        state["cursor"], state["index"] = end, index + 1
        return cursor, start

    take("<think>", True)
    steps: list[Focus | Text] = []
    while True:
        index = state["index"]
        if index < count and tags[index][2] == "</think>":
            if steps:
                take("</think>", True)
                break
            stray = _first_non_space(text, state["cursor"], tags[index][0])
            if stray is not None:
                raise ChainError(stray, "expected <area>, found text outside tags", text)
            raise ChainError(tags[index][0], "think needs at least one area/text pair", text)
        take("<area>", True)
        start, stop = take("</area>", False)
        steps.append(_parse_area(text[start:stop], start, text))
        take("<text>", True)
        start, stop = take("</text>", False)
        narration = text[start:stop].strip()
        if not narration:
            raise ChainError(start, "text step is empty", text)
        steps.append(_text(narration))
    take("<answer>", True)
    start, stop = take("</answer>", False)
    answer = text[start:stop].strip()
    if not answer:
        raise ChainError(start, "answer is empty", text)
    stray = _first_non_space(text, state["cursor"], len(text))
    if stray is not None:
        raise ChainError(stray, "content after </answer>", text)
    return _chain(steps, answer, [])


# ---------------------------------------------------------------------------- lenient

_ANSWER = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.DOTALL | re.IGNORECASE)
_PIECE = re.compile(r"<(area|text)>(.*?)(?:</\1>|(?=<(?:/?(?:area|text|think|answer))>)|$)", re.DOTALL | re.IGNORECASE)
_NUMBER = r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"
_BBOX_FIELD = re.compile(
    r"bbox(?:_2d)?['\"]?\s*[:=]\s*[\[(]\s*("
    + _NUMBER
    + r")\s*,\s*("
    + _NUMBER
    + r")\s*,\s*("
    + _NUMBER
    + r")\s*,\s*("
    + _NUMBER
    + r")\s*[\])]"
    r"(?:[^\[\]{}]*?depth['\"]?\s*[:=]\s*(" + _NUMBER + r"))?",
    re.IGNORECASE,
)
_BARE_BOX = re.compile(
    r"\[\s*(" + _NUMBER + r")\s*,\s*(" + _NUMBER + r")\s*,\s*(" + _NUMBER + r")\s*,\s*(" + _NUMBER + r")\s*\]"
)


def _to_float(value: Any) -> float | None:
    if _is_number(value):
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def _candidate_boxes(content: str) -> list[tuple[list[Any], Any]]:
    """(box, depth) pairs from an area's content, however it was written."""
    for loader in (json.loads, ast.literal_eval):
        try:
            items = loader(content.strip())
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
        if isinstance(items, dict):
            items = [items]
        if isinstance(items, list | tuple) and items and all(isinstance(i, dict) for i in items):
            found = [
                (item.get("bbox_2d", item.get("bbox")), item.get("depth"))
                for item in items
                if isinstance(item.get("bbox_2d", item.get("bbox")), list | tuple)
            ]
            if found:
                return found
        if isinstance(items, list | tuple) and len(items) == 4 and all(_is_number(v) for v in items):
            return [(list(items), None)]
    found = [(list(m.groups()[:4]), m.group(5)) for m in _BBOX_FIELD.finditer(content)]
    if found:
        return found
    return [(list(m.groups()), None) for m in _BARE_BOX.finditer(content)]


def _normalize_box(raw: list[Any], width: int | None, height: int | None, issues: list[str]) -> Box | None:
    numbers = [_to_float(v) for v in raw]
    if len(numbers) != 4 or any(v is None for v in numbers):
        issues.append(f"unreadable box {raw!r}")
        return None
    x1, y1, x2, y2 = (v for v in numbers if v is not None)
    if max(x1, y1, x2, y2) > 1.0:
        if not width or not height:
            issues.append(f"box {[x1, y1, x2, y2]} looks like pixels and no image size was given")
            return None
        issues.append("box given in pixels, normalized by the image size")
        x1, x2, y1, y2 = x1 / width, x2 / width, y1 / height, y2 / height
    if x1 > x2 or y1 > y2:
        issues.append("box corners given in the wrong order")
        x1, x2 = min(x1, x2), max(x1, x2)
        y1, y2 = min(y1, y2), max(y1, y2)
    clipped = clip_box((x1, y1, x2, y2))
    if clipped != (x1, y1, x2, y2):
        issues.append("box clipped to the image")
    if not (clipped[0] < clipped[2] and clipped[1] < clipped[3]):
        issues.append(f"empty box {[x1, y1, x2, y2]} dropped")
        return None
    return clipped


def _lenient_focus(content: str, width: int | None, height: int | None, issues: list[str]) -> Focus | None:
    boxes: list[Box] = []
    depths: list[float | None] = []
    for raw_box, raw_depth in _candidate_boxes(content):
        box = _normalize_box(list(raw_box), width, height, issues)
        if box is None:
            continue
        depth = _to_float(raw_depth)
        if depth is not None and not 0.0 <= depth <= 1.0:
            issues.append(f"depth {depth} outside [0, 1] dropped")
            depth = None
        boxes.append(box)
        depths.append(depth)
    if not boxes:
        issues.append("area without a readable box")
        return None
    return _focus(boxes, depths)


def _parse_lenient(text: str, width: int | None, height: int | None, reason: str) -> Chain:
    issues = [f"not strict: {reason}"]
    answers = [m.group(1).strip() for m in _ANSWER.finditer(text)]
    answer = next((a for a in reversed(answers) if a), None)
    if answer is None:
        issues.append("no <answer>" if not answers else "empty <answer>")
    answer_start = text.lower().rfind("<answer>")
    body = text if answer_start < 0 else text[:answer_start]
    steps: list[Focus | Text] = []
    for match in _PIECE.finditer(body):
        kind, content = match.group(1).lower(), match.group(2)
        if kind == "text":
            if content.strip():
                steps.append(_text(content.strip()))
            continue
        focus = _lenient_focus(content, width, height, issues)
        if focus is not None:
            steps.append(focus)
    if not any(isinstance(step, Focus) for step in steps):
        # Boxes written without <area> tags (JSON in prose, code fences) are still boxes.
        focus = _lenient_focus(body, width, height, []) if "bbox" in body.lower() else None
        if focus is not None:
            issues.append("boxes found outside <area> tags")
            steps.append(focus)
    return _chain(steps, answer, issues)


# ---------------------------------------------------------------------------- as written


@dataclass(frozen=True)
class WrittenArea:
    """One ``<area>`` exactly as written, for rewards that must score what a completion says.

    ``boxes`` holds every readable box with each coordinate clipped to [0, 1] (unless read with
    ``clip=False``), in the order written: an inverted box stays inverted (it covers nothing),
    pixel numbers clip to the edge (they cover nothing either), nothing is re-ordered,
    normalized or dropped for being odd.
    ``depths`` holds the stated depth of each box, NaN where it is missing, unreadable or not
    finite. ``unreadable`` counts the box-like items that could not be read as four numbers.
    """

    boxes: list[Box]
    depths: list[float]
    unreadable: int = 0


def read_areas(text: str, *, clip: bool = True) -> list[WrittenArea]:
    """Every ``<area>`` of a completion's thinking (before its last ``<answer>``), in order, as
    written; an area with nothing readable is an area with no boxes, never skipped.
    ``clip=False`` keeps every coordinate exactly as written (an evaluation that scores boxes by
    its upstream's arithmetic, where a coordinate past the edge counts as written)."""
    answer_start = text.lower().rfind("<answer>")
    body = text if answer_start < 0 else text[:answer_start]
    areas = []
    for match in _PIECE.finditer(body):
        if match.group(1).lower() != "area":
            continue
        boxes: list[Box] = []
        depths: list[float] = []
        unreadable = 0
        for raw_box, raw_depth in _candidate_boxes(match.group(2)):
            numbers = [_to_float(v) for v in raw_box]
            if len(numbers) != 4 or any(v is None for v in numbers):
                unreadable += 1
                continue
            x1, y1, x2, y2 = (min(max(v, 0.0), 1.0) if clip else v for v in numbers if v is not None)
            boxes.append((x1, y1, x2, y2))
            depth = _to_float(raw_depth)
            depths.append(depth if depth is not None else math.nan)
        areas.append(WrittenArea(boxes, depths, unreadable))
    return areas


def written_answer(text: str) -> str | None:
    """The content of the last ``<answer>`` written (to its ``</answer>`` or the end), stripped;
    None when there is none or it is empty. Never an earlier answer in place of an empty last one."""
    answers = [m.group(1).strip() for m in _ANSWER.finditer(text)]
    return answers[-1] if answers and answers[-1] else None


# ---------------------------------------------------------------------------- public


def parse_chain(text: str, strict: bool = True, *, width: int | None = None, height: int | None = None) -> Chain:
    """Parse a SIF chain.

    ``strict=True`` enforces the grammar and raises :class:`ChainError`. ``strict=False``
    never raises: it returns what it could read, with ``Chain.issues`` saying what was
    forgiven; ``width``/``height`` (pixels) let it normalize boxes a model wrote in pixels.
    """
    if strict:
        return _parse_strict(text)
    try:
        return _parse_strict(text)
    except ChainError as error:
        return _parse_lenient(text, width, height, str(error))
    except RecursionError:  # absurdly nested JSON in an area
        return _parse_lenient(text, width, height, "area nested too deeply")


def _number(value: float) -> str:
    return f"{value:.{MAX_DECIMALS}f}"


def format_area(boxes: list[Box] | list[list[float]], depths: list[float | None]) -> str:
    """One ``<area>`` in canonical form (3 decimals, no spaces)."""
    items = []
    for box, depth in zip(boxes, depths, strict=True):
        coords = ",".join(_number(v) for v in box)
        item = '{"bbox_2d":[' + coords + "]"
        if depth is not None:
            item += ',"depth":' + _number(depth)
        items.append(item + "}")
    return "<area>[" + ",".join(items) + "]</area>"


def format_chain(chain: Chain) -> str:
    """The canonical text of a chain; ``format_chain(parse_chain(t)) == t`` for canonical t."""
    lines = ["<think>"]
    for step in chain.steps:
        if isinstance(step, Focus):
            lines.append(format_area(list(step.boxes), list(step.depths)))
        else:
            lines.append(f"<text>{step.text}</text>")
    lines += ["</think>", "<answer>", chain.answer or "", "</answer>"]
    return "\n".join(lines)
