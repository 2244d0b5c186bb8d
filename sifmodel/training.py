"""What the SFT and GRPO recipes share: model and processor loading, LoRA, precision, and the
callback that saves the GRPO progress state and reward statistics with checkpoints."""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from sifmodel.backends.hf import load_processor
from sifmodel.config import CommonSettings
from sifmodel.rewards import SIFRewards

log = logging.getLogger("sifmodel.training")


def use_bf16(requested: bool) -> bool:
    """bf16 where the GPU supports it; on other machines fp32, said out loud."""
    import torch

    available = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if requested and not available:
        warnings.warn("bf16 was requested but this machine has no bf16 GPU: training in fp32", stacklevel=2)
    return requested and available


def _size_field(image_processor: Any, name: str, legacy: str) -> Any:
    size = getattr(image_processor, "size", None)
    value = getattr(size, name, None) if size is not None and not isinstance(size, dict) else (size or {}).get(name)
    return value if value is not None else getattr(image_processor, legacy, None)


def pixel_limits(image_processor: Any) -> tuple[int | None, int | None]:
    """(min, max) pixels of a Qwen2-VL-style image processor (``size`` edges or the older fields)."""
    return _size_field(image_processor, "shortest_edge", "min_pixels"), _size_field(
        image_processor, "longest_edge", "max_pixels"
    )


def set_pixel_limits(image_processor: Any, min_pixels: int | None, max_pixels: int | None) -> None:
    """Qwen2-VL processors keep min/max pixels as ``size.shortest_edge``/``size.longest_edge``."""
    for value, name, legacy in (
        (min_pixels, "shortest_edge", "min_pixels"),
        (max_pixels, "longest_edge", "max_pixels"),
    ):
        if value is None:
            continue
        size = getattr(image_processor, "size", None)
        if isinstance(size, dict):
            size[name] = value
        elif size is not None:
            setattr(size, name, value)
        if hasattr(image_processor, legacy):
            setattr(image_processor, legacy, value)


def load_model_and_processor(settings: CommonSettings) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForImageTextToText

    processor = load_processor(settings.model)
    set_pixel_limits(processor.image_processor, settings.image_min_pixels, settings.image_max_pixels)
    dtype = torch.bfloat16 if use_bf16(settings.bf16) else torch.float32
    model = AutoModelForImageTextToText.from_pretrained(settings.model, dtype=dtype)
    if settings.finetuning == "full":  # the vision tower stays frozen, as with LoRA
        for name, parameter in model.named_parameters():
            if "visual" in name:
                parameter.requires_grad_(False)
    return model, processor


def lora_config(settings: CommonSettings) -> Any:
    """The LoRA config, or None for full fine-tuning (then the vision tower is frozen here)."""
    from peft import LoraConfig

    if settings.finetuning == "full":
        return None

    return LoraConfig(
        r=settings.lora.r,
        lora_alpha=settings.lora.alpha,
        lora_dropout=settings.lora.dropout,
        target_modules=settings.lora.target_modules,
        task_type="CAUSAL_LM",
    )


def common_arguments(settings: CommonSettings) -> dict[str, Any]:
    """The TrainingArguments fields both recipes set the same way."""
    return {
        "output_dir": settings.output_dir,
        "learning_rate": settings.learning_rate,
        "num_train_epochs": settings.num_train_epochs,
        "max_steps": settings.max_steps,
        "lr_scheduler_type": settings.lr_scheduler_type,
        "warmup_steps": settings.warmup_ratio,  # a float in [0, 1) is a ratio of the total steps
        "per_device_train_batch_size": settings.per_device_train_batch_size,
        "gradient_accumulation_steps": settings.gradient_accumulation_steps,
        "bf16": use_bf16(settings.bf16),
        "gradient_checkpointing": settings.gradient_checkpointing,
        "logging_steps": settings.logging_steps,
        "save_steps": settings.save_steps,
        "save_total_limit": settings.save_total_limit,
        "seed": settings.seed,
        "report_to": settings.report_to,
    }


class SIFRewardsCallback(TrainerCallback):
    """Saves the progress state into every checkpoint and appends the reward statistics (judge
    failures, masked samples, ...) to ``reward_stats.jsonl`` at every log step."""

    def __init__(self, rewards: SIFRewards) -> None:
        self.rewards = rewards

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero:
            checkpoint = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            self.rewards.progress.save(checkpoint)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        stats = {"step": state.global_step, **self.rewards.stats.as_dict()}
        if self.rewards.stats.last_failure:
            stats["last_failure"] = self.rewards.stats.last_failure
        with open(Path(args.output_dir) / "reward_stats.jsonl", "a", encoding="utf-8") as handle:
            handle.write(json.dumps(stats) + "\n")
        if stats["judge/failures"]:
            log.warning("judge failures so far: %d (masked %d)", stats["judge/failures"], stats["judge/masked"])
