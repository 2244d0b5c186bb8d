from __future__ import annotations

import numpy as np
import pytest
from conftest import VISCOT, VISCOT_SUBSETS
from hypothesis import given, settings
from hypothesis import strategies as st

from sifdata import format_chain, parse_chain, plan_focus, reverse_expand
from sifdata.builder.expand import FULL_IMAGE
from sifdata.geometry import iou
from sifdata.schema import Chain, Focus, Text
from sifdata.sources import viscot


def _chain_from_plan(steps: list[list[tuple]], depth: float = 0.5) -> str:
    parts: list[Focus | Text] = []
    for boxes in steps:
        parts += [Focus(boxes=boxes, depths=[depth] * len(boxes)), Text(text="step")]
    return format_chain(Chain(steps=parts, answer="answer"))


@pytest.mark.parametrize("subset", VISCOT_SUBSETS)
def test_every_real_record_expands_into_a_strict_chain(subset: str) -> None:
    records = list(
        viscot.read(VISCOT / "benchmark" / f"{subset}.json", sizes=VISCOT / "benchmark_det" / f"{subset}.jsonl")
    )
    assert records
    for record in records:
        steps = reverse_expand(record.gt_boxes, record.width, record.height, seed=int(record.source_id))
        chain = parse_chain(_chain_from_plan(steps))  # strict: raises on any violation
        assert chain.focus_steps[0].boxes == [FULL_IMAGE] or steps == [steps[-1]]
        expected_last = [tuple(round(v, 3) for v in box) for box in record.gt_boxes]
        assert np.allclose(chain.last_boxes, expected_last, atol=0.0011), record.key


def test_expansion_grows_toward_the_room_on_each_side() -> None:
    # A box in the bottom-right: the original grew it by one pixel; here every side moves
    # by a fifth of the room on that side.
    width, height = 1000, 800
    box = (700 / width, 600 / height, 900 / width, 700 / height)
    plan = plan_focus([box], width, height, seed=0, select_probability=0.0)
    assert [step.kind for step in plan] == ["full", "expand", "target"]
    expanded = plan[1].boxes[0]
    assert expanded == pytest.approx((0.56, 0.6, 0.92, 0.9), abs=0.0006)  # 700-140, 600-120, 900+20, 700+20
    centred = plan_focus([(0.4, 0.4, 0.6, 0.6)], 100, 100, select_probability=0.0)[1].boxes[0]
    assert centred == pytest.approx((0.32, 0.32, 0.68, 0.68))  # symmetric for a centred box


def test_plans_are_deterministic_for_a_seed_and_vary_across_seeds() -> None:
    box = [(0.45, 0.45, 0.5, 0.52)]
    assert plan_focus(box, 640, 480, seed=7) == plan_focus(box, 640, 480, seed=7)
    kinds = {tuple(step.kind for step in plan_focus(box, 640, 480, seed=s)) for s in range(40)}
    assert ("full", "select", "expand", "target") in kinds and ("full", "expand", "target") in kinds


def test_distractor_is_a_wrong_box_of_similar_size() -> None:
    found = 0
    for seed in range(60):
        plan = plan_focus([(0.3, 0.3, 0.4, 0.45)], 500, 400, seed=seed)
        select = [step for step in plan if step.kind == "select"]
        if not select:
            continue
        found += 1
        (distractor,) = select[0].boxes
        expansion = next(step for step in plan if step.kind == "expand").boxes[0]
        assert iou(distractor, expansion) < 0.002  # < 0.001 before rounding to 3 decimals
        assert iou(distractor, plan[-1].boxes[0]) < 0.002
        ratio = ((distractor[2] - distractor[0]) * (distractor[3] - distractor[1])) / (
            (expansion[2] - expansion[0]) * (expansion[3] - expansion[1])
        )
        assert 0.3 < ratio < 2.6
    assert found >= 15


def test_several_boxes_get_a_merge_step_and_overlaps_merge() -> None:
    plan = plan_focus([(0.1, 0.1, 0.2, 0.2), (0.7, 0.7, 0.8, 0.9)], 400, 300, seed=1, select_probability=0.0)
    assert [step.kind for step in plan] == ["full", "merge", "expand", "target"]
    assert len(plan[2].boxes) == 2
    assert plan[1].boxes == [(0.08, 0.08, 0.84, 0.92)]
    overlapping = plan_focus([(0.4, 0.4, 0.5, 0.5), (0.48, 0.48, 0.6, 0.6)], 100, 100, select_probability=0.0)
    assert [step.kind for step in overlapping] == ["full", "expand", "target"]  # expansions merged into one box


def test_whole_image_truth_is_a_single_step() -> None:
    assert reverse_expand([(0, 0, 1, 1)], 100, 100) == [[FULL_IMAGE]]
    with pytest.raises(ValueError):
        reverse_expand([], 100, 100)


small = st.integers(0, 999)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(small, small, st.integers(1, 500), st.integers(1, 500)), min_size=1, max_size=4),
    st.integers(16, 4000),
    st.integers(16, 4000),
    st.integers(0, 2**31),
)
def test_any_truth_gives_a_strict_plan(raw: list, width: int, height: int, seed: int) -> None:
    boxes = [(x / 1000, y / 1000, min(x + w, 1000) / 1000, min(y + h, 1000) / 1000) for x, y, w, h in raw]
    boxes = [b for b in boxes if b[0] < b[2] and b[1] < b[3]]
    if not boxes:
        return
    steps = reverse_expand(boxes, width, height, seed=seed)
    parse_chain(_chain_from_plan(steps))
    assert steps[0] == [FULL_IMAGE] or len(steps) == 1
