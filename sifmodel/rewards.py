"""The four GRPO-SIF rewards, as TRL reward functions ``f(completions, **columns) -> list``.

1. ``format_reward`` (0 or 1): the strict chain grammar holds.
2. ``accuracy_reward`` (0..2): the judged score s of the ``<answer>`` (rules for options,
   yes/no and numbers; the configured judge model otherwise), plus progress: if this sample
   was seen before with stored value s_prev and s >= s_prev, reward = s + (s - s_prev). The
   stored value is the group mean of this reward for the sample, updated after each group.
3. ``box_iou_reward`` (0..2): H(P, G) = (IoU of the unions + Hungarian-matched IoU sum /
   min(|P|, |G|)) / 2; end = H(last area, truth), start = H(first area that is not the full
   image, truth); reward = end + max(0, end - start).
4. ``depth_consistency_reward`` (0..1): the fraction of stated (box, depth) pairs within 10%
   relative error of the depth map's mean inside the box.

Dataset columns read: ``gt_boxes`` (per-axis normalized), ``answer``, ``question``,
``depth_map`` (path of the 16-bit SIF depth PNG) and ``sample_id``. Completions may be
strings or conversational message lists.

Fixes over the original: a judge failure is never a silent 0 (policy ``raise``, or ``mask``:
the sample's accuracy term is None, which TRL leaves out, and it is counted); the progress
record is explicit state keyed by ``sample_id``, gathered across processes and saved with
checkpoints; each depth map is decoded once and its integral image reused across completions.
"""

from __future__ import annotations

import json
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from sifdata.chain import parse_chain
from sifdata.depth import DepthMap, load_depth_png
from sifdata.geometry import matched_iou, union_iou
from sifdata.schema import Chain
from sifmodel.judge import JudgeItem, LLMJudge, MatchJudge, judge_answers

FULL_IMAGE = (0.0, 0.0, 1.0, 1.0)
PROGRESS_FILE = "sif_progress_state.json"
FailurePolicy = Literal["raise", "mask"]


class JudgeFailure(RuntimeError):
    """Raised under the ``raise`` policy when an answer could not be judged."""


def completion_text(completion: Any) -> str:
    """The text of a completion given as a string or as conversational messages."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion:
        message = completion[-1]
        content = message.get("content", "") if isinstance(message, dict) else message
        if isinstance(content, list):
            return "".join(part.get("text") or "" for part in content if isinstance(part, dict))
        return str(content)
    return ""


# ----------------------------------------------------------------------------- state


class ProgressState:
    """The stored accuracy value per sample id, shared by every process, saved with checkpoints."""

    def __init__(self) -> None:
        self.values: dict[str, float] = {}
        self._lock = threading.Lock()

    def previous(self, sample_id: str) -> float | None:
        with self._lock:
            return self.values.get(sample_id)

    def update(self, group_means: dict[str, float]) -> None:
        with self._lock:
            self.values.update(group_means)

    def state_dict(self) -> dict[str, Any]:
        with self._lock:
            return {"format": "sif-progress/1", "values": dict(self.values)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with self._lock:
            self.values = {str(k): float(v) for k, v in state["values"].items()}

    def save(self, folder: str | Path) -> Path:
        path = Path(folder) / PROGRESS_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state_dict(), sort_keys=True), encoding="utf-8")
        tmp.replace(path)
        return path

    def load(self, folder: str | Path) -> bool:
        """Restore from a checkpoint folder; False if it holds no saved state."""
        path = Path(folder) / PROGRESS_FILE
        if not path.is_file():
            return False
        self.load_state_dict(json.loads(path.read_text(encoding="utf-8")))
        return True


@dataclass
class RewardStats:
    """What happened while judging, so that nothing is silent. Cumulative."""

    judged_by_rule: int = 0
    judged_by_llm: int = 0
    judge_cache_hits: int = 0
    judge_failures: int = 0
    masked: int = 0
    no_answer: int = 0
    last_failure: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def as_dict(self) -> dict[str, float]:
        with self._lock:
            return {
                "judge/rule": self.judged_by_rule,
                "judge/llm": self.judged_by_llm,
                "judge/cache_hits": self.judge_cache_hits,
                "judge/failures": self.judge_failures,
                "judge/masked": self.masked,
                "judge/no_answer": self.no_answer,
            }


class DepthMapCache:
    """Decoded depth maps (with their integral images) by path, least recently used first out."""

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._maps: OrderedDict[tuple[str, int], DepthMap] = OrderedDict()
        self._lock = threading.Lock()
        self.decoded = 0

    def get(self, path: str | Path) -> DepthMap:
        key = (str(path), os.stat(path).st_mtime_ns)
        with self._lock:
            if key in self._maps:
                self._maps.move_to_end(key)
                return self._maps[key]
        depth = DepthMap(load_depth_png(path))
        depth.integral  # noqa: B018 - built once here, reused by every completion of the group
        with self._lock:
            self.decoded += 1
            self._maps[key] = depth
            while len(self._maps) > self.size:
                self._maps.popitem(last=False)
        return depth


def _gather(items: list[Any]) -> list[Any]:
    """Everyone's items when several processes train together (torch.distributed), else ours."""
    try:
        import torch.distributed as dist
    except ImportError:  # pragma: no cover - torch is a dependency
        return items
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        gathered: list[list[Any] | None] = [None] * dist.get_world_size()
        dist.all_gather_object(gathered, items)
        return [item for part in gathered if part for item in part]
    return items


