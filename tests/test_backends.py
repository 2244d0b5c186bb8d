from __future__ import annotations

from pathlib import Path

import pytest
from chat_server import ScriptedChatServer
from PIL import Image

from sifdata.llm import RetryPolicy
from sifdata.sources.synthetic import photos_dir
from sifmodel.backends import GenerationRequest, GenerationSettings, load, parse_spec
from sifmodel.backends.openai_backend import OpenAIBackend
from sifmodel.prompts import DepthRequired, build_messages

PHOTO = Image.open(photos_dir() / "animate_glass.jpg").convert("RGB").resize((192, 83))
SHORT = GenerationSettings(max_new_tokens=6)


def _request(rid: str, mode: str = "sif", **kwargs) -> GenerationRequest:
    return GenerationRequest(
        rid, "What color is the bag?", (PHOTO,), mode=mode, settings=kwargs.pop("settings", SHORT), **kwargs
    )


def test_prompt_modes() -> None:
    depth = Image.new("I;16", PHOTO.size, 30000)
    sif = build_messages("What color is the bag?", PHOTO, depth)
    assert [kind for kind, _ in sif.parts] == ["text", "image", "text", "image", "text"]
    assert sif.text.startswith("Original image: <image>\nDepth image: <image>\nWhat color is the bag? Please first")
    assert sif.images[1].mode == "RGB"  # 16-bit depth rendered for the model
    assert [kind for kind, _ in build_messages("q?", PHOTO, mode="sif-rgb").parts] == ["text", "image", "text"]
    assert build_messages("q?", [PHOTO, PHOTO], mode="plain").text == "<image><image>q?"
    with pytest.raises(DepthRequired):
        build_messages("q?", PHOTO)
    openai = sif.openai_messages(image_max_side=64)[0]["content"]
    assert openai[1]["type"] == "image_url" and openai[1]["image_url"]["url"].startswith(
        "data:image/png;base64,"
    )  # lossless: the pixels hf: sees
    hf = build_messages("q?", PHOTO, mode="sif-rgb", system="Be brief.").hf_messages()
    assert hf[0] == {"role": "system", "content": "Be brief."} and hf[1]["content"][1]["type"] == "image"


def test_spec_parsing() -> None:
    assert parse_spec("hf:/models/x?batch_size=2&device=cpu") == ("hf", "/models/x", {"batch_size": 2, "device": "cpu"})
    assert parse_spec("openai:Qwen/Qwen2.5-VL-7B@http://h:8000/v1") == (
        "openai",
        "Qwen/Qwen2.5-VL-7B@http://h:8000/v1",
        {},
    )
    for bad in ("x:y", "hf:", "model-without-kind"):
        with pytest.raises(ValueError):
            parse_spec(bad)
    with pytest.raises(ValueError, match="MODEL@BASE_URL"):
        load("openai:no-url-here")


def test_transformers_backend_batches_and_estimates_depth(tiny_vlm: Path, tiny_depth_model: Path) -> None:
    backend = load(f"hf:{tiny_vlm}?batch_size=2&device=cpu", depth_model=str(tiny_depth_model), depth_device="cpu")
    requests = [_request("a"), _request("b", mode="sif-rgb"), _request("c", mode="plain"), _request("d")]
    responses = backend.generate(requests)
    assert [r.id for r in responses] == ["a", "b", "c", "d"]
    assert all(r.ok and r.prompt_tokens and r.completion_tokens == 6 for r in responses)
    assert responses[0].prompt_tokens > responses[1].prompt_tokens  # the depth image costs tokens
    sampled = GenerationSettings(max_new_tokens=6, temperature=1.0, seed=7)
    first, again = (backend.generate([_request("s", settings=sampled)])[0] for _ in range(2))
    assert first.text == again.text  # seeded sampling is reproducible


def test_transformers_backend_types_a_failing_request(tiny_vlm: Path) -> None:
    backend = load(f"hf:{tiny_vlm}?device=cpu")
    broken = GenerationRequest("bad", "q?", ("not an image",), mode="sif-rgb", settings=SHORT)  # type: ignore[arg-type]
    responses = backend.generate([_request("ok", mode="sif-rgb"), broken])
    assert responses[0].ok
    assert not responses[1].ok and responses[1].text is None and responses[1].error.kind == "request"
    with pytest.raises(ValueError, match="no depth model was given"):
        backend.generate([_request("needs-depth")])


def test_openai_backend_against_transformers_serve(served_tiny_vlm: str, tiny_vlm: Path) -> None:
    backend = load(f"openai:{tiny_vlm}@{served_tiny_vlm}?concurrency=2")
    requests = [_request(f"r{i}", mode="sif-rgb") for i in range(3)]
    responses = backend.generate(requests)
    assert [r.id for r in responses] == ["r0", "r1", "r2"]
    assert all(r.ok and r.prompt_tokens and r.latency_s for r in responses), responses


def test_openai_backend_errors_are_typed_never_answers() -> None:
    with ScriptedChatServer() as server:
        server.script("first", ["500"] * 3)
        backend = OpenAIBackend("m", server.base_url, retry=RetryPolicy(3, base_delay=0.01))
        bad = GenerationRequest("x", "first question", (PHOTO,), mode="plain", settings=SHORT)
        fine = GenerationRequest("y", "second question", (PHOTO,), mode="plain", settings=SHORT)
        responses = backend.generate([bad, fine])
        assert (
            responses[0].text is None
            and responses[0].error.kind == "request"
            and "HTTP 500" in responses[0].error.message
        )
        assert responses[1].error is None
    with ScriptedChatServer(default="401") as server:
        (response,) = OpenAIBackend("m", server.base_url).generate([fine])
        assert response.error.kind == "backend" and "HTTP 401" in response.error.message


def test_vllm_backend_says_how_to_get_vllm() -> None:
    pytest.importorskip("torch")
    try:
        import vllm  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="sifthinker\\[vllm\\]"):
            load("vllm:Qwen/Qwen2.5-VL-7B-Instruct")
    else:  # pragma: no cover - GPU machines
        pytest.skip("vLLM is installed here; the GPU path is exercised by the device runs")
