from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import VISCOT, VISCOT_SUBSETS
from hypothesis import given, settings
from hypothesis import strategies as st

from sifdata import geometry
from sifdata.geometry import (
    clip_box,
    hungarian_match,
    iou,
    iou_matrix,
    matched_iou,
    padded_square_to_pixel,
    pixel_to_padded_square,
    round_box,
    union_box,
    union_iou,
)
from sifdata.sources import viscot


def _benchmark(subset: str) -> list[viscot.VisCoTRecord]:
    rejects: list = []
    records = list(
        viscot.read(
            VISCOT / "benchmark" / f"{subset}.json",
            sizes=VISCOT / "benchmark_det" / f"{subset}.jsonl",
            on_reject=rejects.append,
        )
    )
    assert rejects == []
    return records


@pytest.mark.parametrize("subset", VISCOT_SUBSETS)
def test_padded_square_box_converts_to_the_pixel_box_on_every_real_record(subset: str) -> None:
    """Turn 2 (padded-square, 3 decimals) and the '###' suffix (pixels, truncated) are one box."""
    rows = {str(r["question_id"]): r for r in json.loads((VISCOT / "benchmark" / f"{subset}.json").read_text())}
    records = _benchmark(subset)
    assert len(records) == len(rows)
    for record in records:
        marked = json.loads(rows[record.source_id]["image"][1].split("###")[1])
        side = max(record.width, record.height)
        converted = geometry.padded_square_to_pixel(record.gt_boxes_padded[0], record.width, record.height)
        # 3 decimals of the square side, plus integer truncation of the '###' box.
        tolerance = 0.0005 * side + 1.0
        assert np.allclose(converted, marked, atol=tolerance), (record.key, converted, marked)
        back = geometry.pixel_to_padded_square(converted, record.width, record.height)
        assert np.allclose(back, record.gt_boxes_padded[0], atol=1e-9)


def test_square_offsets_are_integer_floor_division() -> None:
    # 391 x 500: S = 500, offset x = (500 - 391) // 2 = 54 (not 54.5).
    assert geometry.pixel_to_padded_square((0, 0, 391, 500), 391, 500) == (54 / 500, 0.0, 445 / 500, 1.0)
    assert geometry.padded_square_to_pixel((54 / 500, 0.0, 445 / 500, 1.0), 391, 500) == pytest.approx((0, 0, 391, 500))


def test_named_conversions() -> None:
    assert geometry.pixel_to_normalized((10, 20, 30, 40), 100, 200) == (0.1, 0.1, 0.3, 0.2)
    assert geometry.normalized_to_pixel((0.1, 0.1, 0.3, 0.2), 100, 200) == pytest.approx((10, 20, 30, 40))
    assert geometry.xywh_to_xyxy((10, 20, 5, 6)) == (10, 20, 15, 26)
    assert geometry.xyxy_to_xywh((10, 20, 15, 26)) == (10, 20, 5, 6)


sizes = st.integers(min_value=1, max_value=4000)


@st.composite
def pixel_boxes(draw: st.DrawFn) -> tuple[tuple[float, float, float, float], int, int]:
    width, height = draw(sizes), draw(sizes)
    x1, x2 = sorted(draw(st.floats(0, width)) for _ in range(2))
    y1, y2 = sorted(draw(st.floats(0, height)) for _ in range(2))
    return (x1, y1, x2, y2), width, height


@settings(max_examples=300, deadline=None)
@given(pixel_boxes())
def test_conversions_round_trip(case: tuple) -> None:
    box, width, height = case
    assert geometry.normalized_to_pixel(
        geometry.pixel_to_normalized(box, width, height), width, height
    ) == pytest.approx(box, abs=1e-6)
    assert geometry.padded_square_to_pixel(
        geometry.pixel_to_padded_square(box, width, height), width, height
    ) == pytest.approx(box, abs=1e-6)
    normalized = geometry.pixel_to_normalized(box, width, height)
    padded = geometry.normalized_to_padded_square(normalized, width, height)
    assert all(-1e-9 <= v <= 1 + 1e-9 for v in padded)
    assert geometry.padded_square_to_normalized(padded, width, height) == pytest.approx(normalized, abs=1e-9)


unit_boxes = st.tuples(st.floats(0, 0.9), st.floats(0, 0.9), st.floats(0.01, 0.5), st.floats(0.01, 0.5)).map(
    lambda t: (t[0], t[1], min(t[0] + t[2], 1.0), min(t[1] + t[3], 1.0))
)


