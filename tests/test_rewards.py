from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sifdata.depth import DepthMap, save_depth_png
from sifmodel import rewards as module
from sifmodel.judge import MatchJudge
from sifmodel.rewards import (
    DepthMapCache,
    JudgeFailure,
    ProgressState,
    SIFRewards,
    box_iou_score,
    depth_consistency_score,
    format_score,
)


def chain(*areas: list[tuple[float, ...]], depths: list[list[float]] | None = None, answer: str = "(A)") -> str:
    parts = ["<think>"]
    for index, boxes in enumerate(areas):
        values = depths[index] if depths else [0.5] * len(boxes)
        items = ",".join(
            '{"bbox_2d":[' + ",".join(f"{v:.3f}" for v in box) + f'],"depth":{d:.3f}' + "}"
            for box, d in zip(boxes, values, strict=True)
        )
        parts += [f"<area>[{items}]</area>", "<text>look</text>"]
    parts += ["</think>", f"<answer>{answer}</answer>"]
    return "\n".join(parts)


FULL = (0.0, 0.0, 1.0, 1.0)
TRUTH = [(0.1, 0.1, 0.3, 0.3)]


def test_format_reward_full_marks_and_each_violation() -> None:
    good = chain([FULL], [TRUTH[0]])
    assert format_score(good) == 1.0
    broken = [
        good.replace("<think>", ""),
        good.replace("</answer>", ""),
        good.replace("<text>look</text>", "<text> </text>", 1),
        good.replace('"depth":0.500', '"depth":0.5000', 1),
        good.replace("0.100", "10", 1),
        good.replace('"bbox_2d"', "'bbox_2d'", 1),
        good + " trailing prose",
        good.replace("<text>look</text>", "", 1),
    ]
    assert [format_score(text) for text in broken] == [0.0] * len(broken)


@pytest.mark.parametrize(
    ("areas", "expected"),
    [
        (([FULL], [TRUTH[0]]), 1.0),  # straight to the truth: end 1, start 1
        (([FULL], [(0.0, 0.0, 0.5, 0.5)], [TRUTH[0]]), 1.0 + (1.0 - 0.16)),  # progress bonus: start H = 0.16
        (([FULL],), 0.04),  # never left the full image: H = IoU 0.04
        (([FULL], [TRUTH[0]], [(0.6, 0.6, 0.9, 0.9)]), 0.0 + 0.0),  # ended somewhere wrong: no bonus
    ],
)
def test_box_iou_reward_with_progress(areas: tuple, expected: float) -> None:
    assert box_iou_score(chain(*areas), TRUTH) == pytest.approx(expected)


def test_box_iou_reward_multi_box_steps() -> None:
    truth = [(0.1, 0.1, 0.3, 0.3), (0.6, 0.6, 0.8, 0.8)]
    swapped = chain([FULL], [truth[1], truth[0]])
    assert box_iou_score(swapped, truth) == pytest.approx(1.0)
    half = chain([FULL], [truth[0]])  # one of two objects: union IoU 0.5, matched 1/1
    assert box_iou_score(half, truth) == pytest.approx((0.5 + 1.0) / 2)
    assert box_iou_score("no chain at all", truth) == 0.0


def test_depth_consistency_tolerance_edges(tmp_path: Path) -> None:
    depth = DepthMap(np.full((20, 20), 0.2, dtype=np.float32))
    box = (0.1, 0.1, 0.5, 0.5)
    for stated, right in [(0.2, 1.0), (0.22, 1.0), (0.18, 1.0), (0.221, 0.0), (0.179, 0.0)]:
        assert depth_consistency_score(chain([box], depths=[[stated]]), depth) == right, stated
    two = chain([box, (0.5, 0.5, 0.9, 0.9)], depths=[[0.2, 0.9]])
    assert depth_consistency_score(two, depth) == 0.5
    assert depth_consistency_score("<answer>x</answer>", depth) == 0.0


def test_depth_maps_are_decoded_once_per_image(tmp_path: Path) -> None:
    path = save_depth_png(np.full((10, 10), 0.2, dtype=np.float32), tmp_path / "d.png")
    rewards = SIFRewards()
    completions = [chain([(0.0, 0.0, 0.5, 0.5)], depths=[[0.2]])] * 8
    assert rewards.depth_consistency(completions, depth_map=[str(path)] * 8) == [1.0] * 8
    assert rewards.depth_cache.decoded == 1
    rewards.depth_consistency(completions, depth_map=[str(path)] * 8)
    assert rewards.depth_cache.decoded == 1  # a later group reuses it too


