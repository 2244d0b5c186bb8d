"""GPU-speed plumbing, on CPU: streaming backends, the streaming runner (killed and resumed), the
vLLM backend against a stand-in engine, benchmarks registered from outside, depth batched
across image sizes, and the hf: backend's loading options."""

from __future__ import annotations

import hashlib
import json
import math
import random
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from chat_server import ScriptedChatServer
from conftest import kill_once_journaled
from PIL import Image
from typer.testing import CliRunner

from sifeval.adapters import get_benchmark, load_samples
from sifeval.cli import app
from sifeval.cvbench import build_mirror as build_cvbench
from sifmodel.backends import GenerationRequest, GenerationResponse, GenerationSettings, load

FAKES = Path(__file__).parent / "fakes"  # a stand-in `vllm` package: importable only with this folder on sys.path
runner = CliRunner()


def _lognormal(median: float, sigma: float):  # type: ignore[no-untyped-def]
    """Per-request latencies, seeded by the request, as generation lengths vary."""

    def latency(request: dict) -> float:
        seed = hashlib.sha256(json.dumps(request["messages"]).encode()).digest()
        return min(random.Random(seed).lognormvariate(math.log(median), sigma), 1.0)

    return latency


def test_the_openai_backend_streams_in_completion_order() -> None:
    """The first request is held by the server until the three after it have come back through
    the stream: a backend that answered in request order would hand back nothing (the gate
    opens after 30 s, and the order then shows it). No clock is read."""
    release = threading.Event()

    def latency(request: dict) -> float:
        if "slow" in json.dumps(request["messages"]):
            release.wait(30)
        return 0.0

    image = Image.new("RGB", (8, 8), "white")
    with ScriptedChatServer(latency=latency) as server:
        backend = load(f"openai:m@{server.base_url}?concurrency=4")
        requests = [
            GenerationRequest(f"r{i}", "slow one" if i == 0 else f"quick {i}", (image,), mode="plain") for i in range(4)
        ]
        arrivals = []
        for response in backend.stream(requests):
            arrivals.append(response.id)
            if len(arrivals) == 3:
                release.set()
        release.set()
    assert arrivals[-1] == "r0" and sorted(arrivals[:3]) == ["r1", "r2", "r3"]  # the slow one holds back none
    in_order = backend.generate(requests)  # generate() keeps the order of the requests
    assert [r.id for r in in_order] == ["r0", "r1", "r2", "r3"]


