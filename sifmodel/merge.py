"""Merge a LoRA adapter into its base model: full weights, the processor, and a model card,
loadable by ``from_pretrained`` and by vLLM."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sifdata.version import __version__


def _training_config(adapter: Path) -> str:
    for name in ("sif_grpo_config.yaml", "sif_sft_config.yaml"):
        if (adapter / name).is_file():
            return (adapter / name).read_text(encoding="utf-8").strip()
    return "# no sifmodel training config found beside the adapter"


def _evaluation(results: list[Path]) -> str:
    if not results:
        return "No evaluation results were given when this card was written."
    rows = ["| benchmark | score | n | protocol |", "|---|---|---|---|"]
    for path in results:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        metrics = data.get("metrics", {})
        rows.append(
            f"| {data.get('benchmark', path.stem)} | {metrics.get('score', '-')} | {data.get('n', '-')} "
            f"| {data.get('protocol', '-')} |"
        )
    return "\n".join(rows)


def merge_adapter(
    adapter: str | Path,
    out: str | Path,
    *,
    base: str | None = None,
    name: str | None = None,
    results: list[Path] | None = None,
    note: str = "",
) -> Path:
    """Merge ``adapter`` into ``base`` (default: the base recorded in the adapter) into ``out``."""
    import sifthinker_cards as cards
    from peft import PeftConfig, PeftModel
    from transformers import AutoModelForImageTextToText

    from sifmodel.backends.hf import load_processor

    adapter, out = Path(adapter), Path(out)
    base = base or PeftConfig.from_pretrained(str(adapter)).base_model_name_or_path
    if not base:
        raise ValueError(f"{adapter} does not record its base model: pass --base")
    model = AutoModelForImageTextToText.from_pretrained(base, dtype="auto")
    merged = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    out.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(str(out))
    has_processor = (adapter / "preprocessor_config.json").is_file() or (adapter / "processor_config.json").is_file()
    load_processor(str(adapter) if has_processor else base).save_pretrained(str(out))
    card = cards.render(
        "model_card.md",
        license="apache-2.0",
        base_model=base,
        name=name or out.name,
        adapter=str(adapter),
        data=_data_line(adapter),
        library_version=__version__,
        note=note,
        repo_hint=name or str(out),
        training_config=_training_config(adapter),
        evaluation=_evaluation(results or []),
    )
    (out / "README.md").write_text(card, encoding="utf-8")
    return out


def _data_line(adapter: Path) -> str:
    import yaml

    for file in ("sif_grpo_config.yaml", "sif_sft_config.yaml"):
        if (adapter / file).is_file():
            config = yaml.safe_load((adapter / file).read_text(encoding="utf-8"))
            return f"`{config.get('data')}` (at most {config.get('max_samples')} samples)"
    return "not recorded"
