"""What the SFT and GRPO recipes share: model and processor loading, LoRA, precision, and the
callback that saves the GRPO progress state and reward statistics with checkpoints."""

from __future__ import annotations

import json
import logging
import re
import warnings
from dataclasses import dataclass
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


def has_pixel_budget(image_processor: Any) -> bool:
    """Whether the processor resizes to a pixel budget (Qwen2-VL's dynamic resolution, with a
    ``merge_size``); fixed-size processors (CLIP's, LLaVA's) have no such budget."""
    return hasattr(image_processor, "merge_size") or hasattr(image_processor, "max_pixels")


def pixel_limits(image_processor: Any) -> tuple[int | None, int | None]:
    """(min, max) pixels of a Qwen2-VL-style image processor (``size`` edges or the older
    fields); (None, None) for a processor without a pixel budget."""
    if not has_pixel_budget(image_processor):
        return None, None
    return _size_field(image_processor, "shortest_edge", "min_pixels"), _size_field(
        image_processor, "longest_edge", "max_pixels"
    )


def set_pixel_limits(image_processor: Any, min_pixels: int | None, max_pixels: int | None) -> None:
    """Qwen2-VL processors keep min/max pixels as ``size.shortest_edge``/``size.longest_edge``.
    Left alone for a processor without a pixel budget: there ``shortest_edge`` is an edge length."""
    if not has_pixel_budget(image_processor):
        if min_pixels is not None or max_pixels is not None:
            log.info("%s has no pixel budget: image_min/max_pixels left unused", type(image_processor).__name__)
        return
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


@dataclass(frozen=True)
class ModelParts:
    """Where a vision-language model keeps its language model and its vision side, found from the
    model's own structure: the language model is the module that owns the input embeddings; the
    vision side is everything beside it in the same parent (the vision tower, the projector or
    merger). No name is assumed ("visual" is Qwen's; LLaVA's is "vision_tower")."""

    language_model: str  # e.g. "model.language_model"
    vision: tuple[str, ...]  # e.g. ("model.visual",) or ("model.multi_modal_projector", "model.vision_tower")
    language_linear: tuple[str, ...]  # the names of the language model's linear layers


def model_parts(model: Any) -> ModelParts:
    import torch

    embeddings = model.get_input_embeddings()
    owner = next((name for name, module in model.named_modules() if module is embeddings), None)
    if owner is None or "." not in owner:
        raise ValueError(f"cannot find where {type(model).__name__} keeps its language model")
    language = owner.rsplit(".", 1)[0]
    parent = language.rsplit(".", 1)[0] if "." in language else ""
    siblings = dict(model.get_submodule(parent).named_children()) if parent else {}
    vision = tuple(f"{parent}.{name}" for name in sorted(siblings) if f"{parent}.{name}" != language)
    if not vision:
        raise ValueError(f"{type(model).__name__}: no vision tower beside the language model at {language}")
    linear = tuple(
        name
        for name, module in model.named_modules()
        if name.startswith(language + ".") and isinstance(module, torch.nn.Linear)
    )
    return ModelParts(language, vision, linear)


def freeze_vision(model: Any) -> int:
    """Freeze the vision side (tower and projector); returns the number of parameters frozen."""
    parts = model_parts(model)
    frozen = 0
    for name, parameter in model.named_parameters():
        if any(name.startswith(prefix + ".") for prefix in parts.vision):
            parameter.requires_grad_(False)
            frozen += parameter.numel()
    return frozen


def language_lora_targets(model: Any) -> str:
    """A PEFT ``target_modules`` pattern naming exactly the language model's linear layers."""
    parts = model_parts(model)
    suffixes = sorted({name.rsplit(".", 1)[-1] for name in parts.language_linear})
    return rf"^{re.escape(parts.language_model)}\..*\.({'|'.join(map(re.escape, suffixes))})$"


def check_inputs(settings: CommonSettings) -> None:
    """What can be checked before the model is loaded: a data path that names nothing, a model
    folder that does not exist (aliases and Hub ids are checked by the loaders)."""
    for field, value in (("data", settings.data), ("model", settings.model)):
        text = str(value)
        looks_local = text.startswith((".", "/", "~")) or Path(text).is_absolute()
        if looks_local and not Path(text).expanduser().exists():
            raise FileNotFoundError(f"{field}={text}: no such file or folder")


def load_model_and_processor(settings: CommonSettings) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForImageTextToText

    processor = load_processor(settings.model)
    set_pixel_limits(processor.image_processor, settings.image_min_pixels, settings.image_max_pixels)
    dtype = torch.bfloat16 if use_bf16(settings.bf16) else torch.float32
    model = AutoModelForImageTextToText.from_pretrained(settings.model, dtype=dtype)
    frozen = freeze_vision(model)  # with LoRA too: only adapters train, and the tower never does
    log.info("vision side frozen: %s (%d parameters)", ", ".join(model_parts(model).vision), frozen)
    return model, processor


def lora_config(settings: CommonSettings, model: Any) -> Any:
    """The LoRA config (adapters on the language model's linear layers, found from ``model``
    unless configured), or None for full fine-tuning."""
    from peft import LoraConfig

    if settings.finetuning == "full":
        return None
    targets = settings.lora.target_modules
    return LoraConfig(
        r=settings.lora.r,
        lora_alpha=settings.lora.alpha,
        lora_dropout=settings.lora.dropout,
        target_modules=language_lora_targets(model) if targets == "auto" else targets,
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
        gathered = self.rewards.gathered_stats()  # every rank takes part; rank 0 writes the sums
        if not state.is_world_process_zero:
            return
        stats = {"step": state.global_step, **gathered}
        if self.rewards.stats.last_failure:
            stats["last_failure"] = self.rewards.stats.last_failure
        with open(Path(args.output_dir) / "reward_stats.jsonl", "a", encoding="utf-8") as handle:
            handle.write(json.dumps(stats) + "\n")
        if stats["judge/failures"]:
            log.warning("judge failures so far: %d (masked %d)", stats["judge/failures"], stats["judge/masked"])