def test_a_killed_streaming_run_resumes_with_every_sample_exactly_once(tmp_path: Path) -> None:
    """The server holds one question's request until the child has been killed, so the child
    can never finish before the kill, however fast the machine (a state, never a time)."""
    data = build_cvbench(tmp_path / "cvbench", per_task=6)  # 24 questions
    held = json.dumps(load_samples(get_benchmark("cvbench"), data)[-1].question)[1:-1]
    killed_yet = threading.Event()
    varied = _lognormal(0.02, 0.8)

    def latency(request: dict) -> float:
        if held in json.dumps(request["messages"]):
            killed_yet.wait(120)
        return varied(request)

    with ScriptedChatServer(latency=latency) as server:
        args = [
            sys.executable,
            "-m",
            "sifeval.cli",
            "run",
            "--bench",
            "cvbench",
            "--model",
            f"openai:m@{server.base_url}?concurrency=6",
        ]
        args += ["--data", str(data), "--mode", "plain", "--no-cache", "--no-progress"]
        killed = tmp_path / "killed"
        process = subprocess.Popen([*args, "--out", str(killed)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        journal = killed / "samples.jsonl"
        kill_once_journaled(process, journal, 5)
        killed_yet.set()
        before = journal.read_text().count("\n")
        assert 5 <= before < 24
        subprocess.run([*args, "--out", str(killed), "--resume"], check=True, capture_output=True)
    lines = [json.loads(line) for line in journal.read_text().splitlines()]
    assert len(lines) == 24 and len({line["id"] for line in lines}) == 24  # each sample exactly once
    assert all(line["request_error"] is None for line in lines)
    order = [int(line["id"]) for line in lines]
    assert order != sorted(order)  # journaled as they arrived, not in sample order
    results = json.loads((killed / "results.json").read_text())
    assert results["n"] == 24 and results["request_errors"] == 0


@pytest.fixture
def stand_in_vllm(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """The stand-in engine module (tests/fakes/vllm), on sys.path for this test only."""
    monkeypatch.syspath_prepend(str(FAKES))
    monkeypatch.delitem(sys.modules, "vllm", raising=False)
    import vllm

    vllm.LLM.calls.clear()
    yield vllm
    sys.modules.pop("vllm", None)


def test_vllm_backend_hands_the_engine_large_chunks_and_isolates_a_failing_prompt(stand_in_vllm) -> None:  # type: ignore[no-untyped-def]
    backend = load("vllm:stand-in-model?chunk_size=128&tensor_parallel_size=2")
    assert backend.llm.engine_options["tensor_parallel_size"] == 2  # type: ignore[attr-defined]
    image, depth = Image.new("RGB", (8, 8), "white"), Image.new("RGB", (8, 8), "gray")
    requests = [
        GenerationRequest(
            f"r{i}",
            "FAIL_THIS_PROMPT" if i == 200 else f"question {i}",
            (image,),
            depth_image=depth,
            mode="sif",
            settings=GenerationSettings(max_new_tokens=8 + i % 3),
        )
        for i in range(300)
    ]
    responses = backend.generate(requests)
    assert [r.id for r in responses] == [r.id for r in requests]
    assert not responses[200].ok and "malformed" in responses[200].error.message  # type: ignore[union-attr]
    assert all(r.ok for i, r in enumerate(responses) if i != 200)
    assert all("images=2" in (r.text or "") for i, r in enumerate(responses) if i != 200)  # RGB and depth
    assert all(f"max_tokens={8 + i % 3}" in (r.text or "") for i, r in enumerate(responses) if i != 200)  # per prompt
    calls = stand_in_vllm.LLM.calls
    assert calls[:1] == [128] and max(calls) == 128
    # 3 chunks (128, 128, 44), the failing one halved until its bad prompt stands alone: 2 * 7 more calls.
    assert sum(1 for c in calls if c == 1) == 2 and len(calls) == 3 + 2 * 7


def test_vllm_backend_through_the_runner(stand_in_vllm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = build_cvbench(tmp_path / "cvbench", per_task=64)  # 256 questions
    out = tmp_path / "run"
    result = runner.invoke(
        app,
        [
            "run",
            "--no-progress",
            "--bench",
            "cvbench",
            "--model",
            "vllm:stand-in?chunk_size=128",
            "--data",
            str(data),
            "--mode",
            "plain",
            "--out",
            str(out),
            "--no-cache",
        ],
    )
    assert result.exit_code == 0, result.output
    assert len(stand_in_vllm.LLM.calls) <= 3 and sum(stand_in_vllm.LLM.calls) == 256  # not 256 calls of one prompt
    assert json.loads((out / "results.json").read_text())["n"] == 256


def test_a_benchmark_from_another_package_registers_and_runs_end_to_end(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).parent / "third_party"))  # as installing that package would
    listed = runner.invoke(app, ["list"])
    assert listed.exit_code == 0 and "toy-colours" in listed.output and "cvbench" in listed.output
    assert runner.invoke(app, ["mirror", "toy-colours", "--out", str(tmp_path / "toy")]).exit_code == 0
    with ScriptedChatServer() as server:
        server.script("0.png", ["text:It is red."])
        result = runner.invoke(
            app,
            [
                "run",
                "--no-progress",
                "--bench",
                "toy-colours",
                "--model",
                f"openai:m@{server.base_url}",
                "--data",
                str(tmp_path / "toy"),
                "--mode",
                "plain",
                "--out",
                str(tmp_path / "run"),
                "--no-cache",
            ],
        )
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["benchmark"] == "toy-colours" and results["n"] == 3
    assert results["metrics"]["score"] == pytest.approx(100 / 3)  # red right; the scripted default says "A"


def test_depth_is_estimated_in_batches_across_image_sizes(tiny_depth_model: Path) -> None:
    from sifdata.depth import DepthEstimator, to_sif_polarity

    rng = np.random.default_rng(0)
    sizes = [(40, 30), (40, 31), (64, 48), (41, 30), (120, 90), (30, 40), (64, 48), (100, 75)]
    images = [Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)) for w, h in sizes]
    estimator = DepthEstimator(str(tiny_depth_model), device="cpu", batch_size=8)
    batched = estimator.estimate(images)
    assert estimator.forward_passes < len(images)  # different sizes shared forward passes
    for image, depth in zip(images, batched, strict=True):
        one = estimator.pipeline(image)["predicted_depth"].float().numpy()  # the pipeline, one image at a time
        assert depth.shape == (image.height, image.width)
        np.testing.assert_allclose(depth, to_sif_polarity(np.squeeze(one)), atol=1e-5)
    square = DepthEstimator(str(tiny_depth_model), device="cpu", batch_size=8, uniform_size=56)
    assert [d.shape for d in square.estimate(images)] == [(h, w) for w, h in sizes] and square.forward_passes == 1


