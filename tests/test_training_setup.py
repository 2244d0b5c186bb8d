"""What a training run sets up before its first step: the model's parts (any VLM), the GRPO rows
and their depth files, and the resolved config written first."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

from sifmodel.config import GRPOSettings, SFTSettings, load_settings
from sifmodel.data import grpo_dataset
from sifmodel.sft import train_sft
from sifmodel.tiny_models import build_tiny_llava
from sifmodel.training import freeze_vision, language_lora_targets, model_parts

CPU = ["bf16=false", "image_max_pixels=null", "report_to=none", "logging_steps=1"]


@pytest.fixture(scope="module")
def tiny_llava(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_llava(tmp_path_factory.mktemp("models") / "tiny-llava")


def _model(path: Path):
    from transformers import AutoModelForImageTextToText

    return AutoModelForImageTextToText.from_pretrained(path)


def test_parts_are_found_from_the_structure_of_two_architectures(tiny_vlm: Path, tiny_llava: Path) -> None:
    qwen, llava = model_parts(_model(tiny_vlm)), model_parts(_model(tiny_llava))
    assert (qwen.language_model, qwen.vision) == ("model.language_model", ("model.visual",))
    # LLaVA has no module called "visual": the old name match left its tower training.
    assert (llava.language_model, llava.vision) == (
        "model.language_model",
        ("model.multi_modal_projector", "model.vision_tower"),
    )
    for parts in (qwen, llava):
        suffixes = {name.rsplit(".", 1)[-1] for name in parts.language_linear}
        assert suffixes == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


def test_freezing_and_lora_targets_cover_exactly_the_vision_side_and_the_language_model(tiny_llava: Path) -> None:
    from peft import LoraConfig, get_peft_model

    model = _model(tiny_llava)
    frozen = freeze_vision(model)
    vision = [p for n, p in model.named_parameters() if n.startswith(("model.vision_tower.", "model.multi_modal"))]
    assert frozen == sum(p.numel() for p in vision) > 0 and not any(p.requires_grad for p in vision)
    peft = get_peft_model(model, LoraConfig(r=4, target_modules=language_lora_targets(model), task_type="CAUSAL_LM"))
    trainable = [name for name, p in peft.named_parameters() if p.requires_grad]
    assert trainable and all(".language_model." in name and "lora_" in name for name in trainable)


def _sft(model: Path, data: Path, out: Path, *extra: str) -> SFTSettings:
    return load_settings(
        SFTSettings,
        None,
        [
            *CPU,
            f"model={model}",
            f"data={data}",
            f"output_dir={out}",
            "max_steps=2",
            "save_steps=100",
            "per_device_train_batch_size=2",
            "gradient_accumulation_steps=1",
            "warmup_ratio=0",
            "learning_rate=1e-2",
            "max_length=1024",
            "eval_fraction=0",
            "max_samples=8",
            *extra,
        ],
    )


def _vision(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {n: t for n, t in weights.items() if "vision_tower" in n or "multi_modal_projector" in n}


def test_sft_on_a_second_vlm_architecture_leaves_its_vision_tower_unchanged(
    tiny_llava: Path, demo_build: Path, tmp_path: Path
) -> None:
    """Real optimizer steps on a tiny LLaVA (CLIP tower, projector, Llama), LoRA and full."""
    before = load_file(str(tiny_llava / "model.safetensors"))
    lora = train_sft(_sft(tiny_llava, demo_build, tmp_path / "lora"))
    adapters = load_file(str(lora / "adapter_model.safetensors"))
    assert adapters and all(".language_model." in name for name in adapters)
    assert any(t.abs().sum() > 0 for n, t in adapters.items() if "lora_B" in n)  # it trained
    full = train_sft(_sft(tiny_llava, demo_build, tmp_path / "full", "finetuning=full"))
    after = load_file(str(full / "model.safetensors"))
    vision_before, vision_after = _vision(before), _vision(after)
    assert vision_before and vision_before.keys() == vision_after.keys()
    assert all(torch.equal(vision_before[n], vision_after[n]) for n in vision_before), "the vision side trained"
    # (saved in LLaVA's checkpoint layout: "language_model.model.layers...")
    language = [n for n in before if "language_model." in n and n.endswith("q_proj.weight")]
    assert language and any(not torch.equal(before[n], after[n]) for n in language)  # the language model did


def test_grpo_rows_point_at_depth_files_after_the_output_is_deleted_and_rerun(demo_build: Path, tmp_path: Path) -> None:
    """The rows come from the ``datasets.map`` cache on a rerun; the depth files they name are
    written before the map, so deleting the output folder cannot leave them pointing at nothing."""
    depth_dir = tmp_path / "run" / "depth"
    first = grpo_dataset(str(demo_build), depth_dir, max_samples=6)
    shutil.rmtree(tmp_path / "run")
    again = grpo_dataset(str(demo_build), depth_dir, max_samples=6)
    assert again.cache_files == first.cache_files  # the map really came from its cache
    paths = again["depth_map"]
    assert len(paths) == 6 and all(Path(path).is_file() for path in paths)


class _Crash(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("simulated crash at step 1")


def test_the_resolved_config_is_written_before_a_crash(tiny_vlm: Path, demo_build: Path, tmp_path: Path) -> None:
    settings = _sft(tiny_vlm, demo_build, tmp_path / "crashed", "learning_rate=3e-4")
    with pytest.raises(RuntimeError, match="simulated crash"):
        train_sft(settings, callbacks=[_Crash()])
    written = load_settings(SFTSettings, tmp_path / "crashed" / "sif_sft_config.yaml")
    assert written == settings and written.learning_rate == 3e-4


def test_grpo_config_written_first_even_when_loading_fails(tmp_path: Path) -> None:
    from sifmodel.grpo import train_grpo

    (tmp_path / "not-a-model").mkdir()  # passes the checks made before loading; the loader fails
    settings = load_settings(
        GRPOSettings,
        None,
        [*CPU, "judge.kind=match", f"model={tmp_path / 'not-a-model'}", f"output_dir={tmp_path / 'g'}"],
    )
    with pytest.raises(Exception):  # noqa: B017 - whatever the loader raises; the config exists
        train_grpo(settings)
    assert load_settings(GRPOSettings, tmp_path / "g" / "sif_grpo_config.yaml") == settings


def test_rewards_are_configured_by_name() -> None:
    settings = load_settings(GRPOSettings, None, ["rewards={format: 1, accuracy: 2}"])
    assert settings.rewards == {"format": 1.0, "accuracy": 2.0}
    with pytest.raises(ValueError, match=r"unknown reward.*box_io"):
        load_settings(GRPOSettings, None, ["rewards={format: 1, box_io: 1}"])
