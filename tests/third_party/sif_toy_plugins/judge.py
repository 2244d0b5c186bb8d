"""An answer judge from outside sifthinker: ``first-word`` scores 1 when the answer's first word
is the reference's, 0 otherwise, and fails (a judge failure, never a 0) on an empty answer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sifmodel.judge import JudgeItem, JudgeResult


class FirstWordJudge:
    model = "first-word"

    @classmethod
    def from_settings(cls, settings: Any) -> FirstWordJudge:
        return cls()

    def score_many(self, items: Sequence[JudgeItem], prompt: Any = None) -> list[JudgeResult]:
        results = []
        for item in items:
            said, reference = item.prediction.lower().split(), item.reference.lower().split()
            if not said:
                results.append(JudgeResult(None, "llm", "empty answer"))
            else:
                results.append(JudgeResult(float(said[0] == (reference or [""])[0]), "llm"))
        return results