def test_depth_cache_evicts_least_recently_used(tmp_path: Path) -> None:
    cache = DepthMapCache(size=2)
    paths = [save_depth_png(np.zeros((4, 4)), tmp_path / f"{i}.png") for i in range(3)]
    for path in [*paths, paths[0]]:
        cache.get(path)
    assert cache.decoded == 4


def test_progress_reference_over_three_rounds_by_hand() -> None:
    """grpo-sif.md's decision: the reference is the group mean of the judge's score s (bonus not
    included); ``reward`` keeps the original's group mean of the reward (bonus included)."""
    right, wrong = chain([FULL], answer="(A)"), chain([FULL], answer="(B)")

    def group(*completions: str) -> dict:
        count = len(completions)
        return {
            "completions": list(completions),
            "answer": ["(A)"] * count,
            "question": ["q"] * count,
            "sample_id": ["s1"] * count,
        }

    ours, original = SIFRewards(), SIFRewards(progress_reference="reward")
    rounds = [group(right, wrong), group(right, wrong), group(right, right, right, wrong)]
    # round 1: no reference yet; s = [1, 0]; reference <- mean(s) = 0.5 (both ways: no bonus paid)
    # round 2: 1 >= 0.5 pays 1 + 0.5; ours stores mean(s) = 0.5, the original mean(1.5, 0) = 0.75
    # round 3: ours 1 + (1 - 0.5) = 1.5 again; the original 1 + (1 - 0.75) = 1.25, then stores
    #          mean(1.25, 1.25, 1.25, 0) = 0.9375 where ours stores mean(1, 1, 1, 0) = 0.75
    expected_ours = [[1.0, 0.0], [1.5, 0.0], [1.5, 1.5, 1.5, 0.0]]
    expected_original = [[1.0, 0.0], [1.5, 0.0], [1.25, 1.25, 1.25, 0.0]]
    references_ours, references_original = [0.5, 0.5, 0.75], [0.5, 0.75, 0.9375]
    for number, columns in enumerate(rounds):
        assert ours.accuracy(**columns) == expected_ours[number]
        assert original.accuracy(**columns) == expected_original[number]
        assert ours.progress.previous("s1") == references_ours[number]
        assert original.progress.previous("s1") == references_original[number]
    assert ours.accuracy([right], answer=["(A)"], question=["q"], sample_id=["other"]) == [1.0]


def test_accuracy_reads_conversational_completions_and_counts_missing_answers() -> None:
    rewards = SIFRewards()
    completions = [
        [{"role": "assistant", "content": chain([FULL], answer="Yes, it is.")}],
        [{"role": "assistant", "content": "no tags"}],
    ]
    assert rewards.accuracy(completions, answer=["yes", "yes"], question=["q", "q"]) == [1.0, 0.0]
    assert rewards.stats.no_answer == 1 and rewards.stats.judged_by_rule == 1


def test_free_form_answers_without_a_judge_are_masked_or_raise_never_zero() -> None:
    completion = chain([FULL], answer="A small brown dog.")
    masked = SIFRewards(failure_policy="mask")
    assert masked.accuracy([completion], answer=["a puppy"], question=["what?"], sample_id=["x"]) == [None]
    assert masked.stats.masked == 1 and "no judge model" in (masked.stats.last_failure or "")
    assert masked.progress.previous("x") is None  # a masked sample does not move the state
    with pytest.raises(JudgeFailure, match="sample x"):
        SIFRewards(failure_policy="raise").accuracy([completion], answer=["a puppy"], question=["q"], sample_id=["x"])


def test_match_judge_scores_free_form_answers_offline() -> None:
    rewards = SIFRewards(MatchJudge())
    completions = [chain([FULL], answer="The cup is red."), chain([FULL], answer="Blue.")]
    assert rewards.accuracy(completions, answer=["Red.", "Red."], question=["q", "q"]) == [1.0, 0.0]


def test_progress_state_round_trips(tmp_path: Path) -> None:
    state = ProgressState()
    state.update({"a": 0.5, "b": 1.25})
    state.save(tmp_path)
    restored = ProgressState()
    assert restored.load(tmp_path) and restored.values == {"a": 0.5, "b": 1.25}
    assert not ProgressState().load(tmp_path / "missing")


