"""The four GRPO-SIF rewards, as TRL reward functions ``f(completions, **columns) -> list``.

1. ``format`` (0 or 1): the strict chain grammar holds.
2. ``accuracy`` (0..2): the judged score s of the last ``<answer>`` written (rules for options,
   yes/no and numbers; the configured judge model otherwise), plus progress: if this sample was
   seen before with reference s_prev and s >= s_prev, reward = s + (s - s_prev).
   **The reference (the decision in grpo-sif.md):** s_prev is the group mean of the judge's
   score s for the sample id, bonus *not* included, updated after each group (a mean of 0 is
   stored too), gathered across processes and saved with checkpoints.
   ``progress_reference="reward"`` keeps the original's reference instead (the group mean of
   the reward, bonus included), for reproducing it: it compares a value in [0, 2] with s in
   [0, 1] and switches the bonus off for good on the samples that improved most.
3. ``box_iou`` (0..2): H(P, G) = (IoU of the unions + Hungarian-matched IoU sum /
   min(|P|, |G|)) / 2; end = H(last area written, truth), start = H(first area with a box that
   is not the full image, truth), default the full image; reward = end + max(0, end - start).
4. ``depth`` (0..1): the fraction of stated (box, depth) pairs within 10% relative error of the
   depth map's mean inside the box.

**Scored as written** (a policy optimizes whatever pays; these are what it would find). Each
case, with what it scores, is a test in ``tests/test_rewards.py``:

=============================================================  ==================================
the completion                                                 reward
=============================================================  ==================================
an exact last area after which an empty ``<area></area>``      box IoU 0: the last area written
an exact area, then a last one of pixel numbers                box IoU 0 (pixels clip to the edge)
an exact area, then an unreadable last one                     box IoU 0
a last box with x2 = 1.09 (just past the edge)                 scored clipped to 1.0, not dropped
an inverted last box ([0.5, 0.5, 0.1, 0.1])                    box IoU 0: it covers nothing
an empty first area, then the exact box                        no progress bonus (not a start)
a stated depth of NaN, -0.2 or 1.7, or none at all             a miss in the depth denominator
a box reaching past the image with its true mean depth         scored on the clipped box
[0.001, 0.001, 1, 1] or [0, 0, 0.999, 1] as the first area     both are the full image
two ``<answer>`` tags, the last one empty                      accuracy 0: no answer, not the first
=============================================================  ==================================

Dataset columns read: ``gt_boxes`` (per-axis normalized), ``answer``, ``question``,
``depth_map`` (path of the 16-bit SIF depth PNG), ``sample_id``, and ``images`` (the RGB image
goes to the judge when ``with_image``). Completions may be strings or conversational lists.

Fixes over the original: a judge failure is never a silent 0 (policy ``raise``, agreed by every
process so that all stop together, or ``mask``: the sample's accuracy term is None, which TRL
leaves out, and it is counted); the progress record is explicit state keyed by ``sample_id``;
each depth map is decoded once and its integral image reused across completions.
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

from sifdata.chain import WrittenArea, parse_chain, read_areas, written_answer
from sifdata.chain_types import Chain
from sifdata.depth import DepthMap, load_depth_png
from sifdata.geometry import matched_iou, union_iou
from sifdata.plugins import Registry
from sifmodel.config import REWARD_GROUP
from sifmodel.judge import Judge, JudgeItem, LLMJudge, judge_answers

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
    """Decoded depth maps (with their integral images) by path, least recently used first out;
    at most ``size`` maps (256 by default: a training batch's images and many batches more)."""

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


FULL_IMAGE_TOLERANCE = 1e-3 + 1e-9  # 3-decimal rounding either way (the 1e-9: 0.999 is 1 - 0.001)


def _is_full_image(boxes: Sequence[Sequence[float]]) -> bool:
    return len(boxes) == 1 and all(
        abs(a - b) <= FULL_IMAGE_TOLERANCE for a, b in zip(boxes[0], FULL_IMAGE, strict=True)
    )


def _covers_something(box: Sequence[float]) -> bool:
    return box[2] > box[0] and box[3] > box[1]


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


@lru_cache(maxsize=8192)
def areas(text: str) -> tuple[WrittenArea, ...]:
    """The completion's areas as written (:func:`sifdata.chain.read_areas`), read once."""
    return tuple(read_areas(text))


def box_iou_score(text: str, gt_boxes: Sequence[Sequence[float]]) -> float:
    written = areas(text)
    if not written:
        return 0.0
    end = localization_score(written[-1].boxes, gt_boxes)
    starts = (a.boxes for a in written if any(map(_covers_something, a.boxes)) and not _is_full_image(a.boxes))
    start = localization_score(next(starts, [FULL_IMAGE]), gt_boxes)
    return end + max(0.0, end - start)


def depth_consistency_score(text: str, depth: DepthMap, tolerance: float = 0.1) -> float:
    written = areas(text)
    pairs = [(box, stated) for area in written for box, stated in zip(area.boxes, area.depths, strict=True)]
    total = len(pairs) + sum(area.unreadable for area in written)  # an unreadable box is a miss too
    if not total:
        return 0.0
    right = 0
    for box, stated in pairs:
        if not (0.0 <= stated <= 1.0) or not _covers_something(box):  # NaN fails the comparison
            continue
        mean = depth.box_mean(box)
        # 1e-6 keeps the boundary (exactly 10%) on the right side of float32 rounding.
        right += abs(stated - mean) <= tolerance * mean + 1e-6
    return right / total


def format_score(text: str) -> float:
    return 0.0 if parsed(text).issues else 1.0


# ----------------------------------------------------------------------------- rewards


REWARD_NAMES = ("format", "accuracy", "box_iou", "depth")  # the paper's four, its default
ProgressReference = Literal["score", "reward"]
RewardFunction = Callable[..., list[float | None]]  # TRL's: f(completions, **dataset_columns)
# What a ``sifmodel.rewards`` entry point names: given the rewards' shared state (the judge,
# the progress record, the depth-map cache, the statistics), the TRL reward function. TRL logs
# it under the function's ``__name__``.
RewardFactory = Callable[["SIFRewards"], RewardFunction]
REWARDS: Registry[RewardFactory] = Registry(
    group=REWARD_GROUP,
    noun="reward",
    accepts=callable,
    expected="a function taking SIFRewards and returning a TRL reward function",
)


class SIFRewards:
    """The four rewards with their state (progress, depth cache, judge, statistics)."""

    def __init__(
        self,
        judge: Judge | None = None,
        *,
        failure_policy: FailurePolicy = "mask",
        depth_tolerance: float = 0.1,
        progress: ProgressState | None = None,
        depth_cache: DepthMapCache | None = None,
        progress_reference: ProgressReference = "score",
    ) -> None:
        if failure_policy not in ("raise", "mask"):
            raise ValueError(f"failure_policy must be 'raise' or 'mask', got {failure_policy!r}")
        if progress_reference not in ("score", "reward"):
            raise ValueError(f"progress_reference must be 'score' or 'reward', got {progress_reference!r}")
        self.judge = judge
        self.failure_policy = failure_policy
        self.depth_tolerance = depth_tolerance
        self.progress = progress or ProgressState()
        self.depth_cache = depth_cache or DepthMapCache()
        self.progress_reference = progress_reference
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
        images: Sequence[Any] | None = None,
        **columns: Any,
    ) -> list[float | None]:
        count = len(completions)
        questions = list(question) if question is not None else [""] * count
        predictions = [written_answer(completion_text(c)) for c in completions]
        pictures = [_first_image(images[i]) if images is not None else None for i in range(count)]
        items = [
            JudgeItem(q, a, p or "", picture)
            for q, a, p, picture in zip(questions, answer, predictions, pictures, strict=True)
        ]
        judged = judge_answers([item for item in items if item.prediction], self.judge)
        scores: list[float | None] = []
        failure: str | None = None
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
                where = f"completion {index} (sample {_id(sample_id, index)})"
                failure = failure or f"could not judge {where}: {result.error}"
                if self.failure_policy == "mask":
                    with self.stats._lock:
                        self.stats.masked += 1
            scores.append(result.score)
        if self.failure_policy == "raise":
            # Every process learns of a failure on any of them before anyone raises: one rank
            # raising alone would leave the others waiting in the next collective until timeout.
            failures = [reason for reason in _gather([failure]) if reason]
            if failures:
                raise JudgeFailure(failures[0] + (f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""))
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
        stored = scores if self.progress_reference == "score" else rewards
        local = [(str(sample_id[i]), value) for i, value in enumerate(stored) if value is not None]
        sums: dict[str, list[float]] = {}
        for key, value in _gather(local):
            sums.setdefault(key, []).append(value)
        self.progress.update({key: sum(values) / len(values) for key, values in sums.items()})
        return rewards

    def functions(self, names: Sequence[str] = REWARD_NAMES) -> list[RewardFunction]:
        """The rewards named as TRL reward functions, in the order given: each name is a reward
        registered under ``sifmodel.rewards`` (the four built-ins ``format``, ``accuracy``,
        ``box_iou``, ``depth``, or another package's), built on this object's state (judge,
        progress, depth maps, statistics). An unknown name is an error naming the installed ones."""
        unknown = [name for name in names if name not in REWARDS.names()]
        if unknown:
            raise ValueError(f"unknown reward(s) {', '.join(unknown)}; the rewards are {', '.join(REWARDS.names())}")
        return [REWARDS.load(name)(self) for name in names]

    def gathered_stats(self) -> dict[str, float]:
        """The statistics summed over every process (a collective call: every rank must make it)."""
        totals: dict[str, float] = {}
        for part in _gather([self.stats.as_dict()]):
            for key, value in part.items():
                totals[key] = totals.get(key, 0) + value
        return totals


def format_reward_of(rewards: SIFRewards) -> RewardFunction:
    def format_reward(completions: Sequence[Any], **columns: Any) -> list[float | None]:
        return list(rewards.format(completions, **columns))

    return format_reward


def accuracy_reward_of(rewards: SIFRewards) -> RewardFunction:
    def accuracy_reward(completions: Sequence[Any], **columns: Any) -> list[float | None]:
        return rewards.accuracy(completions, **columns)

    return accuracy_reward


def box_iou_reward_of(rewards: SIFRewards) -> RewardFunction:
    def box_iou_reward(completions: Sequence[Any], **columns: Any) -> list[float | None]:
        return list(rewards.box_iou(completions, **columns))

    return box_iou_reward


def depth_reward_of(rewards: SIFRewards) -> RewardFunction:
    def depth_consistency_reward(completions: Sequence[Any], **columns: Any) -> list[float | None]:
        return list(rewards.depth_consistency(completions, **columns))

    return depth_consistency_reward


def _first_image(cell: Any) -> Any:
    """The RGB image of a row's ``images`` (a list: RGB, then depth), for the judge."""
    if isinstance(cell, list | tuple):
        return cell[0] if cell else None
    return cell


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
