"""The published numbers sifeval's reports stand beside (``sifeval/data/published.yaml``: each
row with its source and, where it differs from ours, its protocol)."""

from __future__ import annotations

from importlib import resources
from typing import Any

import yaml


def published() -> dict[str, Any]:
    text = (resources.files("sifeval") / "data" / "published.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)