def test_hf_backend_takes_loading_options_through_the_spec(tiny_vlm: Path) -> None:
    backend = load(f"hf:{tiny_vlm}?device_map=cpu&attn_implementation=eager&dtype=float32&batch_size=2")
    assert backend.model.config._attn_implementation == "eager"  # type: ignore[attr-defined]
    assert backend.max_in_flight == 2 and str(backend.model.dtype) == "torch.float32"  # type: ignore[attr-defined]
    image = Image.new("RGB", (28, 28), "white")
    settings = GenerationSettings(max_new_tokens=3)
    responses = backend.generate(
        [GenerationRequest(f"q{i}", "q?", (image,), mode="plain", settings=settings) for i in range(3)]
    )
    assert [r.ok for r in responses] == [True, True, True]


def test_serving_defaults_keep_an_engine_busy() -> None:
    backend = load("openai:m@http://127.0.0.1:9/v1")
    assert backend.max_in_flight == 64  # a served engine batches what it has: dozens in flight, not 16


def test_a_reader_that_stops_early_leaves_no_engine_thread_running() -> None:
    """An aborted run closes the stream: the engine's thread finishes the batch it started, takes
    nothing more, and is gone when close() returns (a daemon thread left inside torch while the
    interpreter shuts down ends the process in a C++ abort, exit 134; issue 19)."""
    import threading

    from sifmodel.backends.streaming import RequestFeed, stream_in_batches

    started: list[int] = []
    finished: list[int] = []
    release, second_started = threading.Event(), threading.Event()

    def run_batch(batch):  # type: ignore[no-untyped-def]
        started.append(len(batch))
        if len(started) > 1:
            second_started.set()
            release.wait(5)  # the second batch is still "generating" when the reader stops
        finished.append(len(batch))
        return [GenerationResponse(request.id, "x") for request in batch]

    feed = RequestFeed([GenerationRequest(str(i), "q", ()) for i in range(2)])
    stream = stream_in_batches(feed, run_batch, batch_size=2)
    next(stream)  # the first batch's first response
    for i in range(2, 8):
        feed.put(GenerationRequest(str(i), "q", ()))
    assert second_started.wait(5)
    threading.Timer(0.2, release.set).start()
    stream.close()  # the reader stops early, the feed still open and holding requests
    assert not [thread for thread in threading.enumerate() if thread.name == "sif-stream"]
    assert started == finished == [2, 2]  # the running batch finished; the queued ones were dropped