def test_reward_functions_have_trl_names_and_signatures() -> None:
    functions = SIFRewards(MatchJudge()).functions()
    assert [f.__name__ for f in functions] == [
        "format_reward",
        "accuracy_reward",
        "box_iou_reward",
        "depth_consistency_reward",
    ]
    assert module.format_reward([chain([FULL])], gt_boxes=[TRUTH], unrelated_column=[1]) == [1.0]
    chosen = SIFRewards(MatchJudge()).functions(["box_iou", "format"])  # by name, in the order given
    assert [f.__name__ for f in chosen] == ["box_iou_reward", "format_reward"]
    with pytest.raises(ValueError, match="unknown reward"):
        SIFRewards().functions(["format", "brevity"])


box_values = st.integers(0, 1000).map(lambda v: v / 1000)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(box_values, box_values, box_values, box_values), min_size=1, max_size=4), st.text(max_size=80)
)
def test_reward_ranges(raw: list, noise: str) -> None:
    boxes = [(min(a, c), min(b, d), max(a, c), max(b, d)) for a, b, c, d in raw]
    boxes = [b for b in boxes if b[0] < b[2] and b[1] < b[3]]
    text = chain([FULL], boxes) + noise if boxes else noise
    assert 0.0 <= box_iou_score(text, TRUTH) <= 2.0
    assert 0.0 <= depth_consistency_score(text, DepthMap(np.full((8, 8), 0.5, dtype=np.float32))) <= 1.0
    assert format_score(text) in (0.0, 1.0)


# ----------------------------------------------------------------------------- scored as written

EXACT = '{"bbox_2d":[0.100,0.100,0.300,0.300],"depth":0.500}'


def written(*areas: str, answer: str = "<answer>(A)</answer>") -> str:
    body = "".join(f"<area>{area}</area><text>look</text>" for area in areas)
    return f'<think><area>[{{"bbox_2d":[0,0,1,1],"depth":0.5}}]</area><text>x</text>{body}</think>{answer}'


@pytest.mark.parametrize(
    ("completion", "expected", "why"),
    [
        (written(f"[{EXACT}]"), 1.0, "the exact box last: full marks"),
        (written(f"[{EXACT}]", ""), 0.0, "an empty last area is the last area"),
        (written(f"[{EXACT}]", "[]"), 0.0, "an empty list too"),
        (written(f"[{EXACT}]", '[{"bbox_2d":[120,80,300,250],"depth":0.5}]'), 0.0, "pixel numbers clip to the edge"),
        (written(f"[{EXACT}]", "looking at the cup"), 0.0, "an unreadable last area"),
        (written('[{"bbox_2d":[0.300,0.300,0.100,0.100],"depth":0.5}]'), 0.0, "an inverted box covers nothing"),
        (written("", f"[{EXACT}]"), 1.0, "an empty first area is no start: no bonus"),
    ],
)
def test_the_last_area_written_is_the_last_area_scored(completion: str, expected: float, why: str) -> None:
    assert box_iou_score(completion, TRUTH) == pytest.approx(expected), why


def test_a_box_just_past_the_edge_is_clipped_not_dropped() -> None:
    past = written('[{"bbox_2d":[0.500,0.500,1.090,0.900],"depth":0.5}]')
    inside = written('[{"bbox_2d":[0.500,0.500,1.000,0.900],"depth":0.5}]')
    truth = [(0.5, 0.5, 1.0, 0.9)]
    assert box_iou_score(past, truth) == box_iou_score(inside, truth) == pytest.approx(1.0)


def test_impossible_depths_are_misses_in_the_denominator() -> None:
    depth = DepthMap(np.full((20, 20), 0.2, dtype=np.float32))
    good = '{"bbox_2d":[0.100,0.100,0.500,0.500],"depth":0.200}'
    for bad in ("NaN", "-0.2", "1.7"):
        completion = f'<think><area>[{good},{{"bbox_2d":[0.5,0.5,0.9,0.9],"depth":{bad}}}]</area><text>x</text></think><answer>a</answer>'
        assert depth_consistency_score(completion, depth) == 0.5, bad  # 1 of 2, never 1 of 1
    no_depth = f'<think><area>[{good},{{"bbox_2d":[0.5,0.5,0.9,0.9]}}]</area><text>x</text></think>'
    assert depth_consistency_score(no_depth, depth) == 0.5
    past = '<think><area>[{"bbox_2d":[0.5,0.5,1.3,0.9],"depth":0.200}]</area><text>x</text></think>'
    assert depth_consistency_score(past, depth) == 1.0  # scored on the clipped box


def test_the_full_image_tolerance_is_symmetric() -> None:
    for first in ((0.001, 0.001, 1.0, 1.0), (0.0, 0.0, 0.999, 1.0)):
        completion = chain([first], [(0.0, 0.0, 0.5, 0.5)], [TRUTH[0]])
        assert box_iou_score(completion, TRUTH) == pytest.approx(1.0 + (1.0 - 0.16)), first  # the start is [0,0,.5,.5]


