from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from conftest import VISCOT
from huggingface_hub import constants
from published_sif50k import write_release
from typer.testing import CliRunner

import sifdata
from sifdata.builder.pipeline import BuildConfig, build
from sifdata.cli import app
from sifdata.hub import DatasetNotAvailable, push
from sifdata.sources import viscot


@pytest.fixture(scope="module")
def small_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("hub") / "small"
    build(BuildConfig(source="synthetic", n=4), out, progress=False)
    return out


def _published_snapshot(folder: Path) -> Path:
    """What the Hub repo jankin123/SIF-50K holds: SIF-50K.json and images/ beside it."""
    rows = json.loads((VISCOT / "benchmark" / "vsr.json").read_text())[:2]
    sizes = {
        e.img_path: (e.width, e.height) for e in viscot.read_detection(VISCOT / "benchmark_det" / "vsr.jsonl").values()
    }
    return write_release(folder, rows, sizes)


def test_load_a_published_json_file(tmp_path: Path) -> None:
    dataset = sifdata.load_dataset(_published_snapshot(tmp_path))
    assert len(dataset) == 2
    records = [sifdata.SIFRecord.from_row(row) for row in dataset]
    assert records[0].answer and records[0].width == dataset[0]["image"].size[0]
    assert dataset[1]["depth_image"] is not None
    assert json.loads(dataset[0]["extra"])["image_path"].startswith("../data/vsr/")


def test_alias_resolves_to_a_local_build(small_build: Path) -> None:
    shutil.copytree(small_build, Path(os.environ["SIF_HOME"]) / "builds" / "sif-50k")
    dataset = sifdata.load_dataset("sif-50k")
    assert len(dataset) == 4
    assert all(sifdata.SIFRecord.from_row(row) for row in dataset)


def test_alias_resolves_to_the_hf_cache_snapshot(tmp_path: Path) -> None:
    # The real cache layout that snapshot_download writes: refs/main -> snapshots/<commit>/...
    repo = Path(constants.HF_HUB_CACHE) / "datasets--jankin123--SIF-50K"
    commit = "0123456789abcdef0123456789abcdef01234567"
    _published_snapshot(repo / "snapshots" / commit)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    try:
        dataset = sifdata.load_dataset("sif-50k")
        questions = [row["question"] for row in dataset]
        assert len(questions) == 2 and all(questions)
        converted = list((Path(os.environ["SIF_HOME"]) / "builds").glob("import-sif-50k-*/manifest.json"))
        assert len(converted) == 1  # converted once, loaded from there next time
        assert sifdata.load_dataset("sif-50k")["id"] == dataset["id"]
    finally:
        shutil.rmtree(repo)


def test_offline_and_not_cached_says_what_to_do() -> None:
    with pytest.raises(DatasetNotAvailable) as caught:
        sifdata.load_dataset("sif-50k")
    message = str(caught.value)
    assert "not available offline" in message and "sifdata build" in message and "HF_HUB_OFFLINE" in message
    with pytest.raises(DatasetNotAvailable, match="without data"):
        sifdata.load_dataset(Path(os.environ["SIF_HOME"]).parent)


class FakeHfApi:
    """Stands in for the Hub (which tests cannot reach); records what would be sent."""

    def __init__(self, token: str | None = None) -> None:
        self.token = token
        self.calls: list[tuple[str, dict]] = []
        FakeHfApi.last = self

    def create_repo(self, repo_id: str, **kwargs: object) -> None:
        self.calls.append(("create_repo", {"repo_id": repo_id, **kwargs}))

    def upload_folder(self, **kwargs: object) -> str:
        self.calls.append(("upload_folder", kwargs))
        folder = Path(str(kwargs["folder_path"]))
        import fnmatch

        self.uploaded = sorted(
            str(p.relative_to(folder))
            for p in folder.rglob("*")
            if p.is_file() and any(fnmatch.fnmatch(str(p.relative_to(folder)), pat) for pat in kwargs["allow_patterns"])
        )
        return f"https://huggingface.co/datasets/{kwargs['repo_id']}/commit/abc"


def test_push_uploads_card_manifest_and_shards_only(small_build: Path) -> None:
    api = FakeHfApi()
    url = push(small_build, "me/sif-small", api=api, private=True)
    assert url.endswith("/commit/abc")
    assert api.calls[0] == (
        "create_repo",
        {"repo_id": "me/sif-small", "repo_type": "dataset", "private": True, "exist_ok": True},
    )
    assert api.uploaded == ["README.md", "data/train-00000-of-00001.parquet", "manifest.json"]


def test_push_refuses_invalid_folders_and_missing_tokens(
    small_build: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ValueError, match="does not validate"):
        push(tmp_path, "me/x", api=FakeHfApi())
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr("huggingface_hub.get_token", lambda: None)
    with pytest.raises(PermissionError, match="HF_TOKEN"):
        push(small_build, "me/x")


def test_cli_push_takes_the_token_from_the_environment_and_never_prints_it(
    small_build: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = "hf_SECRETsecretSECRETsecret"
    monkeypatch.setenv("HF_TOKEN", token)
    monkeypatch.setattr("huggingface_hub.HfApi", FakeHfApi)
    runner = CliRunner()
    result = runner.invoke(app, ["push", str(small_build), "--repo", "me/sif-small"])
    assert result.exit_code == 0, result.output
    assert FakeHfApi.last.token == token
    assert token not in result.output
    dry = runner.invoke(app, ["push", str(small_build), "--repo", "me/sif-small", "--dry-run"])
    assert dry.exit_code == 0 and "manifest.json" in dry.output and "work" not in dry.output


def test_two_local_folders_with_one_name_never_share_a_cache(tmp_path: Path) -> None:
    """datasets alone gives a folder whose README lists configs the cache of any earlier folder
    of the same name (seen with datasets 5.2: the second load returns the first folder's rows)."""
    from sifdata.hub import load_local
    from sifeval.cvbench import build_mirror

    for index, per_task in ((0, 1), (1, 3)):
        folder = build_mirror(tmp_path / str(index) / "cvbench", per_task=per_task)
        assert len(load_local(folder, "2D", split="test")) == 2 * per_task
