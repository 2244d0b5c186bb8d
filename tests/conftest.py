"""Session fixtures: everything offline, tiny models built here from configs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
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


@pytest.fixture(autouse=True)
def _fresh_reward_caches() -> None:
    """The rewards read each completion once per process (lru caches in ``sifmodel.rewards``);
    each test starts without readings a previous test left, so a test sees the parser it runs
    (mutation testing forks every mutant from a process whose caches are already warm)."""
    rewards = sys.modules.get("sifmodel.rewards")
    if rewards is not None:
        rewards.parsed.cache_clear()
        rewards.areas.cache_clear()


@pytest.fixture(scope="session")
def tiny_depth_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sifdata.tiny_models import build_tiny_depth_anything

    return build_tiny_depth_anything(tmp_path_factory.mktemp("models") / "tiny-depth")


@pytest.fixture(scope="session")
def demo_build(tmp_path_factory: pytest.TempPathFactory, tiny_depth_model: Path) -> Path:
    """A 56-record build: the 11 real-photo questions (tiny Depth Anything) + 45 synthetic scenes."""
    from sifdata.builder.pipeline import BuildConfig, build
    from sifdata.depth import DepthEstimator

    out = tmp_path_factory.mktemp("builds") / "demo"
    config = BuildConfig(source="demo", n=56, num_shards=2, depth_model=str(tiny_depth_model), depth_device="cpu")
    report = build(config, out, estimator=DepthEstimator(str(tiny_depth_model), device="cpu"), progress=False)
    assert report.dataset_complete and report.records == 56 and report.rejects == 0
    return out


@pytest.fixture(scope="session")
def tiny_vlm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sifmodel.tiny_models import build_tiny_qwen2_5_vl

    return build_tiny_qwen2_5_vl(tmp_path_factory.mktemp("models") / "tiny-qwen2.5-vl")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def served_tiny_vlm(tiny_vlm: Path, tmp_path_factory: pytest.TempPathFactory):
    """`sifmodel serve` -> `transformers serve`: a real OpenAI-compatible server with the tiny VLM on loopback."""
    import subprocess
    import time
    import urllib.request

    port = _free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with open(log, "w") as handle:  # through `sifmodel serve`, which execs `transformers serve`
        process = subprocess.Popen(
            [
                os.sys.executable,
                "-m",
                "sifmodel.cli",
                "serve",
                str(tiny_vlm),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--engine",
                "transformers",
                "--device",
                "cpu",
            ],
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    try:
        while True:
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"transformers serve did not come up:\n{log.read_text()[-3000:]}") from None
                time.sleep(0.5)
        yield f"{base}/v1"
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def kill_once_journaled(process: subprocess.Popen, journal: Path, lines: int) -> None:
    """SIGKILL ``process`` once ``journal`` holds ``lines`` lines: a state, never a time (the
    deadline only guards against a hang). Fails the test when the child ends first."""
    deadline = time.monotonic() + 180
    while not (journal.is_file() and journal.read_text().count("\n") >= lines):
        if process.poll() is not None or time.monotonic() > deadline:
            stderr = process.stderr.read().decode()[-2000:] if process.stderr else ""
            pytest.fail(f"the child ended before it could be killed: {stderr}")
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