@settings(max_examples=300, deadline=None)
@given(unit_boxes, unit_boxes)
def test_iou_properties(a: tuple, b: tuple) -> None:
    value = geometry.iou(a, b)
    assert 0.0 <= value <= 1.0
    assert value == pytest.approx(geometry.iou(b, a))
    assert geometry.iou(a, a) == pytest.approx(1.0)
    assert geometry.union_iou([a], [b]) == pytest.approx(value, abs=1e-9)


def _raster_union_iou(boxes_a: list, boxes_b: list, grid: int = 400) -> float:
    mask_a = np.zeros((grid, grid), bool)
    mask_b = np.zeros((grid, grid), bool)
    for mask, boxes in ((mask_a, boxes_a), (mask_b, boxes_b)):
        for x1, y1, x2, y2 in boxes:
            mask[round(y1 * grid) : round(y2 * grid), round(x1 * grid) : round(x2 * grid)] = True
    return (mask_a & mask_b).sum() / (mask_a | mask_b).sum()


@st.composite
def grid_boxes(draw: st.DrawFn) -> tuple[float, ...]:
    x1 = draw(st.integers(0, 19))
    y1 = draw(st.integers(0, 19))
    x2 = draw(st.integers(x1 + 1, 20))
    y2 = draw(st.integers(y1 + 1, 20))
    return (x1 / 20, y1 / 20, x2 / 20, y2 / 20)


@settings(max_examples=150, deadline=None)
@given(st.lists(grid_boxes(), min_size=1, max_size=4), st.lists(grid_boxes(), min_size=1, max_size=4))
def test_union_iou_is_exact_for_overlapping_sets(boxes_a: list, boxes_b: list) -> None:
    assert geometry.union_iou(boxes_a, boxes_b) == pytest.approx(_raster_union_iou(boxes_a, boxes_b), abs=1e-9)


def test_union_iou_does_not_double_count_overlaps() -> None:
    a = [(0.0, 0.0, 0.5, 0.5), (0.25, 0.25, 0.75, 0.75)]  # union area 0.4375
    b = [(0.0, 0.0, 0.75, 0.75)]  # area 0.5625
    assert geometry.union_iou(a, b) == pytest.approx(0.4375 / 0.5625)


def test_matched_iou_uses_the_best_assignment() -> None:
    truth = [(0.0, 0.0, 0.2, 0.2), (0.5, 0.5, 0.7, 0.7)]
    predicted = [(0.5, 0.5, 0.7, 0.7), (0.0, 0.0, 0.2, 0.2), (0.9, 0.9, 1.0, 1.0)]
    assert geometry.matched_iou(predicted, truth) == pytest.approx(1.0)  # sum 2 / min(3, 2)
    assert sorted(geometry.hungarian_match(predicted, truth)) == [(0, 1, 1.0), (1, 0, 1.0)]
    assert geometry.matched_iou([], truth) == 0.0
    assert geometry.union_iou([], truth) == 0.0


# ----------------------------------------------------------------------------- edges (issue 23)


def _area(box: tuple[float, ...]) -> float:  # independent of sifdata.geometry: the definition
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    inter = _area((max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])))
    union = _area(a) + _area(b) - inter
    return inter / union if union > 0 else 0.0


ODD_BOXES = [
    (0.1, 0.2, 0.6, 0.3),  # wide
    (0.2, 0.1, 0.3, 0.7),  # tall, crossing the wide one
    (0.5, 0.5, 0.1, 0.1),  # inverted: covers nothing
    (0.4, 0.4, 0.4, 0.9),  # zero width
    (0.0, 0.0, 1.0, 1.0),
    (0.7, 0.6, 0.95, 0.65),
    (0.5, 0.1, 0.1, 0.6),  # inverted in x only
    (0.1, 0.6, 0.6, 0.2),  # inverted in y only
    (0.1, 0.1, 0.5, 0.2),  # beside (0.2, 0.6, 0.4, 0.8) in x, apart in y
    (0.2, 0.6, 0.4, 0.8),
]


def test_iou_matrix_is_the_pairwise_iou_on_odd_boxes() -> None:
    matrix = iou_matrix(ODD_BOXES, ODD_BOXES[::-1])
    expected = [_iou(a, b) for a in ODD_BOXES for b in ODD_BOXES[::-1]]
    assert matrix.shape == (10, 10) and matrix.ravel().tolist() == pytest.approx(expected)
    assert iou((0.5, 0.5, 0.1, 0.1), (0.4, 0.4, 0.4, 0.9)) == 0.0  # nothing covered: 0, never 1 or 0/0
    assert iou_matrix([(0.5, 0.5, 0.1, 0.1)], [(0.4, 0.4, 0.4, 0.9)]).tolist() == [[0.0]]
    # Pixel boxes as integers: 25 / (100 + 100 - 25).
    assert iou_matrix([(0, 0, 10, 10)], [(5, 5, 15, 15)]).tolist() == [[pytest.approx(25 / 175)]]


