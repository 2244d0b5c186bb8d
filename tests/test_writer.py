from __future__ import annotations

import logging
from pathlib import Path

import pytest
from chat_server import ScriptedChatServer
from PIL import Image

from sifdata import parse_chain
from sifdata.answers import answers_agree
from sifdata.builder.expand import plan_focus
from sifdata.builder.writer import (
    OfflineTemplateWriter,
    OpenAIWriter,
    WriteRequest,
    WriterError,
    attach_depths,
    check_written_chain,
    write_checked,
)
from sifdata.llm import RetryPolicy

SECRET = "sk-test-SECRET-never-logged-12345"


def _request(question: str = "What color is the cup?", answer: str = "Red.", boxes=None) -> WriteRequest:
    plan = plan_focus(boxes or [(0.3, 0.3, 0.4, 0.5)], 200, 100, seed=3, select_probability=1.0)
    return WriteRequest(
        record_id=f"test/{question}",
        question=question,
        answer=answer,
        plan=attach_depths(plan, lambda box: 0.25 + box[0] / 2),
        image=Image.new("RGB", (200, 100), "gray"),
        seed=3,
    )


def _writer(server: ScriptedChatServer, tmp_path: Path | None = None, **kwargs) -> OpenAIWriter:
    return OpenAIWriter(
        model="scripted-writer",
        base_url=server.base_url,
        api_key=SECRET,
        retry=RetryPolicy(attempts=kwargs.pop("attempts", 4), base_delay=0.01, max_delay=0.05),
        cache_dir=tmp_path,
        **kwargs,
    )


@pytest.mark.parametrize(
    ("answer", "truth", "agree"),
    [
        ("Red.", "red", True),
        ("The cup is red", "Red.", True),
        ("Reddish", "red", False),
        ("Yes, it is.", "Yes.", True),
        ("No", "yes", False),
        ("There are 3 dogs.", "three", True),
        ("two", "2", True),
        ("12", "2", False),
        ("The blue square.", "The blue square.", True),
        ("The red square.", "The blue square.", False),
    ],
)
def test_answer_agreement(answer: str, truth: str, agree: bool) -> None:
    assert answers_agree(answer, truth) is agree


def test_offline_writer_follows_the_plan_exactly() -> None:
    request = _request()
    outcome = write_checked(OfflineTemplateWriter(), request)
    assert outcome.chain is not None and outcome.attempts == 1
    chain = parse_chain(outcome.chain)
    assert [step.boxes for step in chain.focus_steps] == [step.boxes for step in request.plan]
    assert [step.depths for step in chain.focus_steps] == [step.depths for step in request.plan]
    assert chain.answer == "Red."
    assert OfflineTemplateWriter().write(request) == outcome.chain  # deterministic


