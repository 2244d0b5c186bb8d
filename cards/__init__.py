"""Hub card templates (installed as the package ``sifthinker_cards``).

Jinja templates for ``huggingface_hub``'s ``DatasetCard.from_template`` and
``ModelCard.from_template``: the YAML front matter comes from ``{{ card_data }}``, rendered by
``huggingface_hub`` from a ``DatasetCardData``/``ModelCardData``, never written by hand.
"""

from __future__ import annotations

from importlib import resources


def template_path(name: str) -> str:
    """The file system path of the template ``name`` (``dataset_card.md``, ``model_card.md``)."""
    path = resources.files(__name__) / name
    if not path.is_file():
        raise FileNotFoundError(f"no card template {name!r} in sifthinker_cards")
    return str(path)
