"""sifdata: the SIF chain format, typed records, builders and shards for SIF-50K.

Light imports: nothing here loads a model until you ask for depth estimation.
"""

from sifdata import geometry
from sifdata.builder.expand import plan_focus, reverse_expand
from sifdata.chain import ChainError, format_chain, parse_chain
from sifdata.hub import load_dataset
from sifdata.prompt import SIF_INSTRUCTION, sif_user_text
from sifdata.schema import Chain, Focus, Provenance, SIFRecord, Text
from sifdata.version import __version__

__all__ = [
    "SIF_INSTRUCTION",
    "Chain",
    "ChainError",
    "Focus",
    "Provenance",
    "SIFRecord",
    "Text",
    "__version__",
    "format_chain",
    "geometry",
    "load_dataset",
    "parse_chain",
    "plan_focus",
    "reverse_expand",
    "sif_user_text",
]
