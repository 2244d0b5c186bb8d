from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from sifdata.builder.pipeline import BuildConfig, build
from sifdata.cli import app
from sifdata.shards import shard_files
from sifdata.validate import validate_folder


@pytest.fixture(scope="module")
def small_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("validate") / "small"
    build(BuildConfig(source="synthetic", n=6), out, progress=False)
    return out


def _tampered(small_build: Path, tmp_path: Path, change) -> Path:  # type: ignore[no-untyped-def]
    copy = tmp_path / "copy"
    shutil.copytree(small_build, copy)
    (path,) = shard_files(copy)
    table = pq.read_table(path)
    rows = table.to_pylist()
    change(rows)
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), path)
    return copy


def _checks(folder: Path) -> dict[str, set[str]]:
    report = validate_folder(folder)
    assert not report.ok
    found: dict[str, set[str]] = {}
    for issue in report.errors:
        found.setdefault(issue.check, set()).add(issue.where)
    return found


def test_a_fresh_build_is_valid(small_build: Path) -> None:
    report = validate_folder(small_build)
    assert report.ok and report.records == 6


def test_wrong_depth_in_a_chain_is_caught(small_build: Path, tmp_path: Path) -> None:
    def change(rows: list[dict]) -> None:
        chain = rows[2]["chain"]
        start = chain.index('"depth":') + len('"depth":')
        rows[2]["chain"] = (
            chain[:start] + ("0.000" if chain[start : start + 5] != "0.000" else "0.999") + chain[start + 5 :]
        )

    found = _checks(_tampered(small_build, tmp_path, change))
    assert found["depth"] == {"synthetic/0-000002"}
    assert "checksum" in found  # the shard no longer matches the manifest


def test_grammar_ranges_duplicates_and_images_are_caught(small_build: Path, tmp_path: Path) -> None:
    def change(rows: list[dict]) -> None:
        rows[0]["chain"] = rows[0]["chain"].replace("<answer>", "<answer>\n")[:-9]  # no </answer>
        rows[1]["gt_boxes"] = [[0.5, 0.5, 0.2, 0.9]]
        rows[3]["image"] = {"bytes": b"corrupt", "path": "x.png"}
        rows[4]["depth_image"] = None
        rows.append(dict(rows[5]))

    found = _checks(_tampered(small_build, tmp_path, change))
    assert {"synthetic/0-000000", "synthetic/0-000001"} <= found["schema"]
    assert found["image"] == {"synthetic/0-000003"}
    assert found["depth"] == {"synthetic/0-000004"}
    assert found["duplicate"] == {"synthetic/0-000005"}


def test_missing_card_and_manifest_are_caught(small_build: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(small_build, copy)
    (copy / "README.md").unlink()
    (copy / "manifest.json").unlink()
    found = _checks(copy)
    assert found["card"] == {"README.md"} and found["manifest"] == {"manifest.json"}
    assert not validate_folder(tmp_path / "empty").ok


def test_cli_validate_exit_codes(small_build: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    good = runner.invoke(app, ["validate", str(small_build), "--no-progress"])
    assert good.exit_code == 0 and "valid" in good.output
    broken = _tampered(small_build, tmp_path, lambda rows: rows.append(dict(rows[0])))
    bad = runner.invoke(app, ["validate", str(broken), "--no-progress"])
    assert bad.exit_code == 1
    assert "synthetic/0-000000" in bad.output and "duplicate" in bad.output
