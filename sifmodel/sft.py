"""Stage 1, SFT warm-up: LoRA on the language model, TRL's SFTTrainer, SIF chains as targets.

Read top to bottom: settings -> model and processor -> SIF data as messages + images ->
LoRA -> SFTTrainer -> adapter, processor and settings saved in ``output_dir``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sifmodel.config import SFTSettings, record_settings
from sifmodel.data import sft_dataset
from sifmodel.training import check_inputs, common_arguments, load_model_and_processor, lora_config, pixel_limits


def train_sft(settings: SFTSettings, *, callbacks: list[Any] | None = None) -> Path:
    from trl import SFTConfig, SFTTrainer

    check_inputs(settings)  # before anything is written or loaded
    record_settings(settings, Path(settings.output_dir) / "sif_sft_config.yaml")  # first: a crash keeps it
    model, processor = load_model_and_processor(settings)
    dataset = sft_dataset(
        settings.data,
        with_depth=settings.with_depth,
        max_samples=settings.max_samples,
        max_pixels=pixel_limits(processor.image_processor)[1],
    )
    train, held_out = dataset, None
    if settings.eval_fraction > 0 and len(dataset) >= 10:
        split = dataset.train_test_split(test_size=settings.eval_fraction, seed=settings.seed)
        train, held_out = split["train"], split["test"]
    args = SFTConfig(
        **common_arguments(settings),
        max_length=settings.max_length,
        eval_strategy="steps" if held_out is not None else "no",
        eval_steps=settings.eval_steps,
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=train,
        eval_dataset=held_out,
        processing_class=processor,
        peft_config=lora_config(settings, model),
        callbacks=callbacks,
    )
    trainer.train(resume_from_checkpoint=settings.resume_from_checkpoint)
    output = Path(settings.output_dir)
    trainer.save_model(str(output))
    processor.save_pretrained(str(output))
    return output
