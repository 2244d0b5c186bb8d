"""SFT, GRPO, resume and merge on the tiny Qwen2.5-VL, offline on the CPU: real TRL trainers,
real optimizer steps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard
from PIL import Image
from safetensors.torch import load_file
from typer.testing import CliRunner

from sifdata.depth import save_depth_png
from sifdata.sources.synthetic import scene
from sifmodel.backends import GenerationRequest, GenerationSettings, load
from sifmodel.cli import app
from sifmodel.config import GRPOSettings, SFTSettings, load_settings
from sifmodel.grpo import train_grpo
from sifmodel.merge import merge_adapter
from sifmodel.rewards import PROGRESS_FILE
from sifmodel.sft import train_sft

CPU = ["bf16=false", "image_max_pixels=null", "report_to=none", "logging_steps=1"]


def _lora_b(folder: Path) -> list[torch.Tensor]:
    weights = load_file(str(folder / "adapter_model.safetensors"))
    return [tensor for name, tensor in weights.items() if "lora_B" in name]


def _short_sft(model: Path, data: Path, out: Path, *extra: str) -> SFTSettings:
    """Two LoRA steps, a checkpoint each, the 10% held out evaluated at step 2."""
    return load_settings(
        SFTSettings,
        None,
        [
            *CPU,
            f"model={model}",
            f"data={data}",
            f"output_dir={out}",
            "max_steps=2",
            "save_steps=1",
            "per_device_train_batch_size=2",
            "gradient_accumulation_steps=1",
            "warmup_ratio=0",
            "learning_rate=1e-3",
            "max_length=1024",
            "eval_fraction=0.1",
            "eval_steps=2",
            *extra,
        ],
    )


@pytest.fixture(scope="module")
def sft_run(tmp_path_factory: pytest.TempPathFactory, tiny_vlm: Path, demo_build: Path) -> Path:
    return train_sft(_short_sft(tiny_vlm, demo_build, tmp_path_factory.mktemp("sft") / "run"))


def test_sft_takes_real_steps_and_saves(sft_run: Path) -> None:
    assert all(tensor.abs().sum() > 0 for tensor in _lora_b(sft_run))  # LoRA B starts at zero
    state = json.loads((sft_run / "checkpoint-2" / "trainer_state.json").read_text())
    assert state["global_step"] == 2
    assert any("eval_loss" in entry for entry in state["log_history"])  # the 10% held out was evaluated
    assert (sft_run / "sif_sft_config.yaml").is_file() and (sft_run / "processor_config.json").is_file()


def test_sft_resumes_from_a_checkpoint(sft_run: Path, tiny_vlm: Path, demo_build: Path, tmp_path: Path) -> None:
    import shutil

    out = tmp_path / "resumed"
    shutil.copytree(sft_run / "checkpoint-1", out / "checkpoint-1")
    settings = _short_sft(tiny_vlm, demo_build, out, "resume_from_checkpoint=true")
    train_sft(settings)
    state = json.loads((out / "checkpoint-2" / "trainer_state.json").read_text())
    # step 1 comes from the copied checkpoint, step 2 from this run
    assert state["global_step"] == 2 and [e.get("step") for e in state["log_history"] if "loss" in e] == [1, 2]


def test_merge_gives_a_model_that_loads_and_generates(sft_run: Path, tiny_vlm: Path, tmp_path: Path) -> None:
    results = tmp_path / "cvbench.json"
    results.write_text(
        json.dumps({"benchmark": "cvbench", "metrics": {"score": 61.25}, "n": 2638, "protocol": "official"})
    )
    merged = merge_adapter(sft_run, tmp_path / "merged", name="me/sif-tiny", results=[results])
    card = ModelCard.load(merged / "README.md")  # the Hub's own reader
    assert card.data.base_model == str(tiny_vlm) and card.data.pipeline_tag == "image-text-to-text"
    assert "learning_rate: 0.001" in card.text and "me/sif-tiny" in card.text
    assert "| cvbench | 61.25 | 2638 | official |" in card.text
    (result,) = card.data.eval_results  # the headline as model-index, which the Hub shows
    assert result.dataset_name == "cvbench" and result.metric_value == 61.25
    backend = load(f"hf:{merged}?device=cpu")
    photo = Image.new("RGB", (96, 64), "white")
    (response,) = backend.generate(
        [GenerationRequest("m", "q?", (photo,), mode="sif-rgb", settings=GenerationSettings(max_new_tokens=4))]
    )
    assert response.ok and response.completion_tokens == 4


@pytest.fixture(scope="module")
def sif_tuned_vlm(tmp_path_factory: pytest.TempPathFactory, tiny_vlm: Path, demo_build: Path) -> Path:
    """The tiny VLM fully fine-tuned on SIF chains until its samples contain readable areas, so
    that GRPO rewards vary within a group (a random model scores 0 everywhere)."""
    out = tmp_path_factory.mktemp("tuned") / "tiny-sif"
    settings = load_settings(
        SFTSettings,
        None,
        [
            *CPU,
            f"model={tiny_vlm}",
            f"data={demo_build}",
            f"output_dir={out}",
            "finetuning=full",
            "max_steps=250",
            "save_steps=100000",
            "per_device_train_batch_size=4",
            "gradient_accumulation_steps=1",
            "warmup_ratio=0",
            "learning_rate=3e-3",
            "lr_scheduler_type=constant",
            "max_length=1024",
            "eval_fraction=0",
            "logging_steps=50",
        ],
    )
    return train_sft(settings)


def _grpo(model: Path, data: Path, out: Path, *extra: str) -> Path:
    settings = load_settings(
        GRPOSettings,
        None,
        [
            *CPU,
            f"model={model}",
            f"data={data}",
            f"output_dir={out}",
            "max_samples=12",
            "num_generations=4",
            "max_completion_length=80",
            "per_device_train_batch_size=4",
            "gradient_accumulation_steps=1",
            "judge.kind=match",
            "save_steps=1",
            "gradient_checkpointing=false",
            "learning_rate=1e-3",
            *extra,
        ],
    )
    return train_grpo(settings)


def test_grpo_rewards_move_the_weights_and_the_progress_state_survives_resume(
    sif_tuned_vlm: Path, demo_build: Path, tmp_path: Path
) -> None:
    out = tmp_path / "grpo"
    _grpo(sif_tuned_vlm, demo_build, out, "max_steps=1")
    first = json.loads((out / "checkpoint-1" / PROGRESS_FILE).read_text())["values"]
    assert len(first) == 1  # one prompt (a group of 4 completions) per step
    _grpo(sif_tuned_vlm, demo_build, out, "max_steps=3", "resume_from_checkpoint=true")
    final = json.loads((out / PROGRESS_FILE).read_text())["values"]
    assert set(first) <= set(final) and len(final) >= 2  # restored from the checkpoint, then grown
    state = json.loads((out / "checkpoint-3" / "trainer_state.json").read_text())
    rewards = [entry for entry in state["log_history"] if "reward" in entry]
    assert rewards and all("rewards/depth_consistency_reward/mean" in entry for entry in rewards)
    assert any(tensor.abs().sum() > 0 for tensor in _lora_b(out)), "no reward variance moved the weights"
    stats = [json.loads(line) for line in (out / "reward_stats.jsonl").read_text().splitlines()]
    assert stats[-1]["judge/failures"] == 0 and stats[-1]["judge/rule"] + stats[-1]["judge/no_answer"] > 0


def test_cli_infer_draws_every_focus_step(sif_tuned_vlm: Path, tmp_path: Path) -> None:
    record = scene(3)
    record.image.save(tmp_path / "scene.png")
    save_depth_png(record.depth, tmp_path / "scene_d.png")
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "infer",
            "--model",
            f"hf:{sif_tuned_vlm}?device=cpu",
            "--image",
            str(tmp_path / "scene.png"),
            "--question",
            record.question,
            "--depth",
            str(tmp_path / "scene_d.png"),
            "--max-new-tokens",
            "120",
            "--out",
            str(tmp_path / "steps"),
        ],
    )
    assert result.exit_code == 0, result.output
    steps = sorted((tmp_path / "steps").glob("step-*.png"))
    assert steps and "step 1: boxes" in result.output
    assert (tmp_path / "steps" / "output.txt").read_text().startswith("<think>")


def test_cli_config_overrides_llamafactory_and_serve(tmp_path: Path) -> None:
    runner = CliRunner()
    config = tmp_path / "sft.yaml"
    config.write_text("model: Qwen/Qwen2.5-VL-7B-Instruct\nlearning_rate: 2.0e-4\nlora:\n  r: 16\n")
    result = runner.invoke(
        app,
        [
            "llamafactory-yaml",
            "--out",
            str(tmp_path / "lf.yaml"),
            "--dataset-dir",
            "data/lf",
            "--config",
            str(config),
            "num_train_epochs=1",
        ],
    )
    assert result.exit_code == 0, result.output
    import yaml

    written = yaml.safe_load((tmp_path / "lf.yaml").read_text())
    assert written["lora_rank"] == 16 and written["learning_rate"] == 2e-4 and written["num_train_epochs"] == 1
    assert written["template"] == "qwen2_vl" and written["image_max_pixels"] == 262144 and written["val_size"] == 0.1
    bad = runner.invoke(app, ["sft", "--config", str(config), "no_such_field=1"])
    assert bad.exit_code == 1 and "no_such_field" in bad.output
    served = runner.invoke(
        app, ["serve", "some/model", "--port", "9001", "--engine", "transformers", "--print-command"]
    )
    assert served.exit_code == 0 and "serve some/model --host 127.0.0.1 --port 9001" in served.output


def test_paper_defaults() -> None:
    sft, grpo = SFTSettings(), GRPOSettings()
    assert (sft.lora.r, sft.learning_rate, sft.num_train_epochs, sft.warmup_ratio) == (8, 1e-4, 3.0, 0.1)
    assert (sft.per_device_train_batch_size, sft.gradient_accumulation_steps, sft.max_length) == (2, 8, 2048)
    assert (sft.image_max_pixels, sft.eval_fraction, sft.max_samples) == (262144, 0.1, 50000)
    assert (grpo.num_generations, grpo.max_completion_length, grpo.learning_rate, grpo.beta) == (8, 2048, 1e-5, 0.04)
    assert (grpo.lora.r, grpo.lora.alpha, grpo.lora.dropout, grpo.epsilon, grpo.max_samples) == (
        64,
        128,
        0.05,
        0.2,
        200,
    )


def test_shipped_configs_load() -> None:
    import yaml

    configs = Path(__file__).parent.parent / "configs"
    sft = load_settings(SFTSettings, configs / "sft.yaml")
    grpo = load_settings(GRPOSettings, configs / "grpo.yaml")
    assert sft == SFTSettings(**{**SFTSettings().model_dump(), "report_to": "none"})  # the file states the defaults
    assert grpo.data == "sif-50k-sampled-200" and grpo.judge.failure_policy == "mask"
    for path in (configs / "accelerate").glob("*.yaml"):
        launcher = yaml.safe_load(path.read_text())
        assert launcher["distributed_type"] in ("NO", "MULTI_GPU", "DEEPSPEED"), path
        deepspeed = launcher.get("deepspeed_config", {}).get("deepspeed_config_file")
        if deepspeed:
            json.loads((configs.parent / deepspeed).read_text())


def test_readme_cli_path_sft_merge_grpo(tiny_vlm: Path, demo_build: Path, tmp_path: Path) -> None:
    """The README's commands (with the overrides it shows for the tiny model), through the CLI."""
    configs = Path(__file__).parent.parent / "configs"
    runner = CliRunner()
    sft = runner.invoke(
        app,
        [
            "sft",
            "--config",
            str(configs / "sft.yaml"),
            f"model={tiny_vlm}",
            f"data={demo_build}",
            f"output_dir={tmp_path / 'sft'}",
            "max_steps=1",
            "image_max_pixels=null",
            "eval_fraction=0",
        ],
    )
    assert sft.exit_code == 0, sft.output
    assert runner.invoke(app, ["merge", str(tmp_path / "sft"), "--out", str(tmp_path / "sft-merged")]).exit_code == 0
    grpo = runner.invoke(
        app,
        [
            "grpo",
            "--config",
            str(configs / "grpo.yaml"),
            f"model={tmp_path / 'sft-merged'}",
            f"data={demo_build}",
            f"output_dir={tmp_path / 'grpo'}",
            "max_steps=1",
            "num_generations=2",
            "max_completion_length=16",
            "per_device_train_batch_size=2",
            "judge.kind=match",
            "image_max_pixels=null",
        ],
    )
    assert grpo.exit_code == 0, grpo.output
    assert (tmp_path / "grpo" / PROGRESS_FILE).is_file() and (tmp_path / "grpo" / "adapter_model.safetensors").is_file()