# ----------------------------------------------------------------------------- scores


def _is_full_image(boxes: Sequence[Sequence[float]]) -> bool:
    return len(boxes) == 1 and all(abs(a - b) <= 1e-3 for a, b in zip(boxes[0], FULL_IMAGE, strict=True))


def localization_score(predicted: Sequence[Sequence[float]], truth: Sequence[Sequence[float]]) -> float:
    """H(P, G) = (IoU of the unions + matched IoU sum / min(|P|, |G|)) / 2, in [0, 1]."""
    if not predicted or not truth:
        return 0.0
    return (union_iou(predicted, truth) + matched_iou(predicted, truth)) / 2


@lru_cache(maxsize=8192)
def parsed(text: str) -> Chain:
    """The lenient parse of a completion, shared by every reward of its group (parsed once).

    A chain that passed the strict grammar has no ``issues``, so the format reward reads it too.
    """
    return parse_chain(text, strict=False)


def box_iou_score(text: str, gt_boxes: Sequence[Sequence[float]]) -> float:
    focus = parsed(text).focus_steps
    if not focus:
        return 0.0
    end = localization_score(focus[-1].boxes, gt_boxes)
    first_focused = next((step.boxes for step in focus if not _is_full_image(step.boxes)), [FULL_IMAGE])
    start = localization_score(first_focused, gt_boxes)
    return end + max(0.0, end - start)


def depth_consistency_score(text: str, depth: DepthMap, tolerance: float = 0.1) -> float:
    pairs = [
        (box, stated)
        for step in parsed(text).focus_steps
        for box, stated in zip(step.boxes, step.depths, strict=True)
        if stated is not None
    ]
    if not pairs:
        return 0.0
    # 1e-6 keeps the boundary (exactly 10%) on the right side of float32 rounding.
    right = sum(abs(stated - (mean := depth.box_mean(box))) <= tolerance * mean + 1e-6 for box, stated in pairs)
    return right / len(pairs)


def format_score(text: str) -> float:
    return 0.0 if parsed(text).issues else 1.0


# ----------------------------------------------------------------------------- rewards


