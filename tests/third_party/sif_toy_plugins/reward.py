"""A GRPO reward from outside sifthinker: ``brevity`` pays 1 for a completion of at most 200
characters, else 0."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sifmodel.rewards import RewardFunction, SIFRewards, completion_text


def brevity_reward_of(rewards: SIFRewards) -> RewardFunction:
    def brevity_reward(completions: Sequence[Any], **columns: Any) -> list[float | None]:
        return [1.0 if len(completion_text(c)) <= 200 else 0.0 for c in completions]

    return brevity_reward