def _raster(boxes: list[tuple[int, int, int, int]], size: int = 40) -> set[tuple[int, int]]:
    return {(x, y) for x1, y1, x2, y2 in boxes for x in range(x1, x2) for y in range(y1, y2)}


def test_union_iou_is_the_covered_cells_ratio() -> None:
    """Boxes on a 40-unit grid, against counting the unit cells each union covers."""
    cases = [
        ([(0, 0, 20, 10), (10, 5, 30, 25)], [(5, 5, 25, 30)]),
        ([(0, 0, 10, 10)], [(5, 5, 15, 15), (0, 0, 10, 10)]),
        ([(2, 3, 9, 30), (2, 3, 9, 30)], [(0, 0, 40, 4)]),  # a box twice: counted once
        ([(0, 0, 40, 40)], [(10, 10, 12, 30), (11, 11, 39, 13)]),
    ]
    for boxes_a, boxes_b in cases:
        a, b = _raster(boxes_a), _raster(boxes_b)
        expected = len(a & b) / len(a | b)
        scaled = [[tuple(v / 40 for v in box) for box in boxes] for boxes in (boxes_a, boxes_b)]
        assert union_iou(*scaled) == pytest.approx(expected), (boxes_a, boxes_b)
    assert union_iou([(0.5, 0.5, 0.1, 0.1), (0.3, 0.3, 0.3, 0.6)], [(0.4, 0.4, 0.4, 0.9)]) == 0.0  # nothing covered


def test_matching_is_the_best_one_to_one_assignment() -> None:
    """Against every permutation (an independent search), on boxes where greedy picks wrong."""
    import itertools

    a = [(0.0, 0.0, 0.5, 0.5), (0.1, 0.1, 0.6, 0.6), (0.5, 0.5, 1.0, 1.0)]
    b = [(0.05, 0.05, 0.55, 0.55), (0.0, 0.0, 0.45, 0.45), (0.6, 0.6, 1.0, 1.0)]
    best = max(sum(_iou(a[i], b[j]) for i, j in enumerate(perm)) for perm in itertools.permutations(range(3)))
    matched = hungarian_match(a, b)
    assert sum(value for _, _, value in matched) == pytest.approx(best)
    assert sorted(i for i, _, _ in matched) == [0, 1, 2] and sorted(j for _, j, _ in matched) == [0, 1, 2]
    assert matched_iou(a, b) == pytest.approx(best / 3)
    assert matched_iou([a[0]], b) == pytest.approx(max(_iou(a[0], box) for box in b))  # one box: its best pair
    assert matched_iou(a, [b[2]]) == pytest.approx(max(_iou(box, b[2]) for box in a))
    assert hungarian_match([], b) == [] and matched_iou(a, []) == 0.0


def test_the_small_helpers_by_hand() -> None:
    assert clip_box((-0.2, 0.3, 1.4, 0.9)) == (0.0, 0.3, 1.0, 0.9)
    assert clip_box((0.1, 0.2, 0.5, 0.6)) == (0.1, 0.2, 0.5, 0.6)  # inside: unchanged
    assert clip_box((0.2, -0.1, 0.5, 1.3)) == (0.2, 0.0, 0.5, 1.0)  # the unit square by default, both axes
    assert clip_box((-5, 50, 700, -1), 640, 480) == (0.0, 50, 640, 0.0)
    assert round_box((0.12345, 0.5, 0.98765, 1 / 3)) == (0.123, 0.5, 0.988, 0.333)
    assert round_box((0.12345, 0.5, 0.98765, 1 / 3), 1) == (0.1, 0.5, 1.0, 0.3)
    assert union_box([(0.2, 0.5, 0.4, 0.6), (0.1, 0.55, 0.3, 0.9), (0.3, 0.4, 0.35, 0.45)]) == (0.1, 0.4, 0.4, 0.9)
    # An odd difference of sides: the padding is whole pixels, (5 - 2) // 2 = 1 above.
    assert pixel_to_padded_square((0, 0, 5, 2), 5, 2) == (0.0, 0.2, 1.0, 0.6)
    assert padded_square_to_pixel((0.0, 0.2, 1.0, 0.6), 5, 2) == pytest.approx((0, 0, 5, 2))
    assert pixel_to_padded_square((0, 0, 2, 5), 2, 5) == (0.2, 0.0, 0.6, 1.0)
