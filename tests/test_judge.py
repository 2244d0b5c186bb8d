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


@pytest.mark.parametrize(
    ("reply", "score"),
    [  # the shapes grpo-sif.md names: JSON (possibly fenced), "score: x", a bare number
        ('{"score": 0.7}', 0.7),
        ('Sure. {"score": 1}', 1.0),
        ('```json\n{"score": 0.4}\n```', 0.4),
        ("score: 0.25", 0.25),
        ("Score = 1", 1.0),
        ("0.7", 0.7),
        (" 0.7\n", 0.7),
        ("`0`", 0.0),
        ("1", 1.0),
    ],
)
def test_judge_reply_shapes_that_are_scores(reply: str, score: float) -> None:
    assert parse_judge_reply(reply) == score


@pytest.mark.parametrize(
    "reply",
    ["I think so", '{"score": 7}', '{"score": "high"}', "7", "-0.5", "0.7 or 0.8", "I'd say 0.7", "", "score: 1.5"],
)
def test_judge_reply_shapes_that_are_failures(reply: str) -> None:
    with pytest.raises(ValueError):
        parse_judge_reply(reply)


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
        assert "0.2 s deadline" in (masked.stats.last_failure or "")
        with pytest.raises(JudgeFailure, match=r"0\.2 s deadline"):
            SIFRewards(judge, failure_policy="raise").accuracy([completion], **columns)


def test_missing_judge_configuration_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SIF_JUDGE_MODEL", raising=False)
    monkeypatch.delenv("SIF_JUDGE_BASE_URL", raising=False)
    with pytest.raises(ValueError, match="SIF_JUDGE_BASE_URL"):
        LLMJudge()


def _image_parts(request: dict) -> list[dict]:
    content = request["messages"][0]["content"]
    return [part for part in content if part.get("type") == "image_url"] if isinstance(content, list) else []


def test_the_image_reaches_the_judge_over_loopback_with_the_configured_budget() -> None:
    from PIL import Image

    completion = "<think><area>[]</area></think><answer>a mug</answer>"
    red, blue = Image.new("RGB", (64, 48), "red"), Image.new("RGB", (64, 48), "blue")
    columns = {"answer": ["a red cup"] * 2, "question": ["what is it?"] * 2, "sample_id": ["s1", "s2"]}
    # The GRPO rows' ``images``: the RGB image, then the depth rendering (not for the judge).
    images = [[red, Image.new("RGB", (64, 48), "gray")], [blue, Image.new("RGB", (64, 48), "gray")]]
    with ScriptedChatServer() as server:
        judge = _judge(server, with_image=True, max_tokens=777, temperature=0.3)
        scores = SIFRewards(judge).accuracy([completion] * 2, images=images, **columns)
        assert scores == [0.25, 0.25]
        assert len(server.requests) == 2  # same text, different images: not one cached verdict
        for request in server.requests:
            (part,) = _image_parts(request)
            assert part["image_url"]["url"].startswith("data:image/")
            assert request["max_tokens"] == 777 and request["temperature"] == 0.3
        pixels = [Image.open(_decoded(request)).convert("RGB").getpixel((5, 5)) for request in server.requests]
        colours = {"red" if r > 200 and b < 50 else "blue" if b > 200 and r < 50 else "other" for r, _, b in pixels}
        assert colours == {"red", "blue"}  # each sample's own RGB image, not the depth rendering
    with ScriptedChatServer() as server:  # with_image=false: text only
        SIFRewards(_judge(server, with_image=False)).accuracy([completion] * 2, images=images, **columns)
        assert all(not _image_parts(request) for request in server.requests)


def _decoded(request: dict):
    import base64
    import io

    (part,) = _image_parts(request)
    return io.BytesIO(base64.b64decode(part["image_url"]["url"].split(",", 1)[1]))


def test_judge_settings_reach_the_judge() -> None:
    from sifmodel.config import JudgeSettings
    from sifmodel.judge import make_judge

    settings = JudgeSettings(kind="llm", model="m", base_url="http://127.0.0.1:9/v1", max_tokens=2048, temperature=0.6)
    judge = make_judge(settings)
    assert isinstance(judge, LLMJudge)
    assert (judge.max_tokens, judge.temperature, judge.with_image, judge.concurrency) == (2048, 0.6, True, 32)
    assert JudgeSettings().max_tokens >= 512  # room for a reasoning judge; 32 cut every such reply short


def test_a_benchmark_prompt_is_asked_and_read_by_its_own_parser_and_cached_apart() -> None:
    from sifeval.viscot import OFFICIAL_JUDGE

    item = JudgeItem("<image>\nq?", "red", "crimson")
    with ScriptedChatServer(default="text:Score: 1.5") as server:
        judge = _judge(server)
        official = judge.score_many([item], OFFICIAL_JUDGE)[0]
        ours = judge.score_many([item])[0]  # the same item by our prompt: not the official one's cache
        assert len(server.requests) == 2
        assert server.requests[0]["messages"][0]["content"].startswith("\nYou are responsible for proofreading")
    assert official.score == 1.0  # eval_cot_score.py clamps to [0, 1]
    assert ours.score is None and ours.source == "llm" and "has no score" in (ours.error or "")


def test_ask_many_keeps_verdicts_on_disk_for_the_next_judge(tmp_path) -> None:
    from sifmodel.judge import JudgePrompt

    prompt: JudgePrompt[str] = JudgePrompt(
        "echo-v1", lambda text: [{"role": "user", "content": text}], lambda reply: reply.strip()
    )
    with ScriptedChatServer(default="text: B ") as server:
        first = _judge(server, cache_dir=tmp_path).ask_many(["x", "y"], prompt)
        assert [a.value for a in first] == ["B", "B"] and not any(a.cached for a in first)
        again = _judge(server, cache_dir=tmp_path)  # a new judge over the same folder
        assert [a.value for a in again.ask_many(["x"], prompt)] == ["B"]
        assert [a.value for a in again.ask_many(["x"], prompt)] == ["B"]  # from memory the second time
        assert len(server.requests) == 2
        renamed = JudgePrompt("echo-v2", prompt.messages, prompt.parse)
        assert again.ask_many(["x"], renamed)[0].cached is False  # another prompt: asked again
        assert len(server.requests) == 3


def test_judge_replies_read_at_their_edges() -> None:
    """Each form at its bounds, by hand (issue 23): 0 and 1 are scores, 1.5 is not one."""
    assert parse_judge_reply('{"score": 0}') == 0.0 and parse_judge_reply('{"score": 1}') == 1.0
    assert parse_judge_reply("Score: 0") == 0.0 and parse_judge_reply("score = 0.0") == 0.0
    assert parse_judge_reply("`0`") == 0.0 and parse_judge_reply("```\n1\n```") == 1.0
    for outside in ('{"score": 1.5}', "Score: 1.5", "1.5", '{"score": -0.1}'):
        with pytest.raises(ValueError):
            parse_judge_reply(outside)
    with pytest.raises(ValueError, match=r"judge score 1.5 is outside \[0, 1\]"):
        parse_judge_reply('{"score": 1.5}')
    # Not JSON inside the braces: the other forms are read.
    assert parse_judge_reply("{not json} score: 0.25") == 0.25
    with pytest.raises(ValueError):
        parse_judge_reply("X0.5X")  # only backticks are taken off a bare number
    long = "no score here " * 20
    with pytest.raises(ValueError) as raised:
        parse_judge_reply(long)
    assert str(raised.value) == f"judge reply has no score: {long[:120]!r}"