def test_the_last_answer_written_is_the_answer() -> None:
    rewards = SIFRewards()
    two = written(f"[{EXACT}]", answer="<answer>(A)</answer><answer></answer>")
    assert rewards.accuracy([two], answer=["(A)"], question=["q"]) == [0.0]  # no answer, not the first one


# ----------------------------------------------------------------------------- edges (issue 23)


def test_completion_text_in_every_shape() -> None:
    from sifmodel.rewards import completion_text

    assert completion_text("plain") == "plain"
    assert completion_text([{"role": "assistant", "content": "as a message"}]) == "as a message"
    parts = [{"type": "text", "text": "a"}, {"type": "image"}, "stray", {"type": "text", "text": "b"}]
    assert completion_text([{"role": "user", "content": "q"}, {"role": "assistant", "content": parts}]) == "ab"
    assert completion_text([{"role": "assistant"}]) == ""  # no content: nothing said
    assert completion_text(["just text"]) == "just text"
    assert completion_text([]) == "" and completion_text(None) == ""


def test_depth_pairs_at_their_edges() -> None:
    """A stated depth of exactly 0 or 1 can be right; a box that covers nothing is a miss, in
    either axis; a miss does not stop the counting of the pairs after it."""
    values = np.zeros((20, 20), dtype=np.float32)
    values[:, 10:] = 1.0  # the left half at depth 0, the right half at 1
    depth = DepthMap(values)

    def score(*items: str) -> float:
        return depth_consistency_score(f"<think><area>[{','.join(items)}]</area><text>x</text></think>", depth)

    assert score('{"bbox_2d":[0.0,0.0,0.4,1.0],"depth":0.0}') == 1.0
    assert score('{"bbox_2d":[0.6,0.0,1.0,1.0],"depth":1.0}') == 1.0
    assert score('{"bbox_2d":[0.6,0.0,1.0,1.0],"depth":1.05}') == 0.0  # within 10% of 1, but not a depth
    assert score('{"bbox_2d":[0.7,0.2,0.7,0.6],"depth":1.0}') == 0.0  # no width
    assert score('{"bbox_2d":[0.7,0.6,0.9,0.6],"depth":1.0}') == 0.0  # no height
    assert score('{"bbox_2d":[0.9,0.2,0.7,0.6],"depth":1.0}') == 0.0  # inverted in x only
    good = '{"bbox_2d":[0.6,0.0,1.0,1.0],"depth":1.0}'
    assert score('{"bbox_2d":[0.6,0.0,1.0,1.0],"depth":NaN}', good) == 0.5  # the miss first, then counting goes on


def test_the_accuracy_statistics_count_each_path_once(tmp_path: Path) -> None:
    """What the training log reads, by hand: no answer, a rule, the judge model twice, the
    judge's cache, and a judge failure masked (issue 23)."""
    from chat_server import ScriptedChatServer

    from sifdata.llm import RetryPolicy
    from sifmodel.judge import LLMJudge

    with ScriptedChatServer() as server:  # judges 1.0 for an exact match, 0.25 otherwise
        judge = LLMJudge("j", server.base_url, "k", retry=RetryPolicy(1, base_delay=0.01), cache_dir=tmp_path / "cache")
        rewards = SIFRewards(judge, failure_policy="mask")
        completions = [
            "no tags at all",
            chain([FULL], answer="Yes."),
            chain([FULL], answer="a red cup"),
            chain([FULL], answer="blue"),
        ]
        answers = ["yes", "yes", "a red cup", "a red cup"]
        assert rewards.accuracy(completions, answer=answers, question=["q"] * 4) == [0.0, 1.0, 1.0, 0.25]
        assert (rewards.stats.no_answer, rewards.stats.judged_by_rule, rewards.stats.judged_by_llm) == (1, 1, 2)
        assert (rewards.stats.judge_cache_hits, rewards.stats.judge_failures, rewards.stats.masked) == (0, 0, 0)
        assert rewards.accuracy([completions[2]], answer=["a red cup"], question=["q"]) == [1.0]
        assert rewards.stats.judge_cache_hits == 1 and rewards.stats.judged_by_llm == 2
        server.default = "500"
        assert rewards.accuracy([chain([FULL], answer="green")], answer=["a red cup"], question=["q"]) == [None]
        assert (rewards.stats.judge_failures, rewards.stats.masked) == (1, 1)
        assert rewards.stats.no_answer == 1 and rewards.stats.judged_by_rule == 1
