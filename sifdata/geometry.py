"""Box conventions, explicit conversions between them, IoU, union IoU and matching.

The four conventions (sif-format.md), never guessed:

- pixel xyxy: pixels of the original image;
- per-axis normalized: x / width, y / height (SIF chains, SIF-50K ``bbox_3d``);
- padded-square normalized: the image pasted into a square of side S = max(W, H) at the
  integer offset ((S - W) // 2, (S - H) // 2), coordinates / S (Visual-CoT);
- pixel xywh: x, y, width, height (V*).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sifdata.chain_types import Box

BoxLike = Sequence[float]


def _square_offset(width: int, height: int) -> tuple[int, int, int]:
    side = max(width, height)
    return side, (side - width) // 2, (side - height) // 2


def pixel_to_normalized(box: BoxLike, width: int, height: int) -> Box:
    x1, y1, x2, y2 = box
    return (x1 / width, y1 / height, x2 / width, y2 / height)


def normalized_to_pixel(box: BoxLike, width: int, height: int) -> Box:
    x1, y1, x2, y2 = box
    return (x1 * width, y1 * height, x2 * width, y2 * height)


def padded_square_to_pixel(box: BoxLike, width: int, height: int) -> Box:
    side, offset_x, offset_y = _square_offset(width, height)
    x1, y1, x2, y2 = box
    return (x1 * side - offset_x, y1 * side - offset_y, x2 * side - offset_x, y2 * side - offset_y)


def pixel_to_padded_square(box: BoxLike, width: int, height: int) -> Box:
    side, offset_x, offset_y = _square_offset(width, height)
    x1, y1, x2, y2 = box
    return ((x1 + offset_x) / side, (y1 + offset_y) / side, (x2 + offset_x) / side, (y2 + offset_y) / side)


def normalized_to_padded_square(box: BoxLike, width: int, height: int) -> Box:
    return pixel_to_padded_square(normalized_to_pixel(box, width, height), width, height)


def padded_square_to_normalized(box: BoxLike, width: int, height: int) -> Box:
    return pixel_to_normalized(padded_square_to_pixel(box, width, height), width, height)


def xywh_to_xyxy(box: BoxLike) -> Box:
    x, y, w, h = box
    return (x, y, x + w, y + h)


def xyxy_to_xywh(box: BoxLike) -> Box:
    x1, y1, x2, y2 = box
    return (x1, y1, x2 - x1, y2 - y1)


def round_box(box: BoxLike, decimals: int = 3) -> Box:
    x1, y1, x2, y2 = (round(float(v), decimals) for v in box)
    return (x1, y1, x2, y2)


def clip_box(box: BoxLike, width: float = 1.0, height: float = 1.0) -> Box:
    x1, y1, x2, y2 = box
    return (min(max(x1, 0.0), width), min(max(y1, 0.0), height), min(max(x2, 0.0), width), min(max(y2, 0.0), height))


def area(box: BoxLike) -> float:
    x1, y1, x2, y2 = box
    return max(0.0, x2 - x1) * max(0.0, y2 - y1)


def intersection(a: BoxLike, b: BoxLike) -> float:
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


def iou(a: BoxLike, b: BoxLike) -> float:
    """Intersection over union of two xyxy boxes in the same convention; 0 for empty boxes."""
    inter = intersection(a, b)
    union = area(a) + area(b) - inter
    return inter / union if union > 0 else 0.0


def union_box(boxes: Sequence[BoxLike]) -> Box:
    """The smallest box holding all of ``boxes``."""
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


def union_iou(boxes_a: Sequence[BoxLike], boxes_b: Sequence[BoxLike]) -> float:
    """Exact IoU of the region covered by ``boxes_a`` with the region covered by ``boxes_b``.

    The union of rectangles is measured on the grid of all their edges, so overlapping
    boxes are not counted twice (a sum of areas would be).
    """
    if not boxes_a or not boxes_b:
        return 0.0
    if len(boxes_a) == 1 and len(boxes_b) == 1:  # the common case, exactly the plain IoU
        return iou(boxes_a[0], boxes_b[0])
    all_boxes = np.asarray(list(boxes_a) + list(boxes_b), dtype=np.float64)
    xs = np.unique(np.concatenate([all_boxes[:, 0], all_boxes[:, 2]]))
    ys = np.unique(np.concatenate([all_boxes[:, 1], all_boxes[:, 3]]))
    centres_x = (xs[:-1] + xs[1:]) / 2
    centres_y = (ys[:-1] + ys[1:]) / 2
    cell_area = np.outer(np.diff(ys), np.diff(xs))

    def covered(boxes: Sequence[BoxLike]) -> np.ndarray:
        grid = np.zeros(cell_area.shape, dtype=bool)
        for x1, y1, x2, y2 in boxes:
            inside_x = (centres_x > x1) & (centres_x < x2)
            inside_y = (centres_y > y1) & (centres_y < y2)
            grid |= np.outer(inside_y, inside_x)
        return grid

    in_a, in_b = covered(boxes_a), covered(boxes_b)
    union = float(cell_area[in_a | in_b].sum())
    return float(cell_area[in_a & in_b].sum()) / union if union > 0 else 0.0


def iou_matrix(boxes_a: Sequence[BoxLike], boxes_b: Sequence[BoxLike]) -> np.ndarray:
    a = np.asarray(boxes_a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(boxes_b, dtype=np.float64).reshape(-1, 4)
    inter_w = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    inter_h = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = inter_w * inter_h
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def hungarian_match(boxes_a: Sequence[BoxLike], boxes_b: Sequence[BoxLike]) -> list[tuple[int, int, float]]:
    """The one-to-one matching that maximizes total IoU: ``(index_a, index_b, iou)`` triples."""
    if not boxes_a or not boxes_b:
        return []
    from scipy.optimize import linear_sum_assignment  # imported here: scipy.optimize costs 0.3 s

    matrix = iou_matrix(boxes_a, boxes_b)
    rows, cols = linear_sum_assignment(matrix, maximize=True)
    return [(int(r), int(c), float(matrix[r, c])) for r, c in zip(rows, cols, strict=True)]


def matched_iou(boxes_a: Sequence[BoxLike], boxes_b: Sequence[BoxLike]) -> float:
    """Sum of Hungarian-matched IoUs divided by min(|A|, |B|) (grpo-sif.md); 0 if either is empty."""
    if not boxes_a or not boxes_b:
        return 0.0
    if len(boxes_a) == 1 or len(boxes_b) == 1:  # one-to-one matching of a single box: the best pair
        return max(iou(a, b) for a in boxes_a for b in boxes_b)
    pairs = hungarian_match(boxes_a, boxes_b)
    return sum(value for _, _, value in pairs) / min(len(boxes_a), len(boxes_b))
