from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import datasets
import pytest
from chat_server import ScriptedChatServer
from conftest import kill_once_journaled
from PIL import Image
from typer.testing import CliRunner

from sifeval import get_benchmark
from sifeval.cli import app
from sifeval.mirrors import build_all
from sifeval.types import Sample, ScoredSample
from sifmodel.backends import GenerationSettings

runner = CliRunner()


@pytest.fixture(scope="module")
def mirrors(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_all(tmp_path_factory.mktemp("mirrors"))


def _scored(category: str, score: float | None, **metadata: object) -> ScoredSample:
    sample = Sample(
        id=f"{category}-{len(metadata)}-{score}-{id(metadata)}",
        question="q",
        target="A",
        category=category,
        metadata=dict(metadata),
    )
    return ScoredSample(sample, "r", "A", True, score)


# The official formulas and reply tables are in test_conformance.py.


# ----------------------------------------------------------------------------- mirrors


def test_mirrors_have_the_upstream_layouts(mirrors: dict[str, Path]) -> None:
    two_d = datasets.load_dataset(str(mirrors["cvbench"]), "2D", split="test")
    assert {"idx", "type", "task", "image", "question", "choices", "answer", "prompt", "source"} <= set(
        two_d.column_names
    )
    assert set(two_d["source"]) == {"ADE20K", "COCO"} and two_d[0]["answer"].startswith("(")
    assert len(datasets.load_dataset(str(mirrors["cvbench"]), "3D", split="test")) == 8  # (default: see conformance)
    sat = datasets.load_dataset("parquet", data_files=str(mirrors["sat"] / "SAT_test.parquet"), split="train")
    assert set(sat.column_names) == {"image_bytes", "question", "answers", "question_type", "correct_answer"}
    first = json.loads((mirrors["vstar"] / "test_questions.jsonl").read_text().splitlines()[0])
    assert set(first) == {"image", "text", "category", "question_id", "label"}
    meta = json.loads((mirrors["vstar"] / first["image"].replace(".jpg", ".json")).read_text())
    assert meta["options"][0] in first["text"] and len(meta["bbox"][0]) == 4  # correct option first; x, y, w, h
    positional = json.loads((mirrors["spatialbench"] / "positional.json").read_text())
    assert positional[0]["image"].endswith(".jpg")  # the depth twin is a PNG whatever the RGB format
    depth = Image.open(mirrors["spatialbench"] / "positional_d" / Path(positional[0]["image"]).with_suffix(".png").name)
    assert depth.mode.startswith("I") and set(positional[0]) == {"id", "image", "question", "answer"}
    assert "id" not in json.loads((mirrors["spatialbench"] / "size.json").read_text())[0]
    samples = get_benchmark("viscot").load(mirrors["viscot"])
    assert {s.category for s in samples} == {"gqa", "vsr"} and len(samples[0].metadata["truth_padded_px"]) == 4


def test_every_adapter_loads_its_mirror(mirrors: dict[str, Path]) -> None:
    counts = {name: len(get_benchmark(name).load(mirrors[name])) for name in mirrors}
    assert counts == {
        "cvbench": 16,
        "vstar": 12,
        "sat": 28,
        "spatialbench": 20,
        "viscot": 12,
    }  # SAT: 12 questions, circular (one copy per position of the answer)
    assert len(get_benchmark("sat", "letters").load(mirrors["sat"])) == 28


# ----------------------------------------------------------------------------- end to end


def _run(*args: str) -> str:
    result = runner.invoke(app, ["run", "--no-progress", *args])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("name", ["cvbench", "vstar", "sat", "spatialbench", "viscot"])
def test_each_benchmark_runs_end_to_end_on_the_tiny_model(
    name: str, mirrors: dict[str, Path], tiny_vlm: Path, tiny_depth_model: Path, tmp_path: Path
) -> None:
    out = tmp_path / name
    _run(
        "--bench",
        name,
        "--model",
        f"hf:{tiny_vlm}?device=cpu",
        "--data",
        str(mirrors[name]),
        "--out",
        str(out),
        "--limit",
        "6",
        "--max-new-tokens",
        "8",
        "--depth-model",
        str(tiny_depth_model),
        "--judge",
        "match",
    )
    results = json.loads((out / "results.json").read_text())
    assert results["n"] == 6 and results["request_error_rate"] == 0.0 and results["request_errors"] == 0
    assert not results["complete"] and any("covers 6 of the benchmark's" in note for note in results["notes"])
    assert results["parse_failure_rate"] == 1.0  # a random model never commits to an answer: counted, not hidden
    # Every reply a parse failure, so every answer wrong: 0 where the official formula can be
    # computed from the first 6 samples; null where it needs a part they lack, the note naming it.
    lacking = {
        "cvbench": "source/Omni3D",  # the first 6 are 2D questions; the score needs the 3D half
        "vstar": None,  # 6 direct_attributes questions: the headline is over all questions
        "sat": None,  # accuracy over the samples asked
        "spatialbench": "category/counting",  # positional and existence only; the score needs all five
        "viscot": "answer/docvqa",  # gqa only; the headline is the mean over the eleven subsets
    }[name]
    nulls = [note for note in results["notes"] if note.startswith("cannot be computed from this run (null): ")]
    if lacking is None:
        assert results["metrics"]["score"] == 0.0
    else:
        assert results["metrics"]["score"] is None
        assert len(nulls) == 1 and lacking in nulls[0] and "score, " in nulls[0]
    assert results["dataset"]["local_path"] == str(mirrors[name]) and results["versions"]["sifthinker"]
    lines = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(lines) == 6 and all(line["response"] is not None and line["parse_ok"] is False for line in lines)


def test_openai_backend_against_transformers_serve(
    served_tiny_vlm: str, tiny_vlm: Path, mirrors: dict[str, Path], tmp_path: Path
) -> None:
    _run(
        "--bench",
        "cvbench",
        "--model",
        f"openai:{tiny_vlm}@{served_tiny_vlm}",
        "--data",
        str(mirrors["cvbench"]),
        "--out",
        str(tmp_path / "run"),
        "--limit",
        "4",
        "--mode",
        "plain",
        "--max-new-tokens",
        "4",
    )
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["n"] == 4 and results["model"]["backend"] == "openai" and results["request_error_rate"] == 0.0
    # On values: the same weights asked in-process through transformers (hf:, greedy, one at a
    # time) write the same replies, so the served run scores what the model says.
    _run(
        "--bench", "cvbench", "--model", f"hf:{tiny_vlm}?device=cpu&batch_size=1", "--data", str(mirrors["cvbench"]),
        "--out", str(tmp_path / "direct"), "--limit", "4", "--mode", "plain", "--max-new-tokens", "4", "--no-cache",
    )  # fmt: skip

    def replies(folder: Path) -> dict[str, str]:
        lines = [json.loads(line) for line in (folder / "samples.jsonl").read_text().splitlines()]
        return {line["id"]: line["response"] for line in lines}

    served, direct = replies(tmp_path / "run"), replies(tmp_path / "direct")
    # transformers serve strips a reply's surrounding whitespace (the random model writes only
    # newlines: "\n\n\n\n" in-process, "" served); the text within is the same.
    assert len(served) == 4 and served == {key: text.strip() for key, text in direct.items()}
    direct_results = json.loads((tmp_path / "direct" / "results.json").read_text())
    assert results["metrics"] == direct_results["metrics"]


def test_request_errors_are_counted_apart_and_resume_retries_them(
    mirrors: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIF_MODEL_API_KEY", "sk-model-SECRET-777")
    out = tmp_path / "run"
    samples = get_benchmark("vstar").load(mirrors["vstar"])[:4]
    # By hand (targets B, B, C, C): sample 0 answers A (wrong), sample 1 fails twice (then C,
    # wrong), samples 2 and 3 answer C (right).
    assert [s.target for s in samples] == ["B", "B", "C", "C"]
    with ScriptedChatServer(default="text:<answer>C</answer>") as server:
        server.script(samples[0].question.split("\n")[0], ["text:<answer>A</answer>"])
        server.script(samples[1].question.split("\n")[0], ["500"] * 2)
        failed = runner.invoke(
            app,
            [
                "run",
                "--no-progress",
                "--bench",
                "vstar",
                "--model",
                f"openai:m@{server.base_url}?retries=2&retry_delay=0.01",
                "--data",
                str(mirrors["vstar"]),
                "--out",
                str(out),
                "--limit",
                "4",
                "--mode",
                "plain",
                "--no-cache",
            ],
        )
        assert failed.exit_code == 1 and "rerun with --resume" in " ".join(failed.output.split())  # not all done
        first = json.loads((out / "results.json").read_text())
        assert first["request_error_rate"] == 0.25 and not first["complete"] and first["n_scored"] == 3
        assert first["metrics"]["score"] == pytest.approx(50.0)  # 2 of 4: the unanswered one counts as wrong
        assert first["metrics"]["score_answered_only"] == pytest.approx(100 * 2 / 3)
        assert first["request_errors"] == 1 and "--resume" in first["notes"][0]
        asked = len(server.requests)
        same_run = [
            "--bench",
            "vstar",
            "--model",
            f"openai:m@{server.base_url}",
            "--data",
            str(mirrors["vstar"]),
            "--out",
            str(out),
            "--limit",
            "4",
            "--mode",
            "plain",
        ]
        rerun = runner.invoke(app, ["run", "--no-progress", *same_run])
        assert rerun.exit_code == 1 and "--resume" in rerun.output  # never overwrites a run silently
        _run(*same_run, "--resume", "--no-cache")
        assert len(server.requests) == asked + 1  # only the failed sample was asked again
    final = json.loads((out / "results.json").read_text())
    assert final["request_error_rate"] == 0.0 and final["request_errors"] == 0 and final["n"] == 4
    assert final["metrics"]["score"] == final["metrics"]["score_answered_only"] == pytest.approx(50.0)
    assert server.headers[0]["authorization"] == "Bearer sk-model-SECRET-777"
    for path in out.iterdir():
        assert "SECRET" not in path.read_text(), path  # the key reaches the server, never a file


def test_killed_run_resumes_without_recomputing_or_duplicating(mirrors: dict[str, Path], tmp_path: Path) -> None:
    """The server holds the last sample's request until the child is killed: it cannot finish
    first, however fast the machine (a state, never a time)."""
    import threading

    from sifeval.adapters import load_samples

    samples = load_samples(get_benchmark("vstar"), mirrors["vstar"])
    held = json.dumps(samples[-1].question)[1:-1]
    killed_yet = threading.Event()

    def latency(request: dict) -> float:
        if held in json.dumps(request["messages"]):
            killed_yet.wait(120)
        return 0.0

    killed, clean = tmp_path / "killed", tmp_path / "clean"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    journal = killed / "samples.jsonl"
    with ScriptedChatServer(default="text:<answer>B</answer>", latency=latency) as server:
        args = [sys.executable, "-m", "sifeval.cli", "run", "--bench", "vstar", "--data", str(mirrors["vstar"])]
        args += [
            "--model",
            f"openai:m@{server.base_url}?concurrency=2",
            "--mode",
            "plain",
            "--no-progress",
            "--no-cache",
        ]
        process = subprocess.Popen(
            [*args, "--out", str(killed)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        kill_once_journaled(process, journal, 3)
        killed_yet.set()
        before = journal.read_text().count("\n")
        assert 3 <= before < len(samples)
        asked_before = len(server.requests)
        subprocess.run([*args, "--out", str(killed), "--resume"], env=env, check=True, capture_output=True)
        asked_on_resume = len(server.requests) - asked_before
        subprocess.run([*args, "--out", str(clean)], env=env, check=True, capture_output=True)
    killed_lines = [json.loads(line) for line in journal.read_text().splitlines()]
    clean_lines = [json.loads(line) for line in (clean / "samples.jsonl").read_text().splitlines()]
    assert len(killed_lines) == 12 and len({line["id"] for line in killed_lines}) == 12  # nothing redone twice
    # The resume asked only what the journal lacked (the held request may be counted once more).
    assert asked_on_resume in (12 - before, 12 - before + 1)
    pairs = sorted((x["id"], x["response"]) for x in killed_lines)
    assert pairs == sorted((x["id"], x["response"]) for x in clean_lines)


def test_response_cache_answers_a_rerun(mirrors: dict[str, Path], tiny_vlm: Path, tmp_path: Path) -> None:
    spec = f"hf:{tiny_vlm}?device=cpu"
    for run_dir in ("a", "b"):
        _run(
            "--bench",
            "cvbench",
            "--model",
            spec,
            "--data",
            str(mirrors["cvbench"]),
            "--out",
            str(tmp_path / run_dir),
            "--limit",
            "3",
            "--mode",
            "plain",
            "--max-new-tokens",
            "4",
        )
    second = [json.loads(line) for line in (tmp_path / "b" / "samples.jsonl").read_text().splitlines()]
    assert all(line.get("cached") for line in second)


def test_shards_merge_rescore_and_report(mirrors: dict[str, Path], tmp_path: Path) -> None:
    """A scripted model right on three questions in every order and otherwise answering the
    first option it is shown (right in one order of each): the merged figures by hand."""
    from sifeval.scripted import ScriptedSIFServer

    samples = get_benchmark("sat").load(mirrors["sat"])
    knows = {0, 2, 5}  # question_index
    replies: dict[str, str] = {}
    for sample in samples:
        replies.setdefault(
            sample.question, sample.target if sample.metadata["question_index"] in knows else sample.choices[0]
        )
    right = [replies[s.question] == s.target for s in samples]
    by_question: dict[int, list[bool]] = {}
    for sample, verdict in zip(samples, right, strict=True):
        by_question.setdefault(sample.metadata["question_index"], []).append(verdict)
    expected = 100 * sum(right) / len(samples)
    expected_all_orders = 100 * sum(all(v) for v in by_question.values()) / len(by_question)
    assert 0 < expected < 100 and 0 < expected_all_orders < 100
    with ScriptedSIFServer(replies) as server:
        for index in range(2):
            _run(
                "--bench",
                "sat",
                "--model",
                f"openai:m@{server.base_url}",
                "--data",
                str(mirrors["sat"]),
                "--out",
                str(tmp_path / f"s{index}"),
                "--shard",
                f"{index}/2",
                "--mode",
                "sif-rgb",
                "--no-cache",
            )
    merged = runner.invoke(app, ["merge", str(tmp_path / "s0"), str(tmp_path / "s1"), "--out", str(tmp_path / "all")])
    assert merged.exit_code == 0, merged.output
    results = json.loads((tmp_path / "all" / "results.json").read_text())
    assert results["n"] == 28 and results["parse_failure_rate"] == 0.0
    assert results["metrics"]["score"] == pytest.approx(expected)
    assert results["metrics"]["all_orders_right"] == pytest.approx(expected_all_orders)
    rescored = runner.invoke(app, ["rescore", str(tmp_path / "all")])
    assert rescored.exit_code == 0, rescored.output
    assert json.loads((tmp_path / "all" / "results.json").read_text())["metrics"] == results["metrics"]
    assert (tmp_path / "all" / "results.json.before-rescore").is_file()
    report = runner.invoke(app, ["report", str(tmp_path / "all"), str(tmp_path / "s0")])
    assert report.exit_code == 0 and "## sat" in report.output and "No published SAT-Real numbers" in report.output
    html = tmp_path / "report.html"
    assert runner.invoke(app, ["report", str(tmp_path / "all"), "--format", "html", "--out", str(html)]).exit_code == 0
    assert html.read_text().startswith("<!doctype html>")


def test_report_flags_published_rows_with_other_protocols(mirrors: dict[str, Path], tmp_path: Path) -> None:
    with ScriptedChatServer() as server:
        _run(
            "--bench",
            "vstar",
            "--model",
            f"openai:m@{server.base_url}",
            "--data",
            str(mirrors["vstar"]),
            "--out",
            str(tmp_path / "v"),
            "--mode",
            "plain",
            "--no-cache",
        )
    text = runner.invoke(app, ["report", str(tmp_path / "v")]).output
    assert "DeepEyes-7B" in text and "protocol differs: correct option always first" in text
    rerun_line = next(line for line in text.splitlines() if "PR #66" in line)
    assert "protocol differs" not in rerun_line  # the shuffled rerun matches our protocol


def test_lmms_eval_logs_are_rescored_by_the_official_protocol(tmp_path: Path) -> None:
    """The older lmms-eval layout, with ``doc`` and ``resps`` on each line and files not named by
    task (hence --bench); the logs lmms-eval 0.7.3 writes: tests/test_lmms_eval_logs.py."""
    docs = [
        {
            "idx": 0,
            "type": "2D",
            "task": "Count",
            "question": "q",
            "choices": ["1", "2"],
            "answer": "(B)",
            "prompt": "q",
            "source": "ADE20K",
        },
        {
            "idx": 1,
            "type": "2D",
            "task": "Count",
            "question": "q",
            "choices": ["1", "2"],
            "answer": "(A)",
            "prompt": "q",
            "source": "COCO",
        },
        {
            "idx": 2,
            "type": "3D",
            "task": "Depth",
            "question": "q",
            "choices": ["a", "b"],
            "answer": "(A)",
            "prompt": "q",
            "source": "Omni3D",
        },
    ]
    replies = ["The answer is (B).", "The answer is (A).", "(B)"]  # first-letter parsing would read "T", "T", "("
    log = tmp_path / "cv_bench.jsonl"
    log.write_text(
        "".join(
            json.dumps({"doc_id": i, "doc": d, "resps": [[r]]}) + "\n"
            for i, (d, r) in enumerate(zip(docs, replies, strict=True))
        )
    )
    result = runner.invoke(
        app, ["rescore", "--from-lmms-eval", str(log), "--bench", "cvbench", "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "o" / "results.json").read_text())["metrics"]
    assert metrics["acc_2D"] == 100.0 and metrics["acc_3D"] == 0.0 and metrics["score"] == 50.0
    assert metrics["micro_accuracy"] == pytest.approx(200 / 3)
    vstar_log = tmp_path / "vstar.jsonl"
    doc = {
        "text": "What is it?\n(A) a cat\n(B) a dog\nAnswer with the option's letter from the given choices directly.",
        "category": "direct_attributes",
        "question_id": 3,
        "label": "B",
    }
    vstar_log.write_text(
        json.dumps({"doc_id": 0, "doc": doc, "filtered_resps": ["Based on the picture, I cannot tell."]}) + "\n"
    )
    result = runner.invoke(
        app, ["rescore", "--from-lmms-eval", str(vstar_log), "--bench", "vstar", "--out", str(tmp_path / "v")]
    )
    assert result.exit_code == 0, result.output
    assert (
        json.loads((tmp_path / "v" / "results.json").read_text())["metrics"]["score"] == 0.0
    )  # the "B" of "Based" is no answer (lmms-eval's parser reads B there)
    sat_log = tmp_path / "sat.jsonl"
    doc = {
        "question": "Which way?",
        "answers": ["left", "right"],
        "question_type": "ego_movement",
        "correct_answer": "right",
    }
    sat_log.write_text(json.dumps({"doc_id": 0, "doc": doc, "resps": [["(B)"]]}) + "\n")
    result = runner.invoke(
        app, ["rescore", "--from-lmms-eval", str(sat_log), "--bench", "sat", "--out", str(tmp_path / "s")]
    )
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "s" / "results.json").read_text())["metrics"]["score"] == 100.0
    # lmms-eval's own SAT re-host (nv-njb/SAT) gives correct_answer_idx instead of the text.
    indexed = {
        "question": "Which way?",
        "answers": ["left", "right"],
        "question_type": "ego_movement",
        "correct_answer_idx": 0,
    }
    sat_log.write_text(json.dumps({"doc_id": 0, "doc": indexed, "resps": [["A"]]}) + "\n")
    result = runner.invoke(
        app, ["rescore", "--from-lmms-eval", str(sat_log), "--bench", "sat", "--out", str(tmp_path / "s2")]
    )
    assert result.exit_code == 0, result.output
    rescored = json.loads((tmp_path / "s2" / "results.json").read_text())
    assert rescored["metrics"]["score"] == 100.0 and rescored["protocol"] == "letters"


def test_list_and_unknown_names() -> None:
    listed = runner.invoke(app, ["list"])
    assert listed.exit_code == 0 and "nyu-visionx/CV-Bench" in listed.output and "letters" in listed.output
    bad = runner.invoke(app, ["run", "--bench", "mmmu", "--model", "hf:x", "--out", "y"])
    assert bad.exit_code == 1 and "unknown benchmark" in bad.output
    with pytest.raises(ValueError, match="unknown protocol"):
        get_benchmark("sat", "tilted")


def test_vstar_likelihood_protocol_scores_options_by_the_model(
    mirrors: dict[str, Path], tiny_vlm: Path, tmp_path: Path
) -> None:
    from sifmodel.backends import load

    backend = load(f"hf:{tiny_vlm}?device=cpu")
    bench = get_benchmark("vstar", "likelihood")
    sample = bench.load(mirrors["vstar"])[0]
    request, options = bench.likelihood_request(sample, GenerationSettings(max_new_tokens=1))
    losses = backend.option_losses(request, options)
    assert len(losses) == len(sample.choices) and all(math.isfinite(v) and v > 0 for v in losses)
    assert len(set(losses)) > 1  # different texts, different likelihoods
    _run(
        "--bench",
        "vstar",
        "--protocol",
        "likelihood",
        "--model",
        f"hf:{tiny_vlm}?device=cpu",
        "--data",
        str(mirrors["vstar"]),
        "--out",
        str(tmp_path / "lk"),
        "--limit",
        "4",
    )
    results = json.loads((tmp_path / "lk" / "results.json").read_text())
    assert results["protocol"] == "likelihood" and results["parse_failure_rate"] == 0.0  # it always picks one
    line = json.loads((tmp_path / "lk" / "samples.jsonl").read_text().splitlines()[0])
    assert "option_losses" in line["response"] and line["extracted"] in "ABCD"
    assert runner.invoke(app, ["rescore", str(tmp_path / "lk")]).exit_code == 0  # losses re-score without the model
    assert json.loads((tmp_path / "lk" / "results.json").read_text())["metrics"] == results["metrics"]
    with pytest.raises(ValueError, match="scores text"):
        from sifeval.runner import run as run_benchmark
        from sifmodel.backends.openai_backend import OpenAIBackend

        run_benchmark(
            bench,
            OpenAIBackend("m", "http://127.0.0.1:9"),
            "m",
            tmp_path / "x",
            data_dir=mirrors["vstar"],
            limit=1,
            progress=False,
        )


def test_viscot_two_pass_protocol(mirrors: dict[str, Path], tmp_path: Path) -> None:
    bench = get_benchmark("viscot", "two-pass")
    first, second = bench.load(mirrors["viscot"])[:2]
    side = max(first.metadata["width"], first.metadata["height"])
    box = [round(v / side, 3) for v in first.metadata["truth_padded_px"]]
    with ScriptedChatServer() as server:
        server.script(first.question.lower(), [f"text:{box}"])  # the first pass asks lower-cased; a box alone
        server.script(first.question, [f"text:{first.target}"])
        _run(
            "--bench",
            "viscot",
            "--protocol",
            "two-pass",
            "--model",
            f"openai:m@{server.base_url}",
            "--data",
            str(mirrors["viscot"]),
            "--out",
            str(tmp_path / "tp"),
            "--limit",
            "2",
            "--judge",
            "match",
            "--no-cache",
        )
        asked = [json.dumps(r["messages"]) for r in server.requests]
    assert len(asked) == 4 and sum("Please provide the bounding box" in a for a in asked) == 2
    crop_request = next(r for r in asked if "local detail image" in r)
    assert crop_request.count('"type": "image_url"') == 2  # the image and the crop
    lines = {json.loads(x)["id"]: json.loads(x) for x in (tmp_path / "tp" / "samples.jsonl").read_text().splitlines()}
    assert lines[first.id]["details"]["detection"] == 1.0 and lines[first.id]["score"] == 1.0
    assert lines[second.id]["details"]["detection"] == 0.0  # the scripted reply boxed the whole image
    results = json.loads((tmp_path / "tp" / "results.json").read_text())
    assert results["protocol"] == "two-pass" and results["metrics"]["detection/gqa"] == 50.0


def test_offline_hub_load_says_what_to_do(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "run",
            "--bench",
            "spatialbench",
            "--model",
            "openai:m@http://127.0.0.1:9/v1",
            "--out",
            str(tmp_path / "r"),
            "--mode",
            "plain",
        ],
    )
    assert result.exit_code == 1
    assert "RussRobin/SpatialBench" in result.output and "--data DIR" in result.output and "gated" in result.output


def test_adapters_carry_reference_results() -> None:
    rows = get_benchmark("cvbench").reference_results()
    assert any(row["model"] == "Cambrian-1-8B" and row["metrics"]["score"] == 72.2 for row in rows)
    assert all(row["source"] for row in rows)
    assert get_benchmark("sat").reference_results() == []  # none could be read: none invented


def test_whole_loop_demo(tmp_path: Path) -> None:
    """The README's demo command: data, SFT, GRPO, merges, five evaluations, the report."""
    result = runner.invoke(app, ["demo", "--out", str(tmp_path / "demo"), "--records", "14", "--eval-limit", "2"])
    assert result.exit_code == 0, result.output
    report = (tmp_path / "demo" / "report.md").read_text()
    assert all(f"## {name}" in report for name in ("cvbench", "sat", "spatialbench", "viscot", "vstar"))
    assert (tmp_path / "demo" / "runs" / "sif-tiny" / "README.md").is_file()
    assert json.loads((tmp_path / "demo" / "eval" / "sat" / "results.json").read_text())["n"] == 2
    # it ends with the viewer of its build and of each run, and says where they are
    from sifdata.viewer import read_data_file

    for name in ("build", "cvbench", "sat", "spatialbench", "viscot", "vstar"):
        assert (tmp_path / "demo" / "view" / name / "index.html").is_file(), name
        assert str(tmp_path / "demo" / "view" / name / "index.html") in result.output.replace("\n", "")
    run_site = read_data_file(tmp_path / "demo" / "view" / "sat" / "data" / "manifest.js")
    assert len(run_site["items"]) == 2
    # the scripted SIF model's runs show what the viewer is for: focus steps beside the ground truth
    assert "scripted-sif-from-ground-truth" in report
    scripted = json.loads((tmp_path / "demo" / "eval" / "viscot-scripted" / "results.json").read_text())
    assert scripted["metrics"]["detection/gqa"] == 100.0 and scripted["parse_failure_rate"] == 0.0
    (page,) = sorted((tmp_path / "demo" / "view" / "viscot-scripted" / "data").glob("page-*.js"))
    for item in read_data_file(page):
        steps = item["panels"][0]["steps"]
        assert len(steps) == 2 and item["truth"] and steps[-1][0]["depth"] is not None
        assert steps[-1][0]["box"] == pytest.approx(list(item["truth"][0]), abs=0.0006)
    from sifdata.browser import BrowserUnavailable, find_chromium

    try:
        find_chromium()
    except BrowserUnavailable:
        assert "no screenshot" in result.output
    else:
        assert (tmp_path / "demo" / "viewer.png").stat().st_size > 10_000


# ----------------------------------------------------------------------------- runs that cannot mix


def test_the_response_cache_knows_a_retrained_model(mirrors: dict[str, Path], tiny_vlm: Path, tmp_path: Path) -> None:
    """The cache is keyed by the weights, not the spec: retrain into the same folder, get new answers."""
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    model = tmp_path / "model"
    shutil.copytree(tiny_vlm, model)
    args = ["--bench", "cvbench", "--model", f"hf:{model}?device=cpu", "--data", str(mirrors["cvbench"])]
    args += ["--limit", "2", "--mode", "plain", "--max-new-tokens", "4"]
    _run(*args, "--out", str(tmp_path / "a"))
    _run(*args, "--out", str(tmp_path / "b"))
    assert all(json.loads(line).get("cached") for line in (tmp_path / "b" / "samples.jsonl").read_text().splitlines())
    weights = load_file(model / "model.safetensors")
    save_file(
        {name: tensor + 0.01 * torch.ones_like(tensor) for name, tensor in weights.items()}, model / "model.safetensors"
    )
    _run(*args, "--out", str(tmp_path / "c"))
    assert not any(
        json.loads(line).get("cached") for line in (tmp_path / "c" / "samples.jsonl").read_text().splitlines()
    )
    first, third = (json.loads((tmp_path / run / "results.json").read_text())["model"] for run in ("a", "c"))
    assert first["kind"] == "local" and first["fingerprint"] != third["fingerprint"]
    # Resuming run a with the retrained weights would mix two models: refused, saying why.
    refused = runner.invoke(app, ["run", "--no-progress", *args, "--out", str(tmp_path / "a"), "--resume"])
    assert refused.exit_code == 1 and "another model" in " ".join(refused.output.split())


def test_resume_and_merge_refuse_other_settings_modes_and_models(mirrors: dict[str, Path], tmp_path: Path) -> None:
    base = ["--data", str(mirrors["sat"]), "--mode", "plain", "--no-cache"]
    with ScriptedChatServer() as server, ScriptedChatServer() as other:
        model = f"openai:m@{server.base_url}"
        _run("--bench", "sat", "--model", model, *base, "--out", str(tmp_path / "s0"), "--shard", "0/2")
        for change, why in (
            (["--max-new-tokens", "7"], "generation"),
            (["--protocol", "letters"], "protocol"),
            (["--temperature", "0.5"], "generation"),
        ):
            refused = runner.invoke(
                app,
                [
                    "run",
                    "--no-progress",
                    "--bench",
                    "sat",
                    "--model",
                    model,
                    *base,
                    "--out",
                    str(tmp_path / "s0"),
                    "--shard",
                    "0/2",
                    "--resume",
                    *change,
                ],
            )
            assert refused.exit_code == 1 and f"another {why}" in " ".join(refused.output.split()), refused.output
        mode = runner.invoke(
            app,
            [
                "run",
                "--no-progress",
                "--bench",
                "sat",
                "--model",
                model,
                "--data",
                str(mirrors["sat"]),
                "--mode",
                "sif-rgb",
                "--out",
                str(tmp_path / "s0"),
                "--shard",
                "0/2",
                "--resume",
            ],
        )
        assert mode.exit_code == 1 and "another mode" in " ".join(mode.output.split())
        _run(
            "--bench",
            "sat",
            "--model",
            f"openai:m@{other.base_url}",
            *base,
            "--out",
            str(tmp_path / "s1"),
            "--shard",
            "1/2",
        )
    merged = runner.invoke(app, ["merge", str(tmp_path / "s0"), str(tmp_path / "s1"), "--out", str(tmp_path / "all")])
    flat = " ".join(merged.output.split())
    assert merged.exit_code == 1 and "differs from" in flat and "in model:" in flat


def test_fixed_prompt_protocols_record_the_mode_they_ran_in(mirrors: dict[str, Path], tmp_path: Path) -> None:
    with ScriptedChatServer() as server:
        server.script("Please provide the bounding box", ["text:[0.1, 0.1, 0.5, 0.5]"] * 2)
        _run(
            "--bench", "viscot", "--protocol", "two-pass", "--model", f"openai:m@{server.base_url}",
            "--data", str(mirrors["viscot"]), "--out", str(tmp_path / "tp"), "--limit", "1", "--judge", "match",
        )  # fmt: skip
    results = json.loads((tmp_path / "tp" / "results.json").read_text())
    assert results["mode"] == "plain" and any("ran in mode plain, not sif" in note for note in results["notes"])
    assert json.loads((tmp_path / "tp" / "run.json").read_text())["mode"] == "plain"
