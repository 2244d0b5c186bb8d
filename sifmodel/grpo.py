"""Stage 2, GRPO-SIF: TRL's GRPOTrainer with the four SIF rewards on RGB + depth prompts.

Read top to bottom: settings -> model and processor -> SIF data as prompts + reward columns
-> judge and rewards (progress state restored when resuming) -> GRPOTrainer -> adapter,
processor, settings and the final progress state saved in ``output_dir``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from sifmodel.config import GRPOSettings, record_settings
from sifmodel.data import grpo_dataset
from sifmodel.judge import make_judge
from sifmodel.rewards import SIFRewards
from sifmodel.training import (
    SIFRewardsCallback,
    check_inputs,
    common_arguments,
    load_model_and_processor,
    lora_config,
    pixel_limits,
)


def _checkpoint(settings: GRPOSettings) -> str | None:
    """The checkpoint folder to resume from (``true`` means the newest in ``output_dir``)."""
    resume = settings.resume_from_checkpoint
    if resume is True:
        from transformers.trainer_utils import get_last_checkpoint

        return get_last_checkpoint(settings.output_dir)
    return resume or None


def train_grpo(settings: GRPOSettings, *, callbacks: list[Any] | None = None) -> Path:
    from trl import GRPOConfig, GRPOTrainer

    if settings.use_vllm:
        try:
            import vllm  # noqa: F401
        except ImportError as error:
            raise ImportError("use_vllm=true needs vLLM on a GPU machine: pip install 'sifthinker[vllm]'") from error
    check_inputs(settings)
    judge = make_judge(settings.judge)  # before the model: a judge without an endpoint costs nothing
    output = Path(settings.output_dir)
    record_settings(settings, output / "sif_grpo_config.yaml")  # first: a crashed run still has it
    model, processor = load_model_and_processor(settings)
    dataset = grpo_dataset(
        settings.data,
        output / "depth_maps",
        with_depth=settings.with_depth,
        max_samples=settings.max_samples,
        max_pixels=pixel_limits(processor.image_processor)[1],
    )
    rewards = SIFRewards(
        judge,
        failure_policy=settings.judge.failure_policy,
        depth_tolerance=settings.depth_tolerance,
        progress_reference=settings.progress_reference,
    )
    names = list(settings.rewards)
    checkpoint = _checkpoint(settings)
    if checkpoint is not None:
        rewards.progress.load(checkpoint)
    # per_device_train_batch_size counts completions (TRL's meaning). A generation round must
    # hold whole groups of num_generations: the smallest multiple of both is one round (one
    # optimizer step when the batch already holds whole groups, a few steps otherwise).
    processes = int(os.environ.get("WORLD_SIZE", "1"))
    step_batch = settings.per_device_train_batch_size * settings.gradient_accumulation_steps * processes
    generation_batch = math.lcm(step_batch, settings.num_generations)
    args = GRPOConfig(
        **common_arguments(settings),
        num_generations=settings.num_generations,
        generation_batch_size=generation_batch,
        max_completion_length=settings.max_completion_length,
        temperature=settings.temperature,
        top_p=settings.top_p,
        beta=settings.beta,
        epsilon=settings.epsilon,
        loss_type=settings.loss_type,
        scale_rewards=settings.scale_rewards,
        reward_weights=[settings.rewards[name] for name in names],
        use_vllm=settings.use_vllm,
        vllm_mode=settings.vllm_mode,
        remove_unused_columns=False,
    )
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=rewards.functions(names),  # type: ignore[arg-type]  # list invariance only
        args=args,
        train_dataset=dataset,
        processing_class=processor,
        peft_config=lora_config(settings, model),
        callbacks=[SIFRewardsCallback(rewards), *(callbacks or [])],
    )
    trainer.train(resume_from_checkpoint=checkpoint)
    trainer.save_model(str(output))
    processor.save_pretrained(str(output))
    rewards.progress.save(output)
    return output
