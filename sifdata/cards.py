"""Dataset cards through ``huggingface_hub`` (``DatasetCard``, ``DatasetCardData``).

The card's YAML carries the ``configs:`` that make ``datasets.load_dataset(folder)`` (and the
Hub's viewer) read ``data/train-*.parquet``; :func:`shard_configs` is the one place that says so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from huggingface_hub import DatasetCard

TAGS = ["sifthinker", "spatial-reasoning", "depth", "visual-chain-of-thought"]


def shard_configs(pattern: str = "data/train-*.parquet", split: str = "train") -> list[dict[str, Any]]:
    """The ``configs:`` entry of a folder of parquet shards."""
    return [{"config_name": "default", "data_files": [{"split": split, "path": pattern}]}]


def size_category(records: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if records < limit:
            return name
    return "1M<n<10M"


def columns_markdown() -> str:
    """The columns of a SIF shard with their descriptions, from the record schema."""
    from sifdata.schema import SIFRecord

    return "\n".join(f"- `{name}`: {info.description}" for name, info in SIFRecord.model_fields.items())


def dataset_card(*, records: int, pretty_name: str, license: str = "other", **values: Any) -> DatasetCard:
    """The card of a SIF shard folder, from the ``dataset_card.md`` template.

    ``values`` fill the template's other placeholders (sources, writer, frames, ...).
    """
    import sifthinker_cards
    from huggingface_hub import DatasetCard, DatasetCardData

    data = DatasetCardData(
        license=license,
        pretty_name=pretty_name,
        language=["en"],
        task_categories=["visual-question-answering"],
        size_categories=[size_category(records)],
        tags=TAGS,
        configs=shard_configs(),
    )
    return DatasetCard.from_template(
        data,
        template_path=sifthinker_cards.template_path("dataset_card.md"),
        records=records,
        columns=columns_markdown(),
        **values,
    )


def plain_dataset_card(pretty_name: str) -> DatasetCard:
    """A minimal card for an exported training folder: just the ``configs:`` that make it load."""
    from huggingface_hub import DatasetCard, DatasetCardData

    data = DatasetCardData(pretty_name=pretty_name, tags=TAGS, configs=shard_configs())
    return DatasetCard(f"---\n{data.to_yaml()}\n---\n\n# {pretty_name}\n\nExported by `sifdata export`.\n")
