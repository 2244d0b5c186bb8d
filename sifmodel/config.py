"""Typed recipe configs, loaded from YAML, any field overridable from the command line.

Defaults reproduce the paper's settings (grpo-sif.md): SFT with LoRA r=8 on the language
model's linear layers, lr 1e-4, 3 epochs, cosine, warm-up 0.1, batch 2 x 8, cutoff 2048,
image max pixels 262,144, 10% held out, at most 50,000 samples; GRPO with 8 generations,
completion length 2048, 1 epoch, lr 1e-5, beta 0.04, LoRA r=64/alpha=128/dropout 0.05, the
vision tower frozen, batch 1 x 2, 200 samples, clip epsilon 0.2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from sifdata.plugins import registered_names

# The groups judges and rewards register in (sifmodel.judge.JUDGES, sifmodel.rewards.REWARDS):
# a config names them, and is checked against what is installed without importing them.
JUDGE_GROUP, REWARD_GROUP = "sifmodel.judges", "sifmodel.rewards"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoraSettings(Strict):
    r: int = 8
    alpha: int = 16
    dropout: float = 0.0
    # "auto": the language model's linear layers, found from the model's structure (any VLM);
    # or a PEFT pattern / list of module names.
    target_modules: str | list[str] = "auto"


class JudgeSettings(Strict):
    """``kind`` names a judge registered under ``sifmodel.judges``: ``llm``, a judge model
    (endpoint from here or ``SIF_JUDGE_*``); ``match``, answer agreement without a model
    (offline, weaker; free-form answers only); or any other package's judge."""

    kind: str = "llm"
    base_url: str | None = None
    model: str | None = None
    concurrency: int = 32
    timeout: float = 60.0
    with_image: bool = True  # the spec's judge sees the image
    max_tokens: int = 512  # room for a reasoning judge's thoughts before its score
    temperature: float = 0.0
    failure_policy: Literal["raise", "mask"] = "mask"

    @field_validator("kind")
    @classmethod
    def _registered_judge(cls, kind: str) -> str:
        known = registered_names(JUDGE_GROUP)
        if kind not in known:
            raise ValueError(f"unknown judge {kind!r}; the installed judges are {', '.join(known)}")
        return kind


class CommonSettings(Strict):
    model: str = "Qwen/Qwen2.5-VL-7B-Instruct"
    data: str = "sif-50k"
    output_dir: str = "runs/sft"
    with_depth: bool = True
    max_samples: int | None = 50_000
    image_max_pixels: int | None = 262_144
    image_min_pixels: int | None = None
    learning_rate: float = 1e-4
    num_train_epochs: float = 3.0
    max_steps: int = -1
    lr_scheduler_type: str = "cosine"
    warmup_ratio: float = 0.1
    per_device_train_batch_size: int = 2
    gradient_accumulation_steps: int = 8
    bf16: bool = True
    gradient_checkpointing: bool = False
    logging_steps: int = 10
    save_steps: int = 500
    save_total_limit: int | None = 3
    seed: int = 42
    report_to: str | list[str] = "none"
    resume_from_checkpoint: str | bool | None = None
    # "lora": adapters on the language model (the paper); "full": every language-model weight.
    finetuning: Literal["lora", "full"] = "lora"
    lora: LoraSettings = Field(default_factory=LoraSettings)


class SFTSettings(CommonSettings):
    max_length: int = 2048
    eval_fraction: float = 0.1
    eval_steps: int = 500


class GRPOSettings(CommonSettings):
    model: str = "runs/sft-merged"
    output_dir: str = "runs/grpo"
    max_samples: int | None = 200
    learning_rate: float = 1e-5
    num_train_epochs: float = 1.0
    lr_scheduler_type: str = "constant"
    warmup_ratio: float = 0.0
    per_device_train_batch_size: int = 1
    gradient_accumulation_steps: int = 2
    gradient_checkpointing: bool = True
    save_steps: int = 100
    num_generations: int = 8
    max_completion_length: int = 2048
    temperature: float = 1.0
    top_p: float = 1.0
    beta: float = 0.04
    epsilon: float = 0.2
    # "grpo": per-sequence normalized clipped loss with the k3 KL term, as the paper's fork of TRL.
    loss_type: str = "grpo"
    scale_rewards: str = "group"
    # The rewards by name (registered under sifmodel.rewards), with their weights (the paper:
    # its four, summed unweighted).
    rewards: dict[str, float] = Field(
        default_factory=lambda: {"format": 1.0, "accuracy": 1.0, "box_iou": 1.0, "depth": 1.0}
    )
    # "score": the reference of the progress bonus is the group mean of the judge's score (the
    # decision in grpo-sif.md); "reward": the original's group mean of the reward, bonus included.
    progress_reference: Literal["score", "reward"] = "score"
    depth_tolerance: float = 0.1
    use_vllm: bool = False
    vllm_mode: Literal["colocate", "server"] = "colocate"
    judge: JudgeSettings = Field(default_factory=JudgeSettings)
    lora: LoraSettings = Field(default_factory=lambda: LoraSettings(r=64, alpha=128, dropout=0.05))

    @field_validator("rewards")
    @classmethod
    def _known_rewards(cls, rewards: dict[str, float]) -> dict[str, float]:
        known = registered_names(REWARD_GROUP)
        unknown = [name for name in rewards if name not in known]
        if unknown:
            raise ValueError(f"unknown reward(s) {', '.join(unknown)}; the rewards are {', '.join(known)}")
        if not rewards:
            raise ValueError("rewards: name at least one reward")
        return rewards


Settings = TypeVar("Settings", bound=BaseModel)


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = tree
    for key in parents:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ValueError(f"cannot set {dotted}: {key} is not a section")
    node[leaf] = value


def load_settings(kind: type[Settings], path: str | Path | None = None, overrides: list[str] | None = None) -> Settings:
    """Settings from a YAML file (optional) with ``key=value`` / ``section.key=value`` overrides.

    Values are read as YAML (``lr=1e-5``, ``lora.r=16``, ``report_to=[wandb]``); unknown keys are
    an error naming them.
    """
    tree: dict[str, Any] = {}
    if path is not None:
        loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        if loaded is not None and not isinstance(loaded, dict):
            raise ValueError(f"{path}: a config file must be a YAML mapping")
        tree = loaded or {}
    for item in overrides or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"override {item!r} must look like key=value")
        _set_dotted(tree, key.strip(), yaml.safe_load(raw))
    return kind.model_validate(tree)


def dump_settings(settings: BaseModel, path: str | Path) -> Path:
    from sifdata.files import atomic_write

    return atomic_write(path, yaml.safe_dump(settings.model_dump(mode="json"), sort_keys=False).encode("utf-8"))


def record_settings(settings: BaseModel, path: str | Path) -> Path:
    """Log the resolved settings and write them beside the checkpoints, as a recipe's first act
    (torchtune-style): a run that crashes still says what it was."""
    import logging
    import os

    if int(os.environ.get("RANK", "0")) != 0:  # one process writes and logs for all
        return Path(path)
    text = yaml.safe_dump(settings.model_dump(mode="json"), sort_keys=False)
    logging.getLogger("sifmodel").info("resolved settings:\n%s", text)
    print(f"resolved settings ({type(settings).__name__}), written to {path}:\n{text}", flush=True)
    return dump_settings(settings, path)
