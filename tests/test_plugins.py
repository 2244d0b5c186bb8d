"""Every extension point takes a third party's module the way benchmarks do (issue 20): the
package in ``tests/third_party`` registers a backend, a source, a reward, a judge and a benchmark
through its own metadata (``entry_points.txt`` in its ``.dist-info``), and each is found, listed
and used end to end with no change to sifthinker. Putting the folder on ``sys.path`` is what
installing the package does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sifdata.cli import app as sifdata_app
from sifeval.cli import app as sifeval_app
from sifmodel.cli import app as sifmodel_app

THIRD_PARTY = Path(__file__).parent / "third_party"
runner = CliRunner()


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(THIRD_PARTY))


def test_every_registry_lists_the_built_ins_and_the_third_party(installed: None) -> None:
    from sifdata.sources.base import SOURCES
    from sifeval.adapters import list_benchmarks
    from sifmodel.backends import BACKENDS
    from sifmodel.judge import JUDGES
    from sifmodel.rewards import REWARDS

    assert BACKENDS.names() == ["echo", "hf", "openai", "vllm"]
    assert SOURCES.names() == ["demo", "photos", "squares", "synthetic", "tallyqa", "viscot"]
    assert REWARDS.names() == ["accuracy", "box_iou", "brevity", "depth", "format"]
    assert JUDGES.names() == ["first-word", "llm", "match"]
    assert "toy-colours" in [cls.name for cls in list_benchmarks()]


def test_the_clis_list_what_is_installed(tmp_path: Path) -> None:
    """Help text comes from the registries: a fresh process with the package on its path lists it."""
    env = {**os.environ, "PYTHONPATH": str(THIRD_PARTY), "COLUMNS": "400"}

    def output(*command: str) -> str:
        done = subprocess.run([sys.executable, "-m", *command], capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert "echo:REPLY" in output("sifeval.cli", "run", "--help")
    assert "echo:REPLY" in output("sifmodel.cli", "infer", "--help")
    assert "first-word" in output("sifeval.cli", "run", "--help")
    assert "squares (coloured squares" in output("sifdata.cli", "build", "--help")
    assert "toy-colours" in output("sifeval.cli", "list")


def test_a_third_party_backend_answers_a_third_party_benchmark(installed: None, tmp_path: Path) -> None:
    assert runner.invoke(sifeval_app, ["mirror", "toy-colours", "--out", str(tmp_path / "toy")]).exit_code == 0
    args = ["run", "--no-progress", "--no-cache", "--bench", "toy-colours", "--mode", "plain"]
    result = runner.invoke(
        sifeval_app,
        [*args, "--model", "echo:It is red.", "--data", str(tmp_path / "toy"), "--out", str(tmp_path / "r")],
    )
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "r" / "results.json").read_text())
    assert results["n"] == 3 and results["metrics"]["score"] == pytest.approx(100 / 3)  # red right, green and blue not
    infer = runner.invoke(
        sifmodel_app,
        ["infer", "--model", "echo:<answer>{question}</answer>", "--mode", "plain", "--question", "why?",
         "--image", str(tmp_path / "toy" / "0.png")],
    )  # fmt: skip
    assert infer.exit_code == 0 and "why?" in infer.output, infer.output


def test_a_third_party_source_builds_a_valid_dataset_with_its_own_options(
    installed: None, tmp_path: Path, tiny_depth_model: Path
) -> None:
    out = tmp_path / "squares"
    common = ["build", "--source", "squares", "--depth-model", str(tiny_depth_model), "--depth-device", "cpu"]
    wrong = runner.invoke(sifdata_app, [*common, "--out", str(out), "-o", "colour=red", "--no-progress"])
    assert wrong.exit_code == 1 and "source squares: colour: unknown option (its options: colours, size" in wrong.output
    assert not out.exists()  # refused before anything was written
    built = runner.invoke(
        sifdata_app,
        [*common, "--out", str(out), "-o", "colours=[red, blue]", "-o", "size=64", "--n", "4", "--no-progress"],
    )
    assert built.exit_code == 0, built.output
    config = json.loads((out / "work" / "config.json").read_text())
    assert config["source"] == "squares" and config["source_options"] == {"colours": ["red", "blue"], "size": 64}
    assert runner.invoke(sifdata_app, ["validate", str(out)]).exit_code == 0
    from sifdata.shards import iter_rows, shard_files

    rows = sorted((row for path in shard_files(out) for row in iter_rows(path, ["id", "answer"])), key=str)
    assert sorted(row["answer"] for row in rows) == ["blue", "blue", "red", "red"]


def test_a_third_party_judge_grades_rewards_and_a_benchmark(installed: None, tmp_path: Path) -> None:
    from sifmodel.config import GRPOSettings, JudgeSettings, load_settings
    from sifmodel.judge import make_judge
    from sifmodel.rewards import SIFRewards

    settings = load_settings(GRPOSettings, None, ["judge.kind=first-word"])
    rewards = SIFRewards(make_judge(settings.judge))
    completions = ["<answer>red box</answer>", "<answer>blue box</answer>", "<answer>   </answer>"]
    # free-form answers (no rule decides): the judge's first-word verdicts; an empty answer is no answer
    assert rewards.accuracy(completions, answer=["red square"] * 3) == [1.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="unknown judge 'second-word'; the installed judges are first-word, llm"):
        JudgeSettings(kind="second-word")

    assert runner.invoke(sifeval_app, ["mirror", "viscot", "--out", str(tmp_path / "viscot")]).exit_code == 0
    args = ["run", "--no-progress", "--no-cache", "--bench", "viscot", "--mode", "plain", "--limit", "4"]
    model = "echo:<answer>yes</answer>"
    result = runner.invoke(
        sifeval_app,
        [
            *args,
            "--judge",
            "first-word",
            "--model",
            model,
            "--data",
            str(tmp_path / "viscot"),
            "--out",
            str(tmp_path / "v"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "v" / "run.json").read_text())["options"]["judge"] == "first-word"
    refused = runner.invoke(sifeval_app, [*args, "--judge", "nope", "--model", model, "--out", str(tmp_path / "n")])
    assert refused.exit_code == 1 and "first-word, llm, match" in refused.output


def test_a_third_party_reward_is_logged_by_a_real_grpo_step(
    installed: None, tiny_vlm: Path, demo_build: Path, tmp_path: Path
) -> None:
    from sifmodel.config import GRPOSettings, load_settings
    from sifmodel.grpo import train_grpo
    from sifmodel.rewards import SIFRewards

    brevity = SIFRewards().functions(["brevity"])[0]
    assert brevity(["short", "x" * 201]) == [1.0, 0.0]
    overrides = ["bf16=false", "image_max_pixels=null", "report_to=none", "logging_steps=1", "max_steps=1",
                 f"model={tiny_vlm}", f"data={demo_build}", f"output_dir={tmp_path / 'g'}", "max_samples=4",
                 "num_generations=2", "max_completion_length=16", "per_device_train_batch_size=2",
                 "gradient_accumulation_steps=1", "judge.kind=first-word", "gradient_checkpointing=false",
                 "rewards={brevity: 1, accuracy: 1}", "save_steps=1"]  # fmt: skip
    out = train_grpo(load_settings(GRPOSettings, None, overrides))
    state = json.loads((Path(out) / "checkpoint-1" / "trainer_state.json").read_text())
    logged = [entry for entry in state["log_history"] if "rewards/brevity_reward/mean" in entry]
    assert logged and logged[0]["rewards/brevity_reward/mean"] == 1.0  # 16 new tokens are far below 200 characters


def _package(root: Path, name: str, entry_points: str) -> Path:
    """A package's metadata alone, registering ``entry_points`` (as a wheel's dist-info would)."""
    info = root / f"{name}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(entry_points)
    return root


def test_a_name_registered_twice_or_naming_the_wrong_thing_is_an_error_naming_it(
    installed: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sifmodel.backends import BACKENDS, load, model_spec_help

    clash = str(_package(tmp_path / "a", "clash", "[sifmodel.backends]\necho = clash:Other\n"))
    monkeypatch.syspath_prepend(clash)
    with pytest.raises(ValueError, match=r"backend 'echo' is registered twice \(.*clash:Other"):
        BACKENDS.names()
    sys.path.remove(clash)  # uninstalled
    monkeypatch.syspath_prepend(
        str(
            _package(tmp_path / "b", "wrong", "[sifmodel.backends]\nwrong = sif_toy_plugins.backend:EchoBackend.name\n")
        )
    )
    assert model_spec_help().endswith("hf:PATH_OR_ID, ...")  # the help stays usable; using it names the problem
    with pytest.raises(
        TypeError, match=r"entry point wrong = .*EchoBackend.name \(sifmodel.backends\) is not a backend"
    ):
        load("wrong:x")


def test_an_unknown_name_lists_the_installed_ones(installed: None) -> None:
    from sifdata.plugins import UnknownPlugin
    from sifmodel.backends import BACKENDS, load

    with pytest.raises(UnknownPlugin) as raised:
        BACKENDS.load("ech")
    assert str(raised.value) == "unknown backend 'ech'; known: echo, hf, openai, vllm"
    with pytest.raises(ValueError, match=r"must be one of echo:REPLY, hf:PATH_OR_ID, openai:MODEL@BASE_URL"):
        load("ech:x")
