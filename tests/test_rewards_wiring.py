"""The rewards' state and wiring, each expectation by hand (issue 23): what the judge is asked,
the statistics a training log reads, the progress file, the depth-map cache, the TRL reward
functions and the module-level defaults."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from recording_judge import RecordingJudge

from sifdata.depth import save_depth_png
from sifmodel import rewards as module
from sifmodel.judge import JudgeItem, JudgeResult, LLMJudge
from sifmodel.rewards import (
    DepthMapCache,
    JudgeFailure,
    ProgressState,
    SIFRewards,
    accuracy_reward_of,
    box_iou_reward_of,
    depth_reward_of,
    format_reward_of,
)

STRICT_TAIL = "<text>look</text></think><answer>{}</answer>"


def completion(answer: str, area: str = '[{"bbox_2d":[0.1,0.1,0.3,0.3],"depth":0.2}]') -> str:
    return f"<think><area>{area}</area>" + STRICT_TAIL.format(answer)


NO_ANSWER = '<think><area>[{"bbox_2d":[0.1,0.1,0.3,0.3],"depth":0.2}]</area><text>look</text></think>'


def test_the_judge_is_asked_the_question_the_reference_the_answer_and_the_rgb_image() -> None:
    rgb, depth, other = (Image.new("RGB", (4, 4), colour) for colour in ("red", "gray", "blue"))
    judge = RecordingJudge({"a red mug": JudgeResult(1.0, "llm"), "a blue cup": JudgeResult(0.25, "llm")})
    rewards = SIFRewards(judge)
    scores = rewards.accuracy(
        [completion("a red mug"), completion("a blue cup"), NO_ANSWER],
        answer=["red mug", "blue mug", "green mug"],
        question=["what is red?", "what is blue?", "what is green?"],
        images=[[rgb, depth], other, []],
    )
    assert scores == [1.0, 0.25, 0.0]
    assert judge.asked == [
        JudgeItem("what is red?", "red mug", "a red mug", rgb),
        JudgeItem("what is blue?", "blue mug", "a blue cup", other),
    ]
    judge.asked.clear()
    rewards.accuracy([completion("a red mug")], answer=["red mug"])  # no question, no images
    assert judge.asked == [JudgeItem("", "red mug", "a red mug", None)]


def test_the_statistics_count_every_completion_across_calls() -> None:
    judge = RecordingJudge(
        {
            "a red mug": JudgeResult(1.0, "llm"),
            "a mug": JudgeResult(0.5, "cache"),
            "?": JudgeResult(None, "none", "judge timed out"),
        }
    )
    rewards = SIFRewards(judge, failure_policy="mask")
    batch = [NO_ANSWER, completion("(A)"), completion("a red mug"), completion("a mug"), completion("?")]
    answers = ["(A)", "(A)", "red mug", "mug", "mug"]
    assert rewards.accuracy(batch, answer=answers) == [0.0, 1.0, 1.0, 0.5, None]
    assert rewards.accuracy(batch, answer=answers) == [0.0, 1.0, 1.0, 0.5, None]
    expected = {
        "judge/rule": 2,
        "judge/llm": 2,
        "judge/cache_hits": 2,
        "judge/failures": 2,
        "judge/masked": 2,
        "judge/no_answer": 2,
    }
    assert rewards.stats.as_dict() == expected
    assert rewards.gathered_stats() == expected  # one process: the sums are its own
    assert rewards.stats.last_failure == "judge timed out"


def test_a_judge_failure_under_raise_names_the_first_failed_completion() -> None:
    judge = RecordingJudge(
        {"?": JudgeResult(None, "none", "judge timed out"), "??": JudgeResult(None, "none", "later")}
    )
    rewards = SIFRewards(judge, failure_policy="raise")
    with pytest.raises(JudgeFailure) as raised:
        rewards.accuracy(
            [completion("(A)"), completion("?"), completion("??")],
            answer=["(A)", "x", "y"],
            sample_id=["s0", "s1", "s2"],
        )
    # One process: no "(and N more)" (that counts the other processes' failures).
    assert str(raised.value) == "could not judge completion 1 (sample s1): judge timed out"
    assert rewards.stats.masked == 0 and rewards.stats.judge_failures == 2


def test_bad_settings_and_mismatched_columns_are_errors() -> None:
    with pytest.raises(ValueError) as raised:
        SIFRewards(failure_policy="zero")  # type: ignore[arg-type]
    assert str(raised.value) == "failure_policy must be 'raise' or 'mask', got 'zero'"
    with pytest.raises(ValueError) as raised:
        SIFRewards(progress_reference="mean")  # type: ignore[arg-type]
    assert str(raised.value) == "progress_reference must be 'score' or 'reward', got 'mean'"
    with pytest.raises(ValueError) as raised:
        SIFRewards().functions(["format", "nope", "zzz"])
    assert str(raised.value) == "unknown reward(s) nope, zzz; the rewards are accuracy, box_iou, depth, format"
    rewards = SIFRewards()
    with pytest.raises(ValueError):
        rewards.accuracy([completion("(A)"), completion("(B)")], answer=["(A)"])
    with pytest.raises(ValueError):
        rewards.box_iou([completion("(A)"), completion("(B)")], gt_boxes=[[(0.1, 0.1, 0.3, 0.3)]])


def test_the_depth_tolerance_is_ten_percent_by_default(tmp_path: Path) -> None:
    path = str(save_depth_png(np.full((10, 10), 0.5, dtype=np.float32), tmp_path / "d.png"))
    within = completion("(A)", '[{"bbox_2d":[0.1,0.1,0.3,0.3],"depth":0.540}]')  # 8% off 0.5
    beyond = completion("(A)", '[{"bbox_2d":[0.1,0.1,0.3,0.3],"depth":0.575}]')  # 15% off 0.5
    assert SIFRewards().depth_consistency([within, beyond], depth_map=[path, path]) == [1.0, 0.0]
    loose = SIFRewards(depth_tolerance=0.2)
    assert loose.depth_consistency([within, beyond], depth_map=[path, path]) == [1.0, 1.0]
    with pytest.raises(ValueError):
        loose.depth_consistency([within, beyond], depth_map=[path])


def test_a_box_inverted_in_x_covers_nothing_whatever_its_height(tmp_path: Path) -> None:
    """x1 > x2 while y2 exceeds both x1 and y1: still an empty box, so its right depth is a miss."""
    path = str(save_depth_png(np.full((10, 10), 0.5, dtype=np.float32), tmp_path / "d.png"))
    inverted = completion("(A)", '[{"bbox_2d":[0.5,0.1,0.2,0.9],"depth":0.5}]')
    upright = completion("(A)", '[{"bbox_2d":[0.2,0.1,0.5,0.9],"depth":0.5}]')
    assert SIFRewards().depth_consistency([inverted, upright], depth_map=[path, path]) == [0.0, 1.0]


def test_the_progress_file_is_sorted_json_in_any_new_folder(tmp_path: Path) -> None:
    state = ProgressState()
    state.update({"b": 0.25, "a": 0.5})
    folder = tmp_path / "run" / "checkpoint-10"
    path = state.save(folder)
    assert path == folder / "sif_progress_state.json"
    assert path.read_text(encoding="utf-8") == '{"format": "sif-progress/1", "values": {"a": 0.5, "b": 0.25}}'
    assert sorted(p.name for p in folder.iterdir()) == ["sif_progress_state.json"]  # no temporary file left
    restored = ProgressState()
    assert restored.load(folder) is True
    assert restored.values == {"a": 0.5, "b": 0.25}
    assert ProgressState().load(tmp_path / "empty") is False


def test_the_depth_cache_keeps_the_most_recent_maps_by_path(tmp_path: Path) -> None:
    paths = [
        save_depth_png(np.full((4, 4), value, dtype=np.float32), tmp_path / f"{i}.png")
        for i, value in enumerate((0.2, 0.6, 0.9))
    ]
    for path in paths:  # the same modification time: only the path tells them apart
        os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    assert DepthMapCache().size == 256  # the default bound: 256 decoded maps with their integral images
    cache = DepthMapCache(size=2)
    means = [round(float(cache.get(path).box_mean((0.0, 0.0, 1.0, 1.0))), 2) for path in paths[:2]]
    assert means == [0.2, 0.6]
    cache.get(paths[0])  # a hit: the first map is now the most recent
    assert cache.decoded == 2
    cache.get(paths[2])  # evicts the second, the least recently used
    cache.get(paths[0])
    assert cache.decoded == 3
    cache.get(paths[1])
    assert cache.decoded == 4


def test_the_trl_reward_functions_pass_their_columns_through(tmp_path: Path) -> None:
    path = str(save_depth_png(np.full((10, 10), 0.2, dtype=np.float32), tmp_path / "d.png"))
    rewards = SIFRewards()
    right, off = completion("(A)"), completion("(B)", '[{"bbox_2d":[0.6,0.6,0.9,0.9],"depth":0.9}]')
    columns = {
        "answer": ["(A)", "(A)"],
        "gt_boxes": [[(0.1, 0.1, 0.3, 0.3)]] * 2,
        "depth_map": [path, path],
        "sample_id": ["s", "s"],
    }
    assert format_reward_of(rewards)([right, "no tags"], **columns) == [1.0, 0.0]
    assert accuracy_reward_of(rewards)([right, off], **columns) == [1.0, 0.0]
    assert rewards.progress.values == {"s": 0.5}  # the function works on this object's state
    # One area, exactly the truth: it is both the first and the last focus, so 1 with no bonus.
    assert box_iou_reward_of(rewards)([right, off], **columns) == [1.0, 0.0]
    assert depth_reward_of(rewards)([right, off], **columns) == [1.0, 0.0]
    by_name = dict(
        zip(
            ["format", "accuracy", "box_iou", "depth"],
            rewards.functions(["format", "accuracy", "box_iou", "depth"]),
            strict=True,
        )
    )
    assert by_name["format"]([right, off], **columns) == [1.0, 1.0]
    assert by_name["accuracy"]([right, right], **columns) == [1.5, 1.5]  # 1 + (1 - 0.5), from the state above
    assert by_name["box_iou"]([off, right], **columns) == [0.0, 1.0]
    assert by_name["depth"]([off, right], **columns) == [0.0, 1.0]


def test_the_module_level_rewards_build_a_judge_only_when_both_settings_are_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SIF_JUDGE_BASE_URL", raising=False)
    monkeypatch.setenv("SIF_JUDGE_MODEL", "judge-model")
    monkeypatch.setattr(module, "_default", None)
    first = module.default_rewards()
    assert first.judge is None and module.default_rewards() is first  # built once
    assert module.format_reward([completion("(A)"), "plain text"], answer=["(A)", "(A)"]) == [1.0, 0.0]
    assert module.accuracy_reward([completion("(A)")], answer=["(A)"]) == [1.0]
    assert module.box_iou_reward([completion("(A)")], gt_boxes=[[(0.1, 0.1, 0.3, 0.3)]]) == [1.0]
    monkeypatch.setattr(module, "_default", None)
    monkeypatch.setenv("SIF_JUDGE_BASE_URL", "http://127.0.0.1:9/v1")
    judge = module.default_rewards().judge
    assert isinstance(judge, LLMJudge) and judge.model == "judge-model"
    monkeypatch.setattr(module, "_default", None)
    monkeypatch.delenv("SIF_JUDGE_MODEL")
    assert module.default_rewards().judge is None


def test_module_level_depth_reward(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(module, "_default", SIFRewards())
    path = str(save_depth_png(np.full((10, 10), 0.2, dtype=np.float32), tmp_path / "d.png"))
    assert module.depth_consistency_reward([completion("(A)")], depth_map=[path], answer=["(A)"]) == [1.0]
    assert json.loads(json.dumps(module.default_rewards().stats.as_dict()))["judge/rule"] == 0
