"""Session fixtures: everything offline, tiny models built here from configs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

DATA = Path(__file__).parent / "data"
VISCOT = DATA / "viscot_benchmark"
VISCOT_SUBSETS = ("gqa", "vsr", "cub")


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads or writes the user's caches."""
    home = tmp_path_factory.getbasetemp() / "home"
    monkeypatch.setenv("SIF_HOME", str(home / "sifthinker"))
    monkeypatch.setenv("HF_HOME", str(home / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(home / "hf" / "hub"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(home / "hf" / "datasets"))


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
