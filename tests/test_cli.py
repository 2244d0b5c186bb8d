from __future__ import annotations

import json
from pathlib import Path

from PIL import Image
from typer.testing import CliRunner

from sifdata.cli import app

runner = CliRunner()


def _ok(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_build_stats_show_export_and_schema(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    output = _ok("build", "--source", "synthetic", "--n", "12", "--num-shards", "2", "--out", str(out), "--no-progress")
    assert "dataset complete" in output and "12 records" in output
    stats = json.loads(_ok("stats", str(out), "--json"))
    assert stats["records"] == 12 and stats["per_source"][0]["source"] == "synthetic"
    assert sum(stats["depth_histogram"]["counts"]) > 0
    assert "depth of focus boxes" in _ok("stats", str(out))
    png = tmp_path / "record.png"
    _ok("show", str(out), "synthetic/0-000003", "--out", str(png))
    with Image.open(png) as image:
        assert image.width > 600 and image.height > 100
    missing = runner.invoke(app, ["show", str(out), "nope/1", "--out", str(png)])
    assert missing.exit_code == 1 and "no record 'nope/1'" in missing.output
    for name in ("llamafactory", "trl-sft", "trl-grpo", "sif50k"):
        assert "wrote" in _ok("export", str(out), "--format", name, "--out", str(tmp_path / name))
    schema = json.loads(_ok("schema", "record"))
    assert "chain" in schema["properties"] and "gt_boxes" in schema["required"]
    assert "steps" in json.loads(_ok("schema", "chain"))["properties"]


def test_shard_jobs_and_merge_through_the_cli(tmp_path: Path) -> None:
    for index in range(2):
        output = _ok(
            "build",
            "--source",
            "synthetic",
            "--n",
            "8",
            "--shard",
            f"{index}/2",
            "--out",
            str(tmp_path / f"p{index}"),
            "--no-progress",
        )
        assert "shards still missing" in output
    assert "merged 2 shards, 8 records" in _ok(
        "merge", str(tmp_path / "p0"), str(tmp_path / "p1"), "--out", str(tmp_path / "all")
    )
    assert "valid" in _ok("validate", str(tmp_path / "all"), "--no-progress")
    bad = runner.invoke(app, ["build", "--source", "synthetic", "--shard", "2/2", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 1 and "i must be in 0..n-1" in bad.output


def test_viscot_build_needs_a_source_path(tmp_path: Path) -> None:
    result = runner.invoke(app, ["build", "--source", "viscot", "--out", str(tmp_path), "--no-progress"])
    assert result.exit_code == 1 and "source viscot: path: required" in result.output, result.output


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    output = _ok("demo", "--out", str(tmp_path / "demo"), "--n", "14")
    assert "valid: True (14 records" in output
    assert (tmp_path / "demo" / "exports" / "trl-grpo" / "README.md").is_file()