def test_openai_writer_writes_a_checked_chain(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with ScriptedChatServer() as server:
        outcome = write_checked(_writer(server), _request())
        assert outcome.chain is not None and outcome.reject_reason is None
        (request,) = server.requests
        assert request["model"] == "scripted-writer"
        user_parts = [m for m in request["messages"] if m["role"] == "user"][1:]
        assert len(user_parts) == len(_request().plan)  # one message per step
        assert user_parts[0]["content"][1]["image_url"]["url"].startswith("data:image/jpeg;base64,")
        assert "Focus on the region with the normalized bounding box" in user_parts[0]["content"][0]["text"]
        assert server.headers[0]["authorization"] == f"Bearer {SECRET}"
    assert SECRET not in caplog.text and SECRET not in repr(outcome)


def test_rate_limits_and_server_errors_are_retried(tmp_path: Path) -> None:
    with ScriptedChatServer() as server:
        server.script("cup", ["429", "500", "ok"])
        writer = _writer(server)
        outcome = write_checked(writer, _request())
        assert outcome.chain is not None
        assert writer.transport_retries == 2 and len(server.requests) == 3


def test_an_outage_leaves_the_record_pending_not_rejected() -> None:
    with ScriptedChatServer(default="500") as server:
        outcome = write_checked(_writer(server, attempts=3), _request())
        assert outcome.chain is None and outcome.pending  # asked again on the next run
        assert outcome.reject_reason == "record test/What color is the cup?: gave up after 3 attempts (HTTP 500)"


def test_a_request_the_endpoint_refuses_rejects_the_record_with_the_reason() -> None:
    with ScriptedChatServer(default="400") as server:
        outcome = write_checked(_writer(server, attempts=3), _request())
        assert outcome.chain is None and not outcome.pending
        assert (
            outcome.reject_reason
            == "writer failed: record test/What color is the cup?: HTTP 400: Error code: 400 - scripted 400"
        )


def test_timeouts_are_retried_then_reported() -> None:
    with ScriptedChatServer(default="slow", slow_seconds=1.0) as server:
        outcome = write_checked(_writer(server, attempts=2, timeout=0.2), _request())
        assert outcome.chain is None and outcome.pending and "0.2 s deadline" in (outcome.reject_reason or "")


def test_garbage_is_retried_with_the_reason_then_rejected() -> None:
    with ScriptedChatServer(default="garbage") as server:
        outcome = write_checked(_writer(server), _request(), max_attempts=3)
        assert outcome.chain is None and outcome.attempts == 3
        assert outcome.reject_reason.startswith("after 3 attempts: grammar:")
        last = server.requests[-1]["messages"]
        assert last[-1]["content"].startswith("That chain was rejected: grammar:")
        assert last[-2]["role"] == "assistant"


def test_feedback_lets_the_writer_fix_its_output() -> None:
    with ScriptedChatServer(default="fix_on_feedback") as server:
        outcome = write_checked(_writer(server), _request(), max_attempts=3)
        assert outcome.chain is not None and outcome.attempts == 2


@pytest.mark.parametrize(
    ("behaviour", "reason"),
    [("wrong_boxes", "is not the planned"), ("wrong_answer", "does not agree with the ground truth")],
)
def test_chains_that_break_the_plan_are_rejected(behaviour: str, reason: str) -> None:
    with ScriptedChatServer(default=behaviour) as server:
        outcome = write_checked(_writer(server), _request(), max_attempts=2)
        assert outcome.chain is None and reason in (outcome.reject_reason or "")


def test_bad_key_stops_everything_but_a_bad_request_rejects_one_record() -> None:
    with ScriptedChatServer(default="401") as server:
        with pytest.raises(WriterError) as caught:
            write_checked(_writer(server), _request())
        assert caught.value.fatal and "HTTP 401" in caught.value.reason and SECRET not in caught.value.reason
    with ScriptedChatServer(default="400") as server:
        outcome = write_checked(_writer(server), _request())
        assert outcome.chain is None and "HTTP 400" in (outcome.reject_reason or "")


def test_response_cache_answers_repeated_requests(tmp_path: Path) -> None:
    with ScriptedChatServer() as server:
        first = write_checked(_writer(server, tmp_path / "cache"), _request())
        second = write_checked(_writer(server, tmp_path / "cache"), _request())
        assert first.chain == second.chain and len(server.requests) == 1


def test_check_names_the_step_and_the_problem() -> None:
    request = _request()
    good = OfflineTemplateWriter().write(request)
    bad_depth = good.replace(f'"depth":{request.plan[-1].depths[0]:.3f}', '"depth":0.999')
    with pytest.raises(ValueError, match=f"area {len(request.plan)}: depth 0.999 is not the planned"):
        check_written_chain(bad_depth, request)
    first_area_end = good.index("</area>") + len("</area>\n")
    dropped = good[:first_area_end] + good[first_area_end:].split("\n", 1)[1]
    with pytest.raises(ValueError, match="grammar"):
        check_written_chain(dropped, request)