class SIFRewards:
    """The four rewards with their state (progress, depth cache, judge, statistics)."""

    def __init__(
        self,
        judge: LLMJudge | MatchJudge | None = None,
        *,
        failure_policy: FailurePolicy = "mask",
        depth_tolerance: float = 0.1,
        progress: ProgressState | None = None,
        depth_cache: DepthMapCache | None = None,
    ) -> None:
        if failure_policy not in ("raise", "mask"):
            raise ValueError(f"failure_policy must be 'raise' or 'mask', got {failure_policy!r}")
        self.judge = judge
        self.failure_policy = failure_policy
        self.depth_tolerance = depth_tolerance
        self.progress = progress or ProgressState()
        self.depth_cache = depth_cache or DepthMapCache()
        self.stats = RewardStats()

    def format(self, completions: Sequence[Any], **columns: Any) -> list[float]:
        return [format_score(completion_text(c)) for c in completions]

    def box_iou(self, completions: Sequence[Any], gt_boxes: Sequence[Any], **columns: Any) -> list[float]:
        return [box_iou_score(completion_text(c), boxes) for c, boxes in zip(completions, gt_boxes, strict=True)]

    def depth_consistency(self, completions: Sequence[Any], depth_map: Sequence[str], **columns: Any) -> list[float]:
        return [
            depth_consistency_score(completion_text(c), self.depth_cache.get(path), self.depth_tolerance)
            for c, path in zip(completions, depth_map, strict=True)
        ]

    def accuracy(
        self,
        completions: Sequence[Any],
        answer: Sequence[str],
        question: Sequence[str] | None = None,
        sample_id: Sequence[str] | None = None,
        **columns: Any,
    ) -> list[float | None]:
        count = len(completions)
        questions = list(question) if question is not None else [""] * count
        predictions = [parsed(completion_text(c)).answer for c in completions]
        items = [JudgeItem(q, a, p or "") for q, a, p in zip(questions, answer, predictions, strict=True)]
        judged = judge_answers([item for item, p in zip(items, predictions, strict=True) if p], self.judge)
        scores: list[float | None] = []
        results = iter(judged)
        for index, prediction in enumerate(predictions):
            if not prediction:  # no <answer>: wrong, and said so in the statistics
                with self.stats._lock:
                    self.stats.no_answer += 1
                scores.append(0.0)
                continue
            result = next(results)
            with self.stats._lock:
                if result.source == "rule":
                    self.stats.judged_by_rule += 1
                elif result.source == "cache":
                    self.stats.judge_cache_hits += 1
                elif result.ok:
                    self.stats.judged_by_llm += 1
                if not result.ok:
                    self.stats.judge_failures += 1
                    self.stats.last_failure = result.error
            if result.score is None:
                if self.failure_policy == "raise":
                    raise JudgeFailure(
                        f"could not judge completion {index} (sample {_id(sample_id, index)}): {result.error}"
                    )
                with self.stats._lock:
                    self.stats.masked += 1
            scores.append(result.score)
        return self._with_progress(scores, sample_id)

    def _with_progress(self, scores: list[float | None], sample_id: Sequence[str] | None) -> list[float | None]:
        if sample_id is None:
            return scores
        rewards: list[float | None] = []
        for index, score in enumerate(scores):
            previous = self.progress.previous(str(sample_id[index]))
            if score is None:
                rewards.append(None)
            elif previous is not None and score >= previous:
                rewards.append(score + (score - previous))
            else:
                rewards.append(score)
        local = [(str(sample_id[i]), r) for i, r in enumerate(rewards) if r is not None]
        sums: dict[str, list[float]] = {}
        for key, reward in _gather(local):
            sums.setdefault(key, []).append(reward)
        self.progress.update({key: sum(values) / len(values) for key, values in sums.items()})
        return rewards

    def functions(self) -> list[Callable[..., list[float | None]]]:
        """The four rewards as named functions, in the order of the paper."""

        def format_reward(completions: Sequence[Any], **columns: Any) -> list[float | None]:
            return list(self.format(completions, **columns))

        def accuracy_reward(completions: Sequence[Any], **columns: Any) -> list[float | None]:
            return self.accuracy(completions, **columns)

        def box_iou_reward(completions: Sequence[Any], **columns: Any) -> list[float | None]:
            return list(self.box_iou(completions, **columns))

        def depth_consistency_reward(completions: Sequence[Any], **columns: Any) -> list[float | None]:
            return list(self.depth_consistency(completions, **columns))

        return [format_reward, accuracy_reward, box_iou_reward, depth_consistency_reward]


def _id(sample_id: Sequence[str] | None, index: int) -> str:
    return str(sample_id[index]) if sample_id is not None else f"#{index}"


_default: SIFRewards | None = None


def default_rewards() -> SIFRewards:
    """The rewards the module-level functions use: a judge from ``SIF_JUDGE_*`` when set."""
    global _default
    if _default is None:
        judge = LLMJudge() if os.environ.get("SIF_JUDGE_MODEL") and os.environ.get("SIF_JUDGE_BASE_URL") else None
        _default = SIFRewards(judge)
    return _default


def format_reward(completions: Sequence[Any], **columns: Any) -> list[float]:
    return default_rewards().format(completions, **columns)


def accuracy_reward(completions: Sequence[Any], **columns: Any) -> list[float | None]:
    return default_rewards().accuracy(completions, **columns)


def box_iou_reward(completions: Sequence[Any], **columns: Any) -> list[float]:
    return default_rewards().box_iou(completions, **columns)


def depth_consistency_reward(completions: Sequence[Any], **columns: Any) -> list[float]:
    return default_rewards().depth_consistency(completions, **columns)
