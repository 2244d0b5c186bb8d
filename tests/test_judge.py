from __future__ import annotations

import pytest
from chat_server import ScriptedChatServer

from sifdata.answers import extract_choice
from sifdata.llm import RetryPolicy
from sifmodel.judge import JudgeItem, LLMJudge, parse_judge_reply, rule_score
from sifmodel.rewards import JudgeFailure, SIFRewards

SECRET = "judge-key-SECRET-999"


@pytest.mark.parametrize(
    ("reply", "letter"),
    [
        ("(B)", "B"),
        ("B", "B"),
        ("B. a cat", "B"),
        ("C) the left one", "C"),
        ("The answer is (D).", "D"),
        ("The answer is A", "A"),
        ("Based on the image, the cup is closer.", None),
        ("A cat sits there.", None),  # an English article, never an option
        ("", None),
    ],
)
def test_choice_extraction_never_takes_a_first_letter(reply: str, letter: str | None) -> None:
    assert extract_choice(reply) == letter


@pytest.mark.parametrize(
    ("prediction", "reference", "score"),
    [
        ("(B)", "(B)", 1.0),
        ("Based on the picture, (C)", "(B)", 0.0),
        ("Yes, it is.", "yes", 1.0),
        ("No.", "Yes.", 0.0),
        ("There are 3.", "3", 1.0),
        ("three", "3", 1.0),
        ("4", "3", 0.0),
        ("a red cup", "red", None),  # free-form: no rule applies
    ],
)
def test_rule_scores(prediction: str, reference: str, score: float | None) -> None:
    assert rule_score(prediction, reference) == score


def test_judge_reply_parsing() -> None:
    assert parse_judge_reply('{"score": 0.7}') == 0.7
    assert parse_judge_reply('Sure. {"score": 1}') == 1.0
    assert parse_judge_reply("score: 0.25") == 0.25
    for bad in ("I think so", '{"score": 7}', '{"score": "high"}'):
        with pytest.raises(ValueError):
            parse_judge_reply(bad)


def _judge(server: ScriptedChatServer, **kwargs) -> LLMJudge:
    return LLMJudge("scripted-judge", server.base_url, SECRET, retry=RetryPolicy(3, base_delay=0.01), **kwargs)


def test_llm_judge_over_loopback_with_cache_and_concurrency() -> None:
    with ScriptedChatServer() as server:
        judge = _judge(server, concurrency=8)
        items = [JudgeItem(f"q{i}", "a red cup", "a red cup" if i % 2 else "a mug", None) for i in range(10)]
        results = judge.score_many(items)
        assert [r.score for r in results] == [0.25, 1.0] * 5 and {r.source for r in results} == {"llm"}
        assert len(server.requests) == 10
        again = judge.score_many(items[:2])
        assert [r.source for r in again] == ["cache", "cache"] and len(server.requests) == 10
        assert server.headers[0]["authorization"] == f"Bearer {SECRET}"


def test_llm_judge_errors_are_typed_and_counted() -> None:
    with ScriptedChatServer() as server:
        server.script("q-rate", ["429", "ok"])
        server.script("q-garbage", ["garbage"] * 5)
        server.script("q-down", ["500"] * 5)
        judge = _judge(server)
        results = judge.score_many([JudgeItem(q, "a red cup", "a mug") for q in ("q-rate", "q-garbage", "q-down")])
        assert results[0].score == 0.25
        assert results[1].score is None and "no score" in (results[1].error or "")
        assert results[2].score is None and "HTTP 500" in (results[2].error or "")
        assert SECRET not in repr(results)


def test_timeouts_mask_the_sample_under_the_mask_policy_and_raise_otherwise() -> None:
    completion = "<think><area>[]</area></think><answer>a mug</answer>"
    columns = {"answer": ["a red cup"], "question": ["what is it?"], "sample_id": ["s"]}
    with ScriptedChatServer(default="slow", slow_seconds=1.0) as server:
        judge = LLMJudge("j", server.base_url, retry=RetryPolicy(2, base_delay=0.01), timeout=0.2)
        masked = SIFRewards(judge, failure_policy="mask")
        assert masked.accuracy([completion], **columns) == [None]
        assert masked.stats.masked == 1 and masked.stats.judge_failures == 1
        assert "APITimeoutError" in (masked.stats.last_failure or "")
        with pytest.raises(JudgeFailure, match="APITimeoutError"):
            SIFRewards(judge, failure_policy="raise").accuracy([completion], **columns)


def test_missing_judge_configuration_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SIF_JUDGE_MODEL", raising=False)
    monkeypatch.delenv("SIF_JUDGE_BASE_URL", raising=False)
    with pytest.raises(ValueError, match="SIF_JUDGE_BASE_URL"):
        LLMJudge()
