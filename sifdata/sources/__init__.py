"""Sources of (question, answer, ground-truth boxes) records: one module per source."""

from sifdata.sources import sif50k, synthetic, tallyqa, viscot
from sifdata.sources.base import SourceError, SourceRecord, SourceReject

__all__ = ["SourceError", "SourceRecord", "SourceReject", "sif50k", "synthetic", "tallyqa", "viscot"]
