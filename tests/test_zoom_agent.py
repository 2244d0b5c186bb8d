"""The zoom agent (``sifeval run --agent zoom``): tool calls read and executed, crops sent back
pixel for pixel, transcripts kept, resumed mid-transcript, cached per turn, scored by the
benchmark's own protocol. The model is the scripted loopback server (a real HTTP server
speaking the OpenAI protocol, API tool calls included); expected values are by hand."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from sifeval.adapters import get_benchmark, load_samples
from sifeval.agents import (
    DEEPEYES,
    ZoomSettings,
    agent_solver,
    crop_box,
    pixel_box,
    qwen_grid_size,
    text_tool_calls,
)
from sifeval.cli import app
from sifeval.mirrors import build_mirror
from sifeval.runner import ResponseCache, run
from sifeval.scripted import ScriptedSIFServer
from sifeval.transcripts import TURNS, crop_path
from sifmodel.backends import GenerationRequest, load

ZOOM = "image_zoom_in_tool"


def call(box: list[float], name: str = ZOOM) -> str:
    return f'<tool_call>\n{{"name": "{name}", "arguments": {{"bbox_2d": {json.dumps(box)}}}}}\n</tool_call>'


def decoded(url: str) -> np.ndarray:
    head, _, data = url.partition(",")
    assert head == "data:image/png;base64"
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB"))


def resized(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
    return np.asarray(Image.fromarray(pixels).resize((width, height), resample=Image.Resampling.BICUBIC))


# ----------------------------------------------------------------------------- reading calls


def test_tool_calls_are_read_from_the_reply_in_order_with_their_errors() -> None:
    reply = (
        "<think>two places</think>\n"
        + call([1, 2, 3, 4])
        + '\n<tool_call>{"name": "image_zoom_in_tool", "arguments": "{\\"bbox_2d\\": [5, 6, 7, 8]}"}</tool_call>'
        + "\n<tool_call>{name: image_zoom_in_tool}</tool_call>"
        + '\n<tool_call>["a list"]</tool_call>'
        + '\n<tool_call>{"name": "image_zoom_in_tool"}</tool_call>'
        + '\n<tool_call>{"name": "x", "argu'
    )
    calls = text_tool_calls(reply)
    assert [(c.name, c.arguments) for c in calls[:2]] == [
        (ZOOM, {"bbox_2d": [1, 2, 3, 4]}),
        (ZOOM, {"bbox_2d": [5, 6, 7, 8]}),
    ]
    assert calls[2].arguments is None and calls[2].error.startswith("the tool call is not JSON")
    assert calls[3].error == "the tool call is a JSON list, not an object"
    assert calls[4].error == 'the tool call has no "arguments" object'
    assert calls[5].error.startswith("the tool call is not JSON (Unterminated string")
    assert calls[5].error.endswith(", and the <tool_call> is not closed")
    # A last call left open (a server that stops at </tool_call>) is read all the same.
    (open_call,) = text_tool_calls(
        '<think>x</think>\n<tool_call>\n{"name": "image_zoom_in_tool", "arguments": {"bbox_2d": [1, 2, 3, 4]}}\n'
    )
    assert open_call.arguments == {"bbox_2d": [1, 2, 3, 4]} and open_call.error is None
    assert text_tool_calls("<think>no tools</think><answer>A</answer>") == []


# ----------------------------------------------------------------------------- boxes and crops


def test_boxes_read_in_each_frame_are_clipped_and_grown_by_hand() -> None:
    # 200 x 100 image.
    assert pixel_box([10, 20, 50, 60], 200, 100, "pixel") == (10, 20, 50, 60)
    assert pixel_box([100, 200, 500, 600], 200, 100, "normalized-1000") == (20, 20, 100, 60)
    assert pixel_box([0.1, 0.2, 0.5, 0.6], 200, 100, "normalized") == pytest.approx((20, 20, 100, 60))
    for bad in ([1, 2, 3], "[1,2,3,4]", [1, 2, "3", 4], [1, 2, float("nan"), 4], [True, 2, 3, 4]):
        with pytest.raises(ValueError, match="bbox_2d"):
            pixel_box(bad, 200, 100, "pixel")
    # Fractions go outward to whole pixels; a box past the edges is clipped.
    assert crop_box((10.5, 20.2, 49.1, 59.9), 200, 100) == (10, 20, 50, 60)
    assert crop_box((-30, -5, 250, 40), 200, 100) == (0, 0, 200, 40)
    assert crop_box((199.5, 99.5, 300, 300), 200, 100) == (199, 99, 200, 100)
    with pytest.raises(ValueError, match="lies outside the 200x100 image"):
        crop_box((300, 10, 400, 50), 200, 100)
    with pytest.raises(ValueError, match="lies outside the 200x100 image"):
        crop_box((-50, 10, 0, 50), 200, 100)
    with pytest.raises(ValueError, match="is empty"):
        crop_box((50, 50, 40, 60), 200, 100)
    with pytest.raises(ValueError, match="is empty"):
        crop_box((50, 50, 60, 50), 200, 100)


def test_crops_are_resized_as_qwen_resizes_images() -> None:
    """DeepEyes' smart_resize (eval/eval_vstar.py L104-119) is Qwen2-VL's where no side rounds to
    zero: checked against transformers' own implementation there, and by hand where they part
    (DeepEyes takes each rounded side as at least 28 first, L106-107; transformers does not)."""
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

    assert qwen_grid_size(10, 500) == (28, 504)  # transformers: 0 x 504 < 3136, scaled up to (56, 420)
    for width in (15, 28, 45, 88, 100, 333, 1000, 4000):
        for height in (15, 30, 56, 90, 500, 2000):
            if max(width, height) / min(width, height) > 200:
                continue  # transformers refuses such images; DeepEyes resizes them all the same
            expected_h, expected_w = smart_resize(height, width, 28, 4 * 28 * 28, 16384 * 28 * 28)
            assert qwen_grid_size(width, height) == (expected_w, expected_h), (width, height)
    assert qwen_grid_size(45, 45) == (56, 56)  # 45 -> 56 each side; 3136 pixels is the floor
    assert qwen_grid_size(10, 10) == (56, 56)  # 28 x 28 < 3136: scaled by 5.6, up to 56
    assert qwen_grid_size(88, 88) == (84, 84)


def test_the_default_prompts_are_deepeyes_byte_for_byte() -> None:
    """SHA-256 of ``instruction_prompt_system`` and ``USER_PROMPT_V2`` as read from DeepEyes'
    eval/eval_vstar.py L53-72 (Visual-Agent/DeepEyes 6c5e796, Apache-2.0)."""
    import hashlib

    assert hashlib.sha256(DEEPEYES.system.encode()).hexdigest() == (
        "1fc5b8b5ebdc9b24d6a9281071222872c8542dd65a4a4be1e70d9760c3a7f99f"
    )
    assert hashlib.sha256(DEEPEYES.instruction.encode()).hexdigest() == (
        "e46e076069f511f848e9e6e213ee98b0576b268ac8eab38649e0b75608305e42"
    )
    assert DEEPEYES.followup == DEEPEYES.instruction and DEEPEYES.max_turns == 11


# ----------------------------------------------------------------------------- the loop, end to end


@pytest.fixture()
def vstar(tmp_path: Path) -> tuple[Path, list]:
    data = build_mirror("vstar", tmp_path / "vstar")
    return data, load_samples(get_benchmark("vstar"), data)


def _messages_of(server: ScriptedSIFServer, question: str) -> list[list[dict[str, Any]]]:
    """The messages of every request for the sample asking ``question``, in turn order."""
    key = json.dumps(question)[1:-1]
    found = [r["messages"] for r in server.requests if key in json.dumps(r["messages"][1]["content"])]
    return sorted(found, key=len)


def _script(samples: list) -> dict[str, Any]:
    q = [sample.question for sample in samples]
    assert len(set(q)) == len(q) == 12
    return {
        q[0]: [
            "<think>the triangle is small</think>\n" + call([130, 96, 175, 141]),
            "<think>blue</think><answer>B</answer>",
        ],
        q[1]: ["<think>two looks</think>" + call([81, 174, 169, 262]) + call([0, 0, 10, 10]), "<answer>A</answer>"],
        q[2]: ["<tool_call>{not json}</tool_call>", "<answer>C</answer>"],
        q[3]: [call([500, 500, 600, 600]), "<answer>C</answer>"],
        q[4]: [call([272, 109, 324, 161])],  # zooms on every turn: never answers
        q[5]: ["<answer>A</answer>"],
        q[6]: [call([1, 2, 30, 40], name="zoom"), "<answer>A</answer>"],
        q[7]: ["<answer>A</answer>"],
        q[8]: ["<answer>B</answer>"],
        q[9]: ["<think>left</think><answer>A</answer>"],
        q[10]: ["<answer>A</answer>"],
        q[11]: ["<answer>A</answer>"],
    }


def test_the_zoom_loop_end_to_end_on_the_scripted_server(vstar: tuple[Path, list], tmp_path: Path) -> None:
    data, samples = vstar
    out = tmp_path / "run"
    settings = ZoomSettings(**{**DEEPEYES.__dict__, "max_turns": 3})
    with ScriptedSIFServer(_script(samples)) as server:
        result = run(
            get_benchmark("vstar"),
            load(f"openai:zoomer@{server.base_url}"),
            "openai:zoomer",
            out,
            data_dir=data,
            mode="plain",
            agent=settings,
            progress=False,
        )
        pictures = [np.asarray(sample.images[0].load().convert("RGB")) for sample in samples]
        q = [sample.question for sample in samples]

        # s0: the crop of its box, pixel for pixel, in a user turn after the model's reply.
        first, second = _messages_of(server, q[0])
        assert [m["role"] for m in first] == ["system", "user"]
        assert "<tools>" in first[0]["content"] and ZOOM in first[0]["content"]
        assert first[1]["content"][-1]["text"].endswith(DEEPEYES.instruction)
        assert [m["role"] for m in second] == ["system", "user", "assistant", "user"]
        assert second[2]["content"].startswith("<think>the triangle is small</think>")
        follow = second[3]["content"]
        assert [part["type"] for part in follow] == ["text", "image_url", "text", "text"]
        assert (follow[0]["text"], follow[2]["text"], follow[3]["text"]) == (
            "<tool_response>",
            DEEPEYES.followup,
            "</tool_response>",
        )
        # The 45 x 45 box, resized to Qwen's grid: 56 x 56.
        assert np.array_equal(decoded(follow[1]["image_url"]["url"]), resized(pictures[0][96:141, 130:175], 56, 56))

        # s1: two calls in one turn, two crops in order; the 10-pixel box grown to 28 at the corner.
        follow = _messages_of(server, q[1])[1][3]["content"]
        crops = [decoded(part["image_url"]["url"]) for part in follow if part["type"] == "image_url"]
        assert len(crops) == 2
        assert np.array_equal(crops[0], resized(pictures[1][174:262, 81:169], 84, 84))
        assert np.array_equal(crops[1], resized(pictures[1][0:10, 0:10], 56, 56))

        # s2, s3, s6: a call that cannot run gets its reason back, no image, and the loop goes on.
        def said(question: str) -> str:
            return " ".join(p.get("text", "") for p in _messages_of(server, question)[1][3]["content"])

        assert "Error: the tool call is not JSON" in said(q[2])
        assert "Error: the box [500, 500, 600, 600] lies outside the 240x320 image" in said(q[3])
        assert "Error: unknown tool 'zoom': the only tool is image_zoom_in_tool" in said(q[6])
        # s4: asked max_turns times, then no answer.
        assert len(_messages_of(server, q[4])) == 3
        assert len(server.requests) == 12 + 5 + 2  # a first turn each; s0-s3 and s6 a second; s4 three

    # By hand: right s0 s2 s3 | s6 s7 s9 s11 -> 3/6, 4/6, 7/12; s4 the one parse failure.
    assert result.metrics["score"] == pytest.approx(100 * 7 / 12)
    assert result.metrics["category/direct_attributes"] == pytest.approx(50.0)
    assert result.metrics["category/relative_position"] == pytest.approx(100 * 4 / 6)
    assert (result.parse_failures, result.request_errors) == (1, 0)

    lines = {line["id"]: line for line in map(json.loads, (out / "samples.jsonl").read_text().splitlines())}
    never = lines["4"]
    assert (never["response"], never["parse_ok"]) == ("", False)
    assert (
        never["transcript"]["stopped"],
        never["transcript"]["turn_count"],
        never["transcript"]["tool_call_count"],
    ) == (
        "max-turns",
        3,
        3,
    )
    assert lines["5"]["transcript"]["turn_count"] == 1 and lines["5"]["transcript"]["stopped"] == "answer"
    step = lines["0"]["transcript"]["turns"][0]["tool_calls"][0]
    assert (step["box"], step["image"], step["image_size"], step["tool_error"]) == (
        [130, 96, 175, 141],
        0,
        [360, 240],
        None,
    )
    assert lines["0"]["turns"] == 2 and lines["0"]["tool_calls"] == 1
    # Each crop stored once, by its pixels: s0's, s1's two, s4's (the same box three times).
    keys = {
        s["crop"]
        for line in lines.values()
        for turn in line["transcript"]["turns"]
        for s in turn["tool_calls"]
        if s["crop"]
    }
    assert len(keys) == 4 and sorted(p.stem for p in (out / "crops").iterdir()) == sorted(keys)
    stored = np.asarray(Image.open(crop_path(out, step["crop"])).convert("RGB"))
    assert np.array_equal(stored, resized(pictures[0][96:141, 130:175], 56, 56))
    # What the agent did, by hand: turns 2,2,2,2,3,1,2 and five 1s; calls 1,2,1,1,3,0,1; executed
    # zooms in s0, s1, s4; errors in s2, s3, s6; box areas over the image: s0 45*45/(360*240),
    # s1 88*88/288**2 and 10*10/288**2, s4 52*52/(360*240) three times (the median); last zooms
    # hold the truth in s0 and s4, miss it in s1.
    stats = json.loads((out / "results.json").read_text())["agent"]
    assert stats["settings"]["max_turns"] == 3
    assert stats["samples"] == 12 and stats["turns_mean"] == pytest.approx(19 / 12)
    assert stats["tool_calls_mean"] == pytest.approx(9 / 12) and stats["tool_calls"] == 9
    assert (stats["zoomed_share"], stats["tool_errors"], stats["out_of_turns"]) == (pytest.approx(3 / 12), 3, 1)
    assert stats["zoom_area_share_median"] == pytest.approx(52 * 52 / (360 * 240))
    shares = [45 * 45 / 86400, 88 * 88 / 288**2, 10 * 10 / 288**2] + [52 * 52 / 86400] * 3
    assert stats["zoom_area_share_mean"] == pytest.approx(sum(shares) / 6)
    assert stats["last_zoom_with_truth"] == 3
    assert stats["last_zoom_truth_coverage_mean"] == pytest.approx(2 / 3, abs=1e-3)
    assert stats["last_zoom_holds_truth_share"] == pytest.approx(2 / 3)
    from sifeval.report import load_results, report_rows, to_markdown

    report = to_markdown(report_rows(load_results([out]), with_published=False))
    assert (
        "zoom agent: 1.58 turns and 0.75 tool calls per sample, 25% of samples zoomed, 3 calls refused, "
        "1 samples out of turns, median zoom 3.1% of the image, the last zoom holds the ground truth in 67% of 3"
    ) in report
    # The viewer draws each executed zoom as a focus step, in order, and prints the transcript.
    from sifdata.viewer.site import read_data_file
    from sifeval.view import view_runs

    view_runs([out], tmp_path / "site", progress=False)
    items = {
        item["id"]: item
        for page in sorted((tmp_path / "site" / "data").glob("page-*.js"))
        for item in read_data_file(page)
    }
    steps = items["1"]["panels"][0]["steps"]
    assert [step[0]["box"] for step in steps] == [
        pytest.approx([81 / 288, 174 / 288, 169 / 288, 262 / 288]),
        pytest.approx([0, 0, 10 / 288, 10 / 288]),
    ]
    assert len(items["4"]["panels"][0]["steps"]) == 3 and items["5"]["panels"][0]["steps"] == []
    shown = dict(items["3"]["panels"][0]["fields"])["zoom transcript"]
    assert "tool call refused: the box [500, 500, 600, 600] lies outside the 240x320 image" in shown
    identity = json.loads((out / "run.json").read_text())
    assert identity["agent"]["agent"] == "zoom" and identity["agent"]["max_turns"] == 3 and identity["mode"] == "plain"


def test_api_tool_calls_and_normalized_boxes(vstar: tuple[Path, list], tmp_path: Path) -> None:
    data, samples = vstar
    q = samples[0].question
    script = {
        q: [
            {
                "content": "<think>zoom</think>",
                "tool_calls": [
                    {"id": "call_1", "name": ZOOM, "arguments": json.dumps({"bbox_2d": [361, 400, 486, 588]})},
                    {"id": "call_2", "name": ZOOM, "arguments": "{bad"},
                ],
            },
            "<answer>B</answer>",
        ]
    }
    settings = ZoomSettings(**{**DEEPEYES.__dict__, "tool_format": "api", "box_frame": "normalized-1000"})
    with ScriptedSIFServer(script) as server:
        result = run(
            get_benchmark("vstar"),
            load(f"openai:zoomer@{server.base_url}"),
            "openai:zoomer",
            tmp_path / "run",
            data_dir=data,
            mode="plain",
            agent=settings,
            progress=False,
            samples=samples[:1],
        )
        _first, second = _messages_of(server, q)
        request = server.requests[0]
    assert [tool["function"]["name"] for tool in request["tools"]] == [ZOOM]
    assert [m["role"] for m in second] == ["system", "user", "assistant", "tool", "tool", "user"]
    assert [c["id"] for c in second[2]["tool_calls"]] == ["call_1", "call_2"]
    assert second[3] == {
        "role": "tool",
        "tool_call_id": "call_1",
        "content": "The zoomed-in image is in the next message.",
    }
    assert second[4]["tool_call_id"] == "call_2" and "the arguments are not JSON" in second[4]["content"]
    # 361/1000 * 360 = 129.96 -> 129; 400/1000 * 240 = 96; 486 -> 174.96 -> 175; 588 -> 141.12 -> 142.
    image = next(p for p in second[5]["content"] if p["type"] == "image_url")
    picture = np.asarray(samples[0].images[0].load().convert("RGB"))
    assert np.array_equal(decoded(image["image_url"]["url"]), resized(picture[96:142, 129:175], 56, 56))
    assert result.metrics["score"] == pytest.approx(100.0)


def _zoom_run(server: ScriptedSIFServer, data: Path, out: Path, samples: list, **options: Any) -> Any:
    return run(
        get_benchmark("vstar"),
        load(f"openai:zoomer@{server.base_url}?retries=1"),
        "openai:zoomer",
        out,
        data_dir=data,
        mode="plain",
        agent=DEEPEYES,
        progress=False,
        samples=samples,
        **options,
    )


def test_resume_continues_a_sample_mid_transcript(vstar: tuple[Path, list], tmp_path: Path) -> None:
    data, samples = vstar
    q0, q1 = samples[0].question, samples[1].question
    zoom, answer = call([130, 96, 175, 141]), "<answer>B</answer>"
    out = tmp_path / "run"
    with ScriptedSIFServer({q0: [zoom, {"http_status": 400}], q1: [answer]}) as server:
        first = _zoom_run(server, data, out, samples[:2], cache=None)
        assert first.request_errors == 1
        lines = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
        line = next(x for x in lines if x["id"] == "0")
        assert line["request_error"]["kind"] == "request" and line["transcript"]["turn_count"] == 1

        server.replies[q0] = [zoom, answer]  # the same server (the same model), now answering
        server.requests.clear()
        resumed = _zoom_run(server, data, out, samples[:2], cache=None, resume=True)
        asked = _messages_of(server, q0)
    # Only the second turn of sample 0 was asked: its first came from turns.jsonl, with its crop.
    assert [len(messages) for messages in asked] == [4]
    assert asked[0][2]["content"] == zoom
    assert resumed.request_errors == 0 and resumed.metrics["score"] == pytest.approx(100.0)
    assert any("1 sample(s) continued mid-transcript (1 turn(s) replayed, not asked again)" in n for n in resumed.notes)
    final = {json.loads(x)["id"]: json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()}
    assert final["0"]["transcript"]["turn_count"] == 2 and final["0"]["transcript"]["stopped"] == "answer"


def test_resume_asks_again_whole_a_transcript_that_no_longer_replays(vstar: tuple[Path, list], tmp_path: Path) -> None:
    data, samples = vstar
    q0 = samples[0].question
    zoom, answer = call([130, 96, 175, 141]), "<answer>B</answer>"
    out = tmp_path / "run"
    with ScriptedSIFServer({q0: [zoom, {"http_status": 400}]}) as server:
        _zoom_run(server, data, out, samples[:1], cache=None)
        turns = [json.loads(x) for x in (out / TURNS).read_text().splitlines()]
        turns[0]["tool_calls"][0]["crop"] = "0" * 24  # the recorded crop is not what the call gives now
        (out / TURNS).write_text("".join(json.dumps(t) + "\n" for t in turns))
        server.replies[q0] = [zoom, answer]
        server.requests.clear()
        resumed = _zoom_run(server, data, out, samples[:1], cache=None, resume=True)
        asked = _messages_of(server, q0)
    assert [len(messages) for messages in asked] == [2, 4]  # from its first turn again
    assert any(
        "1 sample(s) asked again whole (its recorded tool calls give other crops now" in n for n in resumed.notes
    )
    assert resumed.metrics["score"] == pytest.approx(100.0)


def test_each_turn_is_cached_by_everything_it_sends(vstar: tuple[Path, list], tmp_path: Path) -> None:
    data, samples = vstar
    q0 = samples[0].question
    cache = ResponseCache(tmp_path / "cache")
    with ScriptedSIFServer({q0: [call([130, 96, 175, 141]), "<answer>B</answer>"]}) as server:
        _zoom_run(server, data, tmp_path / "a", samples[:1], cache=cache)
        assert len(server.requests) == 2
        server.requests.clear()
        again = _zoom_run(server, data, tmp_path / "b", samples[:1], cache=cache)
        assert server.requests == []  # both turns from the cache
        assert again.metrics["score"] == pytest.approx(100.0)
        # The first reply comes from the cache; a turn that sends another crop is asked.
        cache_dir = tmp_path / "cache"
        first_key = next(p for p in cache_dir.rglob("*.json") if "<tool_call>" in json.loads(p.read_text())["text"])
        cached = json.loads(first_key.read_text())
        cached["text"] = call([100, 96, 175, 141])
        first_key.write_text(json.dumps(cached))
        _zoom_run(server, data, tmp_path / "c", samples[:1], cache=cache)
        assert [len(r["messages"]) for r in server.requests] == [4]
        assert server.requests[0]["messages"][2]["content"] == call([100, 96, 175, 141])


def test_agent_refusals_are_one_line(vstar: tuple[Path, list], tmp_path: Path) -> None:
    data, _ = vstar
    with pytest.raises(
        ValueError,
        match="the vstar likelihood protocol does not ask for one generated reply: use --protocol generation",
    ):
        agent_solver(get_benchmark("vstar", "likelihood"), DEEPEYES, None, object())
    api = ZoomSettings(**{**DEEPEYES.__dict__, "tool_format": "api"})
    with pytest.raises(ValueError, match="--tool-format api reads the tool calls"):
        agent_solver(get_benchmark("vstar"), api, None, object())
    runner = CliRunner()
    base = ["run", "--bench", "vstar", "--model", "openai:m@http://127.0.0.1:9/v1", "--data", str(data)]
    for extra, said in (
        (["--agent", "browse"], "--agent takes zoom, not 'browse'"),
        (["--agent", "zoom", "--zoom-frame", "percent"], "--zoom-frame takes pixel, normalized-1000, normalized"),
        (["--agent", "zoom", "--max-turns", "0"], "max_turns must be at least 1"),
        (["--agent", "zoom", "--protocol", "likelihood"], "does not ask for one generated reply"),
    ):
        result = runner.invoke(app, [*base, "--out", str(tmp_path / "x"), *extra])
        assert result.exit_code != 0 and said in result.output, result.output
        assert "Traceback" not in result.output


def test_replaying_real_deepeyes_transcripts(tmp_path: Path) -> None:
    """DeepEyes' own V* transcripts (tests/data/deepeyes, Apache-2.0): fed the model's replies,
    our agent executes the boxes the model asked for and sends the conversation DeepEyes'
    evaluation sent (its printed copy drops the <tool_response> tags around the crop and
    instruction, eval_vstar.py L214-247; they are put back here by that rule)."""
    from sifeval.agents import ZoomAgent
    from sifeval.types import ImageRef, Sample
    from sifmodel.backends import GenerationSettings

    path = Path(__file__).parent / "data" / "deepeyes" / "vstar_direct_attributes_step72.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    picture = tmp_path / "v.png"
    Image.new("RGB", (2048, 2048), (90, 120, 150)).save(picture)  # V* images are this large; pixels unknown
    for record in records:
        theirs = record["pred_output"]
        replies = [m["content"] for m in theirs if m["role"] == "assistant"]
        first_text = theirs[1]["content"][1]["text"]
        question = first_text[: -len(DEEPEYES.instruction)]  # "Question: ...\nOptions: ...\n"
        sample = Sample("0", question, "A", "direct_attributes", images=(ImageRef(path=str(picture)),))

        def build(sample: Sample, mode: str, settings: GenerationSettings) -> GenerationRequest:
            return GenerationRequest(
                sample.id, sample.question, (sample.images[0].load(),), mode="plain", settings=settings
            )

        with ScriptedSIFServer({question: replies}) as server:
            backend = load(f"openai:deepeyes@{server.base_url}")
            steps = ZoomAgent(build, DEEPEYES).steps(sample, "plain", GenerationSettings())
            need = next(steps)
            try:
                while True:
                    need = steps.send(backend.generate([need])[0])
            except StopIteration as stop:
                solved = stop.value
            sent = server.requests[-1]["messages"]

        # The boxes the model asked for, executed as asked (inside the image: nothing clipped).
        asked = [json.loads(r.split("<tool_call>")[1])["arguments"]["bbox_2d"] for r in replies if "<tool_call>" in r]
        assert [list(box) for _, box in solved.transcript.zoom_boxes] == asked
        assert solved.transcript.stopped == "answer" and solved.text == replies[-1]
        # The same messages: roles, system prompt, first turn, the model's replies, the follow-ups.
        expected = [m for m in theirs[:-1]]  # our last request carries everything before the final reply
        assert [m["role"] for m in sent] == [m["role"] for m in expected]
        assert sent[0]["content"] == expected[0]["content"]
        assert [p["type"] for p in sent[1]["content"]] == ["image_url", "text"]
        assert sent[1]["content"][1]["text"] == first_text
        for ours, real in zip(sent[2:], expected[2:], strict=True):
            if real["role"] == "assistant":
                assert ours["content"] == real["content"]
                continue
            shape = [(p["type"], p.get("text")) for p in ours["content"]]
            wrapped = [("text", "<tool_response>")] + [(p["type"], p.get("text")) for p in real["content"]]
            assert shape == [*wrapped, ("text", "</tool_response>")]


def test_shards_merge_and_rescore_keep_transcripts_and_crops(vstar: tuple[Path, list], tmp_path: Path) -> None:
    from sifeval.rescore import merge_runs, rescore_run

    data, samples = vstar
    settings = ZoomSettings(**{**DEEPEYES.__dict__, "max_turns": 3})
    bench = get_benchmark("vstar")
    with ScriptedSIFServer(_script(samples)) as server:
        for index in (0, 1):
            run(
                bench, load(f"openai:zoomer@{server.base_url}"), "openai:zoomer", tmp_path / f"shard{index}",
                data_dir=data, mode="plain", agent=settings, progress=False, shard=(index, 2), cache=None,
            )  # fmt: skip
    merged = merge_runs(bench, [tmp_path / "shard0", tmp_path / "shard1"], tmp_path / "merged")
    # The same figures and agent statistics as the one run above, by hand.
    assert merged.metrics["score"] == pytest.approx(100 * 7 / 12)
    assert merged.agent["settings"]["max_turns"] == 3 and merged.agent["turns_mean"] == pytest.approx(19 / 12)
    assert merged.agent["last_zoom_holds_truth_share"] == pytest.approx(2 / 3)
    assert len(list((tmp_path / "merged" / "crops").glob("*.png"))) == 4
    again = rescore_run(bench, tmp_path / "merged")
    assert again.agent == merged.agent and again.metrics == merged.metrics


def test_a_later_turn_with_a_crop_reaches_a_transformers_model(tiny_vlm: Path) -> None:
    """The ``hf:`` backend renders the whole conversation through the model's chat template:
    a crop in a later user turn becomes image tokens the model reads (the tiny Qwen2.5-VL)."""
    from sifmodel.backends import GenerationSettings
    from sifmodel.turns import Turn

    backend = load(f"hf:{tiny_vlm}?device=cpu")
    image = Image.new("RGB", (112, 112), (200, 40, 40))
    crop = Image.new("RGB", (56, 56), (40, 200, 40))
    settings = GenerationSettings(max_new_tokens=4)
    later = (
        Turn("assistant", (("text", call([0, 0, 56, 56])),)),
        Turn(
            "user",
            (("text", "<tool_response>"), ("image", crop), ("text", DEEPEYES.followup), ("text", "</tool_response>")),
        ),
    )
    text_only = (later[0], Turn("user", tuple(part for part in later[1].parts if part[0] == "text")))
    requests = [
        GenerationRequest(
            name, "What color?", (image,), mode="plain", settings=settings, system=DEEPEYES.system, history=h
        )
        for name, h in (("text", text_only), ("crop", later))
    ]
    without, with_crop = backend.generate(requests)
    assert without.ok and with_crop.ok
    # 56 x 56 pixels: 4 x 4 patches of 14, merged 2 x 2 into 4 image tokens, between
    # <|vision_start|> and <|vision_end|>: 6 tokens more than the same turns without the crop.
    assert with_crop.prompt_tokens - without.prompt_tokens == 6


def test_agent_prompts_from_a_file_reach_the_model_and_the_run(vstar: tuple[Path, list], tmp_path: Path) -> None:
    data, samples = vstar
    prompts = tmp_path / "prompts.json"
    prompts.write_text(
        json.dumps({"system": "Zoom with the tool.", "instruction": "\nZoom first.", "followup": "Go on."})
    )
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"system": "x", "tools": "y"}))
    runner = CliRunner()
    with ScriptedSIFServer({samples[0].question: [call([130, 96, 175, 141]), "<answer>B</answer>"]}) as server:
        base = ["run", "--bench", "vstar", "--model", f"openai:zoomer@{server.base_url}", "--data", str(data)]
        refused = runner.invoke(
            app, [*base, "--out", str(tmp_path / "x"), "--agent", "zoom", "--agent-prompts", str(bad)]
        )
        assert (
            refused.exit_code != 0
            and "must be a JSON object of texts named system, instruction, followup" in refused.output
        )
        result = runner.invoke(
            app,
            [*base, "--out", str(tmp_path / "run"), "--agent", "zoom", "--agent-prompts", str(prompts), "--limit", "1"],
        )
        assert result.exit_code == 0, result.output
        first, second = _messages_of(server, samples[0].question)
    assert first[0] == {"role": "system", "content": "Zoom with the tool."}
    assert first[1]["content"][-1]["text"].endswith("directly.\nZoom first.")
    assert [p.get("text") for p in second[3]["content"]] == ["<tool_response>", None, "Go on.", "</tool_response>"]
    identity = json.loads((tmp_path / "run" / "run.json").read_text())
    assert identity["agent"]["system"] == "Zoom with the tool." and identity["mode"] == "plain"
    assert "zoom: samples that zoomed" in result.output


def test_settings_paths_and_statistics_at_their_edges(tmp_path: Path) -> None:
    from sifeval.agent_stats import agent_statistics, with_truth_coverage
    from sifeval.transcripts import AgentTurn, ToolStep, Transcript, TranscriptStore
    from sifeval.types import Sample, ScoredSample
    from sifmodel.turns import ToolCall

    assert ZoomSettings(**{**DEEPEYES.__dict__, "max_turns": 1}).max_turns == 1  # one reply is a loop
    for bad, said in (
        ({"max_turns": 0}, "max_turns"),
        ({"tool_format": "xml"}, "tool format"),
        ({"box_frame": "pt"}, "box frame"),
    ):
        with pytest.raises(ValueError, match=said):
            ZoomSettings(**{**DEEPEYES.__dict__, **bad})
    assert crop_path(tmp_path, "0a1b").name == "0a1b.png"
    for bad_key in ("", "../x", "ABC", "0a/1b"):
        with pytest.raises(ValueError, match="not a crop key"):
            crop_path(tmp_path, bad_key)

    # A discarded transcript stays discarded when the folder is opened again.
    step = ToolStep(ToolCall(ZOOM, {"bbox_2d": [0, 0, 4, 4]}, "{}"), 0, (0, 0, 4, 4), "ab", None, (8, 8))
    with TranscriptStore(tmp_path) as store:
        store.append("s", 0, AgentTurn("old", (step,)))
        store.discard("s", "the image changed")
        store.append("s", 0, AgentTurn("new", (step,)))
        store.append("s", 1, AgentTurn("<answer>A</answer>"))
    with TranscriptStore(tmp_path) as again:
        assert [turn.reply for turn in again.recorded("s")] == ["new", "<answer>A</answer>"]
        assert again.restarted == {} and again.resume_summary() is None

    class Truth:
        def __init__(self, boxes: list) -> None:
            self.boxes = boxes

        def truth_boxes(self, sample: Sample, width: int, height: int) -> list:
            return self.boxes

    sample = Sample("s", "q", "A", "c")
    zoom_on_crop = ToolStep(ToolCall(ZOOM, {}, "{}"), 1, (0, 0, 4, 4), "cd", None, (8, 8))
    whole = Transcript((AgentTurn("z", (step,)),))
    # The truth's area inside the last zoom on the sample's own image: a zoom on a crop is not one.
    covered = with_truth_coverage(Truth([(0.0, 0.0, 0.25, 1.0)]), sample, whole)  # type: ignore[arg-type]
    assert covered.truth_coverage == pytest.approx(0.5)  # 2 x 8 truth, 2 x 4 of it in [0, 0, 4, 4]
    later = Transcript((AgentTurn("z", (step, zoom_on_crop)),))
    assert with_truth_coverage(Truth([(0.0, 0.0, 0.25, 1.0)]), sample, later).truth_coverage == pytest.approx(0.5)  # type: ignore[arg-type]
    assert with_truth_coverage(Truth([(0.5, 0.5, 0.5, 0.9)]), sample, whole).truth_coverage is None  # type: ignore[arg-type]
    assert with_truth_coverage(Truth([]), sample, whole).truth_coverage is None  # type: ignore[arg-type]
    only_crops = Transcript((AgentTurn("z", (zoom_on_crop,)),))
    assert with_truth_coverage(Truth([(0.0, 0.0, 1.0, 1.0)]), sample, only_crops).truth_coverage is None  # type: ignore[arg-type]
    # Box sizes count zooms on the sample's own image; none executed: no size, never 0.
    stats = agent_statistics([ScoredSample(sample, "", transcript=later)])
    assert stats["zoom_area_share_mean"] == pytest.approx(16 / 64) and stats["tool_calls"] == 2
    refused = ToolStep(ToolCall(ZOOM, None, "{", error="bad"), error="bad")
    none = agent_statistics([ScoredSample(sample, "", transcript=Transcript((AgentTurn("z", (refused,)),)))])
    assert none["zoom_area_share_median"] is None and none["zoomed_share"] == 0 and none["tool_errors"] == 1
    assert agent_statistics([ScoredSample(sample, "A")]) == {}


def test_a_call_may_zoom_into_an_earlier_crop(vstar: tuple[Path, list], tmp_path: Path) -> None:
    """``image_index`` names the image a box is in: 0 the sample's, k the k-th crop sent back
    (in its pixels as sent, after the resize); an index that names nothing is refused."""
    data, samples = vstar
    q = samples[0].question
    into = '<tool_call>\n{"name": "image_zoom_in_tool", "arguments": {"bbox_2d": [0, 0, 28, 28], "image_index": %d}}\n</tool_call>'
    with ScriptedSIFServer({q: [call([130, 96, 175, 141]), (into % 1) + (into % 5), "<answer>B</answer>"]}) as server:
        _zoom_run(server, data, tmp_path / "run", samples[:1], cache=None)
        third = _messages_of(server, q)[2][5]["content"]
    picture = np.asarray(samples[0].images[0].load().convert("RGB"))
    first_crop = resized(picture[96:141, 130:175], 56, 56)
    (image,) = [p for p in third if p["type"] == "image_url"]
    assert np.array_equal(decoded(image["image_url"]["url"]), resized(first_crop[0:28, 0:28], 56, 56))
    said = " ".join(p.get("text", "") for p in third)
    assert "Error: image_index must name one of the 2 image(s) (0 to 1)" in said
