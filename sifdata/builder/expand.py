"""Reverse expansion: from the ground-truth boxes out to the whole image (pipeline.md).

The plan is read forwards by the writer: full image -> (distractor) -> (merge) -> expansion
-> ground truth. Unlike the original, each side of a box grows by its own share of the
space available on that side (the original's step ``max(rem_x*W/r, rem_y*H/r, 1)`` let boxes
in the bottom-right half grow by one pixel), and the only randomness (the distractor) comes
from the seed, so a plan is reproducible from ``(boxes, size, seed)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from sifdata.chain_types import Box
from sifdata.geometry import iou, union_box

StepKind = Literal["full", "select", "merge", "expand", "target"]
FULL_IMAGE: Box = (0.0, 0.0, 1.0, 1.0)


@dataclass(frozen=True)
class PlannedStep:
    """One focus step of a plan: why it is there (``kind``) and its normalized boxes."""

    kind: StepKind
    boxes: list[Box]


def _grow(box: Box, width: float, height: float, fraction: float) -> Box:
    x1, y1, x2, y2 = box
    return (x1 - x1 * fraction, y1 - y1 * fraction, x2 + (width - x2) * fraction, y2 + (height - y2) * fraction)


def _overlap(a: Box, b: Box) -> bool:
    return min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])


def merge_overlapping(boxes: Sequence[Box]) -> list[Box]:
    """Replace every group of overlapping boxes by their union, until none overlap."""
    merged = list(boxes)
    changed = True
    while changed:
        changed = False
        for i in range(len(merged)):
            for j in range(i + 1, len(merged)):
                if _overlap(merged[i], merged[j]):
                    merged[i] = union_box([merged[i], merged[j]])
                    del merged[j]
                    changed = True
                    break
            if changed:
                break
    return merged


def _distractor(base: Box, avoid: Sequence[Box], width: float, height: float, rng: np.random.Generator) -> Box | None:
    """A wrong box of similar size beside a corner (or an edge) of ``base``, inside the image.

    Its size is ``base`` grown 20% about its centre and scaled by U(0.7, 1.3); it must keep at
    least half that area after clipping and have IoU < 0.001 with ``base`` and every box in
    ``avoid``. None when the image has no such room.
    """
    scale = 1.2 * rng.uniform(0.7, 1.3)
    w, h = (base[2] - base[0]) * scale, (base[3] - base[1]) * scale
    x1, y1, x2, y2 = base
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    corners = [(x1 - w, y1 - h), (x2, y1 - h), (x1 - w, y2), (x2, y2)]
    edges = [(x1 - w, cy - h / 2), (x2, cy - h / 2), (cx - w / 2, y1 - h), (cx - w / 2, y2)]
    for group in (corners, edges):
        for index in rng.permutation(len(group)):
            left, top = group[index]
            box = (max(left, 0.0), max(top, 0.0), min(left + w, width), min(top + h, height))
            if box[2] - box[0] <= 0 or box[3] - box[1] <= 0:
                continue
            if (box[2] - box[0]) * (box[3] - box[1]) < 0.5 * w * h:
                continue
            if all(iou(box, other) < 0.001 for other in (base, *avoid)):
                return box
    return None


def _normalized(box: Box, width: float, height: float) -> Box:
    """Per-axis normalized, 3 decimals, and still a proper box after rounding."""
    x1, y1, x2, y2 = (round(v, 3) for v in (box[0] / width, box[1] / height, box[2] / width, box[3] / height))
    x1, y1 = max(x1, 0.0), max(y1, 0.0)
    x2, y2 = min(x2, 1.0), min(y2, 1.0)
    if x2 <= x1:
        x1, x2 = (x1, round(x1 + 0.001, 3)) if x1 < 1.0 else (0.999, 1.0)
    if y2 <= y1:
        y1, y2 = (y1, round(y1 + 0.001, 3)) if y1 < 1.0 else (0.999, 1.0)
    return (x1, y1, x2, y2)


def plan_focus(
    gt_boxes: Sequence[Sequence[float]],
    width: int,
    height: int,
    seed: int = 0,
    *,
    select_probability: float = 0.5,
    expansion_steps: int = 5,
) -> list[PlannedStep]:
    """The planned focus steps in reading order: full image first, ground truth last.

    ``gt_boxes`` are per-axis normalized. Expansion grows each side by 1/``expansion_steps``
    of the room on that side (the first of the original's five steps; the rest were
    discarded), overlapping boxes merge, several boxes get a merge step with their union, and
    with probability ``select_probability`` a distractor step precedes it.
    """
    if not gt_boxes:
        raise ValueError("reverse expansion needs at least one ground-truth box")
    rng = np.random.default_rng(seed)
    w, h = float(width), float(height)
    target = [(b[0] * w, b[1] * h, b[2] * w, b[3] * h) for b in gt_boxes]
    expanded = merge_overlapping([_grow(b, w, h, 1.0 / expansion_steps) for b in target])
    merged = union_box(expanded)
    wants_select = rng.random() < select_probability
    steps: list[PlannedStep] = [PlannedStep("full", [FULL_IMAGE])]
    if wants_select:
        distractor = _distractor(merged, target, w, h, rng)
        if distractor is not None:
            steps.append(PlannedStep("select", [_normalized(distractor, w, h)]))
    if len(expanded) > 1:
        steps.append(PlannedStep("merge", [_normalized(merged, w, h)]))
    steps.append(PlannedStep("expand", [_normalized(b, w, h) for b in expanded]))
    steps.append(PlannedStep("target", [_normalized(b, w, h) for b in target]))
    # A step identical to the one before it adds nothing (e.g. a ground truth that is the
    # whole image); keep the later one so the plan still ends at the ground truth.
    deduplicated: list[PlannedStep] = []
    for step in steps:
        if deduplicated and deduplicated[-1].boxes == step.boxes:
            deduplicated[-1] = PlannedStep("target" if step.kind == "target" else deduplicated[-1].kind, step.boxes)
            continue
        deduplicated.append(step)
    return deduplicated


def reverse_expand(gt_boxes: Sequence[Sequence[float]], width: int, height: int, seed: int = 0) -> list[list[Box]]:
    """The planned focus steps' boxes in reading order (full image first, ground truth last)."""
    return [step.boxes for step in plan_focus(gt_boxes, width, height, seed)]
