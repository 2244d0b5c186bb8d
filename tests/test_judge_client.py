"""The judge model as a client sees it, on a real loopback server (issue 23): the request it
sends, where its settings come from, its concurrency bound and the layout of its disk cache,
which must stay readable across releases. Every expectation is written out by hand."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from chat_server import ScriptedChatServer
from PIL import Image

from sifdata.llm import RetryPolicy
from sifmodel.config import JudgeSettings
from sifmodel.judge import JUDGE_PROMPT, JudgeItem, JudgePrompt, JudgeResult, LLMJudge, MatchJudge, judge_answers

ITEM = JudgeItem("What is on the table?", "a red mug", "a mug", None)
FAST = RetryPolicy(1, base_delay=0.01)


def prompt_text(item: JudgeItem) -> str:
    return JUDGE_PROMPT.format(question=item.question, reference=item.reference, prediction=item.prediction)


def test_the_request_is_one_user_message_at_temperature_0_with_512_tokens() -> None:
    with ScriptedChatServer() as server:
        judge = LLMJudge("judge-1", server.base_url, "secret-key", retry=FAST)
        picture = Image.new("RGB", (8, 8), "red")
        results = judge.score_many([JudgeItem(ITEM.question, ITEM.reference, ITEM.prediction, picture)])
    assert results == [JudgeResult(0.25, "llm")]  # the scripted judge: 0.25 for an inexact match
    (request,) = server.requests
    # Images are not sent unless asked for (with_image=False by default).
    assert request["messages"] == [{"role": "user", "content": prompt_text(ITEM)}]
    assert (request["model"], request["temperature"], request["max_tokens"]) == ("judge-1", 0.0, 512)
    assert server.headers[0]["authorization"] == "Bearer secret-key"


def test_with_images_the_picture_goes_first_at_most_512_pixels_a_side() -> None:
    picture = Image.new("RGB", (1024, 600), "blue")
    with ScriptedChatServer() as server:
        judge = LLMJudge("judge-1", server.base_url, "k", retry=FAST, with_image=True)
        judge.score_many([JudgeItem(ITEM.question, ITEM.reference, ITEM.prediction, picture)])
    (message,) = server.requests[0]["messages"]
    assert message["role"] == "user"
    image_part, text_part = message["content"]
    assert text_part == {"type": "text", "text": prompt_text(ITEM)}
    assert image_part["type"] == "image_url"
    url = image_part["image_url"]["url"]
    assert url.startswith("data:image/jpeg;base64,")
    sent = Image.open(io.BytesIO(base64.b64decode(url.partition(",")[2])))
    assert sent.size == (512, 300)  # 1024 x 600 scaled by 1/2


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    with ScriptedChatServer() as server:
        monkeypatch.setenv("SIF_JUDGE_MODEL", "env-judge")
        monkeypatch.setenv("SIF_JUDGE_BASE_URL", server.base_url)
        monkeypatch.setenv("SIF_JUDGE_API_KEY", "env-secret")
        judge = LLMJudge(retry=FAST)
        assert judge.score_many([ITEM]) == [JudgeResult(0.25, "llm")]
    assert server.requests[0]["model"] == "env-judge"
    assert server.headers[0]["authorization"] == "Bearer env-secret"


@pytest.mark.parametrize("present", [(), ("SIF_JUDGE_MODEL",), ("SIF_JUDGE_BASE_URL",)])
def test_a_judge_needs_both_a_model_and_an_endpoint(present: tuple[str, ...], monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SIF_JUDGE_MODEL", "SIF_JUDGE_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    for name in present:
        monkeypatch.setenv(name, "http://127.0.0.1:9/v1" if name.endswith("URL") else "m")
    with pytest.raises(ValueError) as raised:
        LLMJudge()
    assert str(raised.value) == (
        "the judge needs a model and an endpoint: set SIF_JUDGE_BASE_URL and SIF_JUDGE_MODEL "
        "(and SIF_JUDGE_API_KEY), or pass them in the config"
    )


def test_the_documented_defaults() -> None:
    """What the config reference states: 32 at once, 60 s a request, 3 attempts."""
    judge = LLMJudge("m", "http://127.0.0.1:9/v1", "k")
    assert (judge.concurrency, judge.client.timeout, judge.client.retry) == (32, 60.0, RetryPolicy(3))
    assert (judge.with_image, judge.max_tokens, judge.temperature) == (False, 512, 0.0)
    assert LLMJudge("m", "http://127.0.0.1:9/v1", "k", retry=FAST).client.retry == FAST


def test_no_more_requests_in_flight_than_the_concurrency() -> None:
    """Each request waits until three are in flight or a short while has passed; with a bound of
    2, three are never in flight (a looser bound lets all four in at once)."""
    lock = threading.Lock()
    in_flight = [0, 0]  # now, most
    three = threading.Event()

    def hold(request: dict[str, Any]) -> float:
        with lock:
            in_flight[0] += 1
            in_flight[1] = max(in_flight[1], in_flight[0])
            if in_flight[0] >= 3:
                three.set()
        three.wait(0.3)
        with lock:
            in_flight[0] -= 1
        return 0.0

    with ScriptedChatServer(latency=hold) as server:
        judge = LLMJudge("m", server.base_url, "k", retry=FAST, concurrency=2)
        items = [JudgeItem("q", f"answer {i}", f"answer {i}", None) for i in range(4)]
        assert judge.score_many(items) == [JudgeResult(1.0, "llm")] * 4
        assert in_flight[1] == 2
        asked = judge.ask_many([f"grade answer {i}" for i in range(4)], PLAIN)
        values = [item.value for item in asked]
        assert len(set(values)) == 1 and str(values[0]).startswith("<think>")
    assert in_flight[1] == 2


# A benchmark-style prompt whose reply is kept as text (the scripted server answers any request
# that is neither a grading nor a writer request with a fixed chain).
PLAIN = JudgePrompt[str](name="plain", messages=lambda text: [{"role": "user", "content": text}], parse=str)


def test_the_judge_threads_are_named_for_a_stack_dump() -> None:
    """``py-spy dump`` and faulthandler name threads: the judge's say they are the judge's."""
    names: list[str] = []

    def messages(item: JudgeItem) -> list[dict[str, Any]]:
        names.append(threading.current_thread().name)
        return [{"role": "user", "content": "You grade answers. Reference answer: a\nModel answer: a\nHow close"}]

    graded = JudgePrompt[float](name="named", messages=messages, parse=lambda reply: json.loads(reply)["score"])
    with ScriptedChatServer() as server:
        judge = LLMJudge("m", server.base_url, "k", retry=FAST)
        judge.score_many([ITEM, ITEM], graded)
        judge.ask_many(["x", "y"], JudgePrompt[str](name="n2", messages=lambda text: messages(ITEM), parse=str))
    assert len(names) == 4 and all(name.startswith("sif-judge_") for name in names)


def cache_file(folder: Path, payload: list[Any]) -> Path:
    key = hashlib.sha256(json.dumps(payload).encode()).hexdigest()
    return folder / key[:2] / f"{key}.json"


def test_a_cache_entry_written_by_an_earlier_release_is_read(tmp_path: Path) -> None:
    """The cache layout, from the documented key (``LLMJudge._key``), written here by hand."""
    picture = Image.new("RGB", (4, 4), "green")
    digest = hashlib.sha256(picture.tobytes()).hexdigest()[:16]
    item = JudgeItem(ITEM.question, ITEM.reference, ITEM.prediction, picture)
    plain = cache_file(tmp_path, ["m", "sif", item.question, item.reference, item.prediction, None])
    with_image = cache_file(tmp_path, ["m", "sif", item.question, item.reference, item.prediction, digest])
    for path, value in ((plain, "0.75"), (with_image, "0.5")):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(value, encoding="utf-8")
    with ScriptedChatServer() as server:
        assert LLMJudge("m", server.base_url, "k", cache_dir=tmp_path).score_many([item]) == [
            JudgeResult(0.75, "cache")
        ]
        seeing = LLMJudge("m", server.base_url, "k", cache_dir=tmp_path, with_image=True)
        assert seeing.score_many([item]) == [JudgeResult(0.5, "cache")]
        assert server.requests == []
        # A miss is asked and written where the layout says.
        other = JudgeItem("q", "a cat", "a cat", None)
        assert LLMJudge("m", server.base_url, "k", cache_dir=tmp_path, retry=FAST).score_many([other]) == [
            JudgeResult(1.0, "llm")
        ]
    assert cache_file(tmp_path, ["m", "sif", "q", "a cat", "a cat", None]).read_text(encoding="utf-8") == "1.0"


def test_a_benchmark_prompts_cache_entry_is_named_by_what_was_sent(tmp_path: Path) -> None:
    prompt = JudgePrompt[float](
        name="bench-v1",
        messages=lambda item: [{"role": "user", "content": f"grade {item}"}],
        parse=float,
    )
    payload = json.dumps(["m", "bench-v1", [{"content": "grade 7", "role": "user"}]])  # keys sorted
    key = hashlib.sha256(payload.encode()).hexdigest()
    (tmp_path / key[:2]).mkdir()
    (tmp_path / key[:2] / f"{key}.json").write_text("0.125", encoding="utf-8")
    with ScriptedChatServer() as server:
        (asked,) = LLMJudge("m", server.base_url, "k", cache_dir=tmp_path).ask_many([7], prompt)
    assert (asked.value, asked.cached, server.requests) == (0.125, True, [])


def test_rules_first_then_the_judge_and_without_one_a_failure_not_a_zero() -> None:
    items = [JudgeItem("q", "(A)", "(A)"), JudgeItem("q", "a red mug", "it is a red mug"), JudgeItem("q", "2", "3")]
    assert judge_answers(items, None) == [
        JudgeResult(1.0, "rule"),
        JudgeResult(None, "none", "free-form answer and no judge model configured"),
        JudgeResult(0.0, "rule"),
    ]
    # MatchJudge: the reference's words appear in the answer.
    assert judge_answers(items, MatchJudge()) == [
        JudgeResult(1.0, "rule"),
        JudgeResult(1.0, "rule"),
        JudgeResult(0.0, "rule"),
    ]
    assert MatchJudge().score_many([JudgeItem("q", "a red mug", "a blue cup")]) == [JudgeResult(0.0, "rule")]


class ShortJudge:
    """A broken plugin: fewer results than items."""

    model = "short"

    def score_many(self, items: Sequence[JudgeItem], prompt: JudgePrompt[float] | None = None) -> list[JudgeResult]:
        return []


def test_a_judge_returning_too_few_results_is_an_error_not_a_shorter_list() -> None:
    with pytest.raises(ValueError):
        judge_answers([JudgeItem("q", "a red mug", "a mug")], ShortJudge())


def test_a_judge_built_from_the_config_section_takes_every_setting() -> None:
    settings = JudgeSettings(
        kind="llm",
        model="m",
        base_url="http://127.0.0.1:9/v1",
        concurrency=3,
        timeout=7.5,
        with_image=False,
        max_tokens=64,
        temperature=0.5,
    )
    judge = LLMJudge.from_settings(settings)
    assert (judge.model, judge.client.base_url, judge.concurrency, judge.client.timeout) == (
        "m",
        "http://127.0.0.1:9/v1",
        3,
        7.5,
    )
    assert (judge.with_image, judge.max_tokens, judge.temperature) == (False, 64, 0.5)
