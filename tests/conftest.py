"""Session fixtures: everything offline, tiny models built here from configs."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# Before anything imports huggingface_hub (it reads these once): no test touches the user's caches.
_HOME = Path(tempfile.mkdtemp(prefix="sif-tests-home-"))
os.environ["HF_HOME"] = str(_HOME / "hf")
os.environ["HF_HUB_CACHE"] = str(_HOME / "hf" / "hub")
os.environ["HF_DATASETS_CACHE"] = str(_HOME / "hf" / "datasets")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

DATA = Path(__file__).parent / "data"
VISCOT = DATA / "viscot_benchmark"
VISCOT_SUBSETS = ("gqa", "vsr", "cub")


@pytest.fixture(autouse=True)
def _isolated_sif_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test gets its own SIF_HOME (local builds and conversions)."""
    monkeypatch.setenv("SIF_HOME", str(tmp_path / "sif-home"))


@pytest.fixture(scope="session")
def tiny_depth_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sifdata.tiny_models import build_tiny_depth_anything

    return build_tiny_depth_anything(tmp_path_factory.mktemp("models") / "tiny-depth")


@pytest.fixture(scope="session")
def demo_build(tmp_path_factory: pytest.TempPathFactory, tiny_depth_model: Path) -> Path:
    """A 56-record build: the 11 real-photo questions (tiny Depth Anything) + 45 synthetic scenes."""
    from sifdata.build.pipeline import BuildConfig, build
    from sifdata.depth import DepthEstimator

    out = tmp_path_factory.mktemp("builds") / "demo"
    config = BuildConfig(source="demo", n=56, num_shards=2, depth_model=str(tiny_depth_model), depth_device="cpu")
    report = build(config, out, estimator=DepthEstimator(str(tiny_depth_model), device="cpu"), progress=False)
    assert report.dataset_complete and report.records == 56 and report.rejects == 0
    return out
