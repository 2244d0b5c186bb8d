"""Issue 20's inner changes, each pinned: failures stay typed from the backend to the run folder
(a message that merely starts with ``backend:`` is not a backend failure), the run folder keeps
kind and message and still reads the older text form, a string becomes a prompt mode in one
place, and a build parses each written chain once."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from sifeval.adapters import get_benchmark
from sifeval.cvbench import build_mirror as build_cvbench
from sifeval.driver import RunAborted
from sifeval.rundir import read_run, scored_from_json
from sifeval.runner import run
from sifmodel.backends import GenerationError, GenerationRequest, GenerationResponse
from sifmodel.prompts import prompt_mode


class FailingBackend:
    """Every request fails with ``error`` (a named fake: the boundary is the engine)."""

    name = "failing"
    max_in_flight = 2

    def __init__(self, error: GenerationError) -> None:
        self.error = error
        self.asked = 0

    def identity(self) -> dict[str, Any]:
        return {"fingerprint": f"failing-{self.error.kind}"}

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResponse]:
        return list(self.stream(requests))

    def stream(self, requests: Iterable[GenerationRequest]) -> Iterator[GenerationResponse]:
        for request in requests:
            self.asked += 1
            yield GenerationResponse(request.id, None, self.error)


def test_failures_reach_the_run_folder_typed(tmp_path: Path) -> None:
    data = build_cvbench(tmp_path / "cv")
    bench = get_benchmark("cvbench")
    # Under the old "kind: message" strings this request failure read as a backend failure.
    lookalike = GenerationError("request", "backend: a reply that begins like a prefix")
    result = run(bench, FailingBackend(lookalike), "failing", tmp_path / "r", data_dir=data, mode="plain",
                 limit=5, progress=False)  # fmt: skip
    assert result.request_errors == 5  # not aborted: five samples, each its own request error
    lines = [json.loads(line) for line in (tmp_path / "r" / "samples.jsonl").read_text().splitlines()]
    assert [line["request_error"] for line in lines] == [lookalike.to_json()] * 5
    _, scored = read_run(tmp_path / "r")
    assert {item.request_error for item in scored} == {lookalike}

    backend = FailingBackend(GenerationError("backend", "the key was refused"))
    with pytest.raises(RunAborted, match=r"^the key was refused$"):
        run(bench, backend, "failing", tmp_path / "b", data_dir=data, mode="plain", limit=5, progress=False)
    assert backend.asked <= 2 * backend.max_in_flight  # stopped at once, not after every sample


def test_run_folders_written_before_typed_failures_still_read() -> None:
    line = {"sample": {"id": "s", "question": "q", "target": "A", "category": "c"}, "response": None}
    assert scored_from_json({**line, "request_error": "request: APIConnectionError: refused"}).request_error == (
        GenerationError("request", "APIConnectionError: refused")
    )
    assert scored_from_json({**line, "request_error": "no reply at all"}).request_error == (
        GenerationError("request", "no reply at all")
    )
    typed = {"kind": "lmms-eval", "message": "[LMMS_EVAL_REQUEST_FAILED after 3 retries]"}
    assert scored_from_json({**line, "request_error": typed}).request_error == GenerationError(**typed)
    assert scored_from_json({**line, "request_error": None}).request_error is None


def test_a_string_becomes_a_prompt_mode_in_one_place() -> None:
    assert [prompt_mode(text) for text in ("sif", "sif-rgb", "plain")] == ["sif", "sif-rgb", "plain"]
    for wrong in ("SIF", "sif_rgb", "", "rgb"):
        with pytest.raises(ValueError, match="choose one of sif, sif-rgb, plain"):
            prompt_mode(wrong)


def test_a_build_parses_each_written_chain_once(
    tmp_path: Path, tiny_depth_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sifdata.chain
    from sifdata.builder.pipeline import BuildConfig, build
    from sifdata.depth import DepthEstimator
    from sifdata.schema import SIFRecord

    calls: list[str] = []
    real = sifdata.chain._parse_strict

    def counted(text: str):  # type: ignore[no-untyped-def]
        calls.append(text)
        return real(text)

    monkeypatch.setattr(sifdata.chain, "_parse_strict", counted)
    config = BuildConfig(source="synthetic", n=6, depth_model=str(tiny_depth_model), depth_device="cpu")
    report = build(config, tmp_path / "b", estimator=DepthEstimator(str(tiny_depth_model), device="cpu"),
                   progress=False)  # fmt: skip
    assert report.records == 6 and report.rejects == 0
    assert len(calls) == 6 and len(set(calls)) == 6  # the writer's check, once per record; not 3 times
    # A record read back from disk is still checked: its chain is parsed when it is validated.
    entry = json.loads((next((tmp_path / "b" / "work").glob("shard-*")) / "records.jsonl").read_text().splitlines()[0])
    SIFRecord.model_validate(entry["record"])
    assert len(calls) == 7
