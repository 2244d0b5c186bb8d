"""A new user's first mistakes cost nothing (issue 19): a failed start leaves nothing that blocks
the corrected command, every refusal says what differs and what continues or starts over, and
ordinary mistakes get one line, checked before any model is loaded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from chat_server import ScriptedChatServer
from PIL import Image
from typer.testing import CliRunner

from sifdata.cli import app as sifdata_app
from sifeval.cli import app as sifeval_app
from sifeval.mirrors import build_mirror

runner = CliRunner()


def _flat(output: str) -> str:
    return " ".join(output.split())


def _tally(folder: Path, count: int = 3) -> Path:
    folder.mkdir(parents=True)
    rows = []
    for index in range(count):
        Image.new("RGB", (48 + index, 40), (index * 60, 90, 120)).save(folder / f"{index}.png")
        rows.append({"question": f"How many {index}?", "bboxs": [[4, 4, 30, 30]], "answer": 1,
                     "image": f"{index}.png", "question_id": index})  # fmt: skip
    (folder / "tally.json").write_text(json.dumps(rows))
    return folder / "tally.json"


def test_a_build_that_could_not_start_does_not_block_the_corrected_one(tmp_path: Path, tiny_depth_model: Path) -> None:
    source = _tally(tmp_path / "src")
    args = [
        "build",
        "--source",
        "tallyqa",
        "--source-path",
        str(source),
        "--out",
        str(tmp_path / "out"),
        "--no-progress",
    ]
    failed = runner.invoke(sifdata_app, [*args, "--depth-model", str(tmp_path / "no-such-model")])
    assert failed.exit_code == 1 and "Traceback" not in failed.output
    assert not (tmp_path / "out" / "work" / "config.json").exists()  # no settings left behind
    fixed = runner.invoke(sifdata_app, [*args, "--depth-model", str(tiny_depth_model), "--depth-device", "cpu"])
    assert fixed.exit_code == 0, fixed.output
    other = runner.invoke(sifdata_app, [*args, "--depth-model", str(tiny_depth_model), "--seed", "7"])
    text = _flat(other.output)
    assert other.exit_code == 1 and "seed: 0 there, 7 now" in text and "--restart" in text
    restarted = runner.invoke(
        sifdata_app,
        [*args, "--depth-model", str(tiny_depth_model), "--depth-device", "cpu", "--seed", "7", "--restart"],
    )
    assert restarted.exit_code == 0, restarted.output
    config = json.loads((tmp_path / "out" / "work" / "config.json").read_text())
    assert config["seed"] == 7 and json.loads((tmp_path / "out" / "manifest.json").read_text())["records"] == 3


def test_a_run_refused_at_start_does_not_block_the_corrected_one(tmp_path: Path) -> None:
    mirror = build_mirror("vstar", tmp_path / "vstar")
    out = tmp_path / "run"
    with ScriptedChatServer(default="text:<answer>A</answer>") as server:
        base = ["run", "--no-progress", "--bench", "vstar", "--data", str(mirror), "--model", f"openai:m@{server.base_url}",
                "--out", str(out), "--mode", "plain", "--no-cache"]  # fmt: skip
        refused = runner.invoke(sifeval_app, [*base, "--protocol", "likelihood"])
        assert refused.exit_code == 1 and "needs a backend that scores text" in _flat(refused.output)
        assert not (out / "run.json").exists() and not (out / "samples.jsonl").exists()
        assert runner.invoke(sifeval_app, base).exit_code == 0  # the corrected command, no --resume needed
        again = runner.invoke(sifeval_app, [*base, "--limit", "2"])
        assert again.exit_code == 1 and "--resume" in _flat(again.output) and "--restart" in _flat(again.output)
        both = runner.invoke(sifeval_app, [*base, "--resume", "--restart"])
        assert both.exit_code == 1 and "give one of them" in _flat(both.output)
        over = runner.invoke(sifeval_app, [*base, "--limit", "2", "--restart"])
        assert over.exit_code == 0, over.output
    assert len((out / "samples.jsonl").read_text().splitlines()) == 2  # nothing kept from before
    assert json.loads((out / "results.json").read_text())["n"] == 2


def test_a_run_folder_left_by_an_earlier_failed_start_is_not_a_run(tmp_path: Path) -> None:
    """As earlier versions left it: run.json of another model and an empty journal."""
    mirror = build_mirror("vstar", tmp_path / "vstar")
    out = tmp_path / "run"
    out.mkdir()
    (out / "run.json").write_text(json.dumps({"benchmark": "vstar", "model": "something else"}))
    (out / "samples.jsonl").write_text("")
    with ScriptedChatServer(default="text:<answer>A</answer>") as server:
        result = runner.invoke(sifeval_app, ["run", "--no-progress", "--bench", "vstar", "--data", str(mirror),
                                             "--model", f"openai:m@{server.base_url}", "--out", str(out), "--mode",
                                             "plain", "--no-cache", "--limit", "3"])  # fmt: skip
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(("bench", "other"), [("cvbench", "vstar"), ("cvbench", "sat"), ("vstar", "cvbench")])
def test_another_benchmarks_folder_says_which_layout_was_expected(tmp_path: Path, bench: str, other: str) -> None:
    folder = build_mirror(other, tmp_path / other)
    result = runner.invoke(sifeval_app, ["run", "--bench", bench, "--data", str(folder), "--model",
                                         "openai:m@http://127.0.0.1:9/v1", "--out", str(tmp_path / "o")])  # fmt: skip
    text = _flat(result.output)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "is not in" in text and "layout" in text
    assert not (tmp_path / "o" / "run.json").exists()


def _command(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("SIF_JUDGE_")}
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=300, env=env)


def test_ordinary_mistakes_get_one_line_and_debug_shows_the_traceback(tmp_path: Path) -> None:
    photo = tmp_path / "photo.png"
    Image.new("RGB", (32, 32)).save(photo)
    mistakes = [
        ("sifeval.cli", "run", "--bench", "vstar", "--data", str(tmp_path / "nowhere"), "--model",
         "openai:m@http://127.0.0.1:9/v1", "--out", str(tmp_path / "o")),
        ("sifmodel.cli", "infer", "--model", f"hf:{tmp_path / 'no-model'}", "--image", str(tmp_path / "no.jpg"),
         "--question", "what?"),
        ("sifmodel.cli", "infer", "--model", f"hf:{tmp_path / 'no-model'}", "--image", str(photo), "--question", "q",
         "--depth", str(photo)),
        ("sifmodel.cli", "sft", f"data={tmp_path / 'no-data'}", f"model={tmp_path / 'no-model'}"),
        ("sifdata.cli", "validate", str(tmp_path / "nowhere")),
        ("sifmodel.cli", "grpo", f"model={tmp_path}", f"data={tmp_path}", f"output_dir={tmp_path / 'g'}"),  # no judge
    ]  # fmt: skip
    for module, *args in mistakes:
        result = _command(module, *args)
        if args[0] == "grpo":
            assert "SIF_JUDGE_BASE_URL" in result.stderr and not (tmp_path / "g").exists()  # before anything
        assert result.returncode == 1, (args, result.stderr[-2000:])
        assert "Traceback" not in result.stderr and "error:" in result.stderr, (args, result.stderr[-2000:])
        assert len([line for line in result.stderr.splitlines() if line.strip()]) <= 2, result.stderr
    debug = _command("sifeval.cli", *mistakes[0][1:], "--debug")
    assert debug.returncode == 1 and "Traceback" in debug.stderr


def test_ctrl_c_says_how_to_continue(tmp_path: Path) -> None:
    import signal
    import time

    mirror = build_mirror("vstar", tmp_path / "vstar")
    with ScriptedChatServer(latency=lambda request: 2.0) as server:
        process = subprocess.Popen(
            [sys.executable, "-m", "sifeval.cli", "run", "--no-progress", "--bench", "vstar", "--data", str(mirror),
             "--model", f"openai:m@{server.base_url}?concurrency=1", "--out", str(tmp_path / "o"), "--mode", "plain",
             "--no-cache"],
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while not server.requests and time.monotonic() < deadline:
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130 and "--resume" in stderr and "Traceback" not in stderr


def test_reports_of_runs_beside_other_folders_and_runs_that_differ_in_settings(tmp_path: Path) -> None:
    mirror = build_mirror("vstar", tmp_path / "vstar")
    runs = tmp_path / "runs"
    with ScriptedChatServer(default="text:<answer>A</answer>") as server:
        for name, temperature in (("cold", "0"), ("warm", "0.7")):
            result = runner.invoke(sifeval_app, ["run", "--no-progress", "--bench", "vstar", "--data", str(mirror),
                                                 "--model", f"openai:m@{server.base_url}", "--out", str(runs / name),
                                                 "--mode", "plain", "--no-cache", "--limit", "4", "--temperature",
                                                 temperature])  # fmt: skip
            assert result.exit_code == 0, result.output
    (runs / "sft").mkdir()  # training outputs live beside the runs, as the README puts them
    (runs / "sft" / "adapter_config.json").write_text("{}")
    folders = sorted(str(p) for p in runs.iterdir())  # what `sifeval report runs/*` passes
    report = runner.invoke(sifeval_app, ["report", *folders, "--no-published"])
    assert report.exit_code == 0, report.output
    assert "left out" in _flat(report.output) and "sft" in _flat(report.output)
    assert "temperature=0.0" in report.output and "temperature=0.7" in report.output  # rows told apart
    page = tmp_path / "r.html"
    assert runner.invoke(sifeval_app, ["report", *folders, "--format", "html", "--out", str(page)]).exit_code == 0
    assert "<title>sifeval report: vstar</title>" in page.read_text()
    merged = runner.invoke(sifeval_app, ["merge", str(runs / "cold"), "--out", str(tmp_path / "m"), "--judge", "llm"])
    assert merged.exit_code != 0 and "No such option" in _flat(merged.output)  # merge grades nothing: no judge


def test_a_missing_judge_names_the_offline_choice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SIF_JUDGE_BASE_URL", raising=False)
    monkeypatch.delenv("SIF_JUDGE_MODEL", raising=False)
    mirror = build_mirror("viscot", tmp_path / "viscot")
    result = runner.invoke(sifeval_app, ["run", "--bench", "viscot", "--data", str(mirror), "--model",
                                         "openai:m@http://127.0.0.1:9/v1", "--out", str(tmp_path / "o")])  # fmt: skip
    assert result.exit_code == 1 and "--judge match" in _flat(result.output) and "SIF_JUDGE_BASE_URL" in result.output


def test_a_reply_of_blank_lines_is_said_not_printed() -> None:
    from sifmodel.cli import shown_reply

    assert shown_reply("\n" * 2048) == "(the reply is 2048 whitespace characters and nothing else)"
    assert (
        shown_reply("<think>a</think>\n\n\n\n\n\n<answer>b</answer>\n\n") == "<think>a</think>\n\n\n<answer>b</answer>"
    )


def test_the_vllm_hint_keeps_its_extra(tmp_path: Path) -> None:
    mirror = build_mirror("cvbench", tmp_path / "cv")
    result = runner.invoke(sifeval_app, ["run", "--bench", "cvbench", "--model", "vllm:/nowhere", "--data", str(mirror),
                                         "--out", str(tmp_path / "o"), "--mode", "plain"])  # fmt: skip
    assert result.exit_code == 1 and "pip install 'sifthinker[vllm]'" in _flat(result.output)
