"""A judge that answers from a script and records what it was asked: the boundary stand-in for
a judge model in tests of what the rewards and the benchmarks send it (the real ``LLMJudge`` is
tested against a loopback server in test_judge_client.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sifmodel.judge import JudgeItem, JudgeResult


class RecordingJudge:
    def __init__(self, script: dict[str, JudgeResult], model: str = "recording", concurrency: int = 1) -> None:
        self.script, self.model, self.concurrency = script, model, concurrency
        self.asked: list[JudgeItem] = []
        self.prompts: list[str | None] = []  # the name of the prompt of each call

    def score_many(self, items: Sequence[JudgeItem], prompt: Any = None) -> list[JudgeResult]:
        self.asked.extend(items)
        self.prompts.append(prompt.name if prompt else None)
        return [self.script[item.prediction] for item in items]
