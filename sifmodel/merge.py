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


def _results(results: list[Path]) -> list[dict[str, Any]]:
    return [json.loads(path.read_text(encoding="utf-8")) for path in results]


def _evaluation(results: list[dict[str, Any]]) -> str:
    if not results:
        return "No evaluation results were given when this card was written."
    rows = ["| benchmark | score | n | protocol | mode |", "|---|---|---|---|---|"]
    for data in results:
        metrics = data.get("metrics", {})
        rows.append(
            f"| {data.get('benchmark', '-')} | {metrics.get('score', '-')} | {data.get('n', '-')} "
            f"| {data.get('protocol', '-')} | {data.get('mode', '-')} |"
        )
    return "\n".join(rows)


def _eval_results(results: list[dict[str, Any]]) -> list[Any]:
    """The headline scores as ``model-index`` entries (what the Hub shows beside a model)."""
    from huggingface_hub import EvalResult

    entries = []
    for data in results:
        score = data.get("metrics", {}).get("score")
        if not isinstance(score, int | float) or score != score:  # NaN: nothing to show
            continue
        entries.append(
            EvalResult(
                task_type="visual-question-answering",
                dataset_type=str(data.get("dataset", {}).get("id") or data.get("benchmark")),
                dataset_name=str(data.get("benchmark")),
                metric_type="accuracy",
                metric_name=f"{data.get('benchmark')} ({data.get('protocol')}, {data.get('mode')})",
                metric_value=score,
            )
        )
    return entries


def model_card(*, base: str, name: str, adapter: Path, results: list[dict[str, Any]], note: str = "") -> Any:
    """The merged model's ``ModelCard``: YAML from ``ModelCardData`` (results as ``model-index``)."""
    import sifthinker_cards
    from huggingface_hub import ModelCard, ModelCardData

    eval_results = _eval_results(results)
    data = ModelCardData(
        license="apache-2.0",
        base_model=base,
        library_name="transformers",
        pipeline_tag="image-text-to-text",
        tags=["sifthinker", "spatial-reasoning", "depth", "visual-chain-of-thought"],
        model_name=name,
        eval_results=eval_results or None,
    )
    return ModelCard.from_template(
        data,
        template_path=sifthinker_cards.template_path("model_card.md"),
        name=name,
        adapter=str(adapter),
        data=_data_line(adapter),
        library_version=__version__,
        note=note,
        repo_hint=name,
        training_config=_training_config(adapter),
        evaluation=_evaluation(results),
    )


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
    card = model_card(base=base, name=name or out.name, adapter=adapter, results=_results(results or []), note=note)
    (out / "README.md").write_text(str(card), encoding="utf-8")
    return out


def _data_line(adapter: Path) -> str:
    import yaml

    for file in ("sif_grpo_config.yaml", "sif_sft_config.yaml"):
        if (adapter / file).is_file():
            config = yaml.safe_load((adapter / file).read_text(encoding="utf-8"))
            return f"`{config.get('data')}` (at most {config.get('max_samples')} samples)"
    return "not recorded"
