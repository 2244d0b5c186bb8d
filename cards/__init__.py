"""Hub card templates (installed as the package ``sifthinker_cards``)."""

from __future__ import annotations

from importlib import resources
from string import Template


def render(template_name: str, **values: object) -> str:
    """Fill ``$name`` placeholders of a card template; a missing value is an error."""
    text = (resources.files(__name__) / template_name).read_text(encoding="utf-8")
    return Template(text).substitute({key: str(value) for key, value in values.items()})
