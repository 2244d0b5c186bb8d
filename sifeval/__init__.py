"""sifeval: VisCoT, SpatialBench, SAT, V* and CV-Bench by their official protocols, through one
adapter interface."""

from sifeval.adapters import Benchmark, get_benchmark, list_benchmarks
from sifeval.types import BenchmarkResult, ImageRef, Sample, ScoredSample, Source

__all__ = [
    "Benchmark",
    "BenchmarkResult",
    "ImageRef",
    "Sample",
    "ScoredSample",
    "Source",
    "get_benchmark",
    "list_benchmarks",
]
