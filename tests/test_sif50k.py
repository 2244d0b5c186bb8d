"""The published SIF-50K read right: frames converted, depths read again, paths resolved, rejects
named, the published layout written back byte for byte, the conversion cached by content."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import VISCOT
from published_sif50k import generator_depth, scene_depth, write_release
from typer.testing import CliRunner

import sifdata
from sifdata.cli import app
from sifdata.export import to_sif50k
from sifdata.geometry import iou
from sifdata.hub import convert_published
from sifdata.shards import iter_rows, shard_files
from sifdata.sources import sif50k, viscot
from sifdata.validate import validate_folder


def _viscot_rows(subset: str, count: int) -> tuple[list[dict], dict[str, tuple[int, int]]]:
    rows = json.loads((VISCOT / "benchmark" / f"{subset}.json").read_text())[:count]
    sizes = {
        e.img_path: (e.width, e.height)
        for e in viscot.read_detection(VISCOT / "benchmark_det" / f"{subset}.jsonl").values()
    }
    return rows, sizes


@pytest.fixture
def release(tmp_path: Path) -> Path:
    """The first four gqa records: portrait 391x500, landscape 500x374, square 500x500, portrait 374x500."""
    rows, sizes = _viscot_rows("gqa", 4)
    return write_release(tmp_path / "SIF-50K", rows, sizes)


# Hand-computed: per-axis = (padded * S - offset) / side, S = max(W, H), offset = (S - side) // 2.
EXPECTED_GT = [
    # gqa/7, 391x500: S = 500, x offset 54. x1 = (0.542 * 500 - 54) / 391 = 217 / 391 = 0.555 ...
    (0.555, 0.686, 0.619, 0.786),  # x2 = (0.592 * 500 - 54) / 391 = 242 / 391; y unchanged
    # gqa/8, 500x374: S = 500, y offset 63. y1 = (0.262 * 500 - 63) / 374 = 68 / 374, y2 = 173 / 374
    (0.454, 0.182, 0.782, 0.463),
    # gqa/16, 500x500: a square image needs no conversion
    (0.234, 0.722, 0.57, 0.964),
    # gqa/19, 374x500: S = 500, x offset 63. x1 = (0.516 * 500 - 63) / 374 = 195 / 374, x2 = 339 / 374
    (0.521, 0.386, 0.906, 0.702),
]


def test_import_converts_published_boxes_to_per_axis(release: Path) -> None:
    imported = list(sif50k.read(release))
    published = json.loads(release.read_text())
    assert [item.record.gt_boxes for item in imported] == [[box] for box in EXPECTED_GT]
    for item, row in zip(imported, published, strict=True):
        record = item.record
        assert record.box_frame == "per-axis" and record.provenance.writer_kind == "imported"
        assert record.extra["published"]["frame"] == "padded-square"
        assert record.extra["published"]["bbox_3d"] == row["normalized_solution_round"]["bbox_3d"]
        assert record.extra["published"]["chain"] == row["messages"][1]["content"]
        chain = record.parsed_chain()
        # The chain's last box is the converted ground truth, up to the generator's pixel rounding.
        last = chain.last_boxes[0]
        assert all(
            abs(a - b) <= 1.5 / min(record.width, record.height) + 0.002
            for a, b in zip(last, record.gt_boxes[0], strict=True)
        )
        assert chain.focus_steps[0].boxes == [(0.0, 0.0, 1.0, 1.0)]
        # Depths read again over the converted boxes, computed here the generator's way.
        depth = scene_depth(record.width, record.height)
        for step in chain.focus_steps:
            assert step.depths == [generator_depth(depth, list(box)) for box in step.boxes]
        published_chain = sifdata.parse_chain(row["messages"][1]["content"])
        assert record.extra["published"]["depths"] == [step.depths for step in published_chain.focus_steps]


def test_the_shift_is_real_on_non_square_images(release: Path) -> None:
    """On the portrait image the published box, read per axis, misses half the object."""
    portrait = next(iter(sif50k.read(release))).record  # gqa/7, 391x500, object at 217..242 x 343..393 px
    truth = (217 / 391, 343 / 500, 242 / 391, 393 / 500)
    published = portrait.extra["published"]["bbox_3d"][0]
    assert iou(published, truth) < 0.5
    assert iou(portrait.gt_boxes[0], truth) > 0.95


@pytest.mark.parametrize("subset", ["gqa", "vsr", "cub"])
def test_converted_boxes_match_the_real_pixel_boxes(tmp_path: Path, subset: str) -> None:
    """Against Visual-CoT's own pixel boxes (benchmark_det), for 30 records of each subset."""
    rows, sizes = _viscot_rows(subset, 30)
    detections = viscot.read_detection(VISCOT / "benchmark_det" / f"{subset}.jsonl")
    imported = {
        item.record.extra["image_path"]: item.record for item in sif50k.read(write_release(tmp_path, rows, sizes))
    }
    assert len(imported) == len({r["image"][0] for r in rows})
    for row in rows:
        entry = detections[viscot.detection_key(row["image"][0], row["question_id"])]
        record = imported[f"../data/{subset}/{row['image'][0].rsplit('/', 1)[-1]}"]
        if record.extra["published"]["bbox_3d"] != [json.loads(row["conversations"][1]["value"])]:
            continue  # two questions on one image: the other one's record
        side = max(entry.width, entry.height)
        truth = (
            entry.bbox[0] / entry.width,
            entry.bbox[1] / entry.height,
            entry.bbox[2] / entry.width,
            entry.bbox[3] / entry.height,
        )
        tolerances = [0.0005 * side / entry.width + 0.0006, 0.0005 * side / entry.height + 0.0006] * 2
        for got, want, tolerance in zip(record.gt_boxes[0], truth, tolerances, strict=True):
            assert abs(got - min(max(want, 0.0), 1.0)) <= tolerance, (
                record.extra["image_path"],
                record.gt_boxes[0],
                truth,
            )


def test_keep_published_frame_keeps_the_file_as_it_is(release: Path) -> None:
    published = json.loads(release.read_text())
    for item, row in zip(sif50k.read(release, keep_published_frame=True), published, strict=True):
        assert item.record.box_frame == "padded-square"
        assert [list(box) for box in item.record.gt_boxes] == row["normalized_solution_round"]["bbox_3d"]
        assert item.record.chain == row["messages"][1]["content"]
        assert "published" not in item.record.extra


def test_image_paths_resolve_under_every_root_and_never_outside(tmp_path: Path, release: Path) -> None:
    # The Hub layout (images/ beside the JSON) was used above; now the literal ../data/ and --image-root.
    literal = tmp_path / "literal"
    (literal / "json").mkdir(parents=True)
    shutil.copy(release, literal / "json" / "SIF-50K.json")
    shutil.copytree(release.parent / "images", literal / "data")
    assert len(list(sif50k.read(literal / "json" / "SIF-50K.json"))) == 4
    elsewhere = tmp_path / "elsewhere"
    shutil.copy(release, tmp_path / "alone.json")
    shutil.copytree(release.parent / "images", elsewhere)
    rejects: list = []
    assert list(sif50k.read(tmp_path / "alone.json", on_reject=rejects.append)) == []
    assert len(rejects) == 4 and all("image not found" in r.reason for r in rejects)
    assert len(list(sif50k.read(tmp_path / "alone.json", image_root=elsewhere))) == 4

    rows = json.loads(release.read_text())
    rows[0]["image"] = "/etc/hostname"
    rows[1]["depth_image"] = "../data/../../../../etc/hostname"
    rows[2]["image"] = "../data/gqa/not-there.jpg"
    (release.parent / "bad.json").write_text(json.dumps(rows))
    rejects = []
    kept = list(sif50k.read(release.parent / "bad.json", on_reject=rejects.append))
    assert [item.record.id for item in kept] == ["sif50k/000003"]
    reasons = {r.key: r.reason for r in rejects}
    assert "not relative" in reasons["sif50k/000000"]
    assert "leaves" in reasons["sif50k/000001"]
    assert "image not found" in reasons["sif50k/000002"] and "not-there.jpg" in reasons["sif50k/000002"]


def test_broken_rows_are_rejected_with_their_reasons(release: Path) -> None:
    rows = json.loads(release.read_text())
    rows[0]["messages"][1]["content"] = "<think>no areas</think><answer>x</answer>"
    rows[1]["normalized_solution_round"]["bbox_3d"] = [[0.5, 0.5, 0.1, 0.1]]
    del rows[2]["problem"]
    (release.parent / "broken.json").write_text(json.dumps(rows))
    rejects: list = []
    assert len(list(sif50k.read(release.parent / "broken.json", on_reject=rejects.append))) == 1
    reasons = [r.reason for r in rejects]
    assert "chain" in reasons[0] and "text outside tags" in reasons[0]
    assert "outside the 500x374 image" in reasons[1]
    assert "problem" in reasons[2]


def test_import_then_export_is_the_same_file_byte_for_byte(tmp_path: Path, release: Path) -> None:
    original = release.read_bytes()
    runner = CliRunner()
    result = runner.invoke(app, ["import", str(release), "--out", str(tmp_path / "shards")])
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())  # rich wraps long lines
    assert "imported 4 records" in output and "(converted to per-axis boxes); 0 rejected" in output
    assert validate_folder(tmp_path / "shards").ok, validate_folder(tmp_path / "shards").errors
    card = (tmp_path / "shards" / "README.md").read_text()
    assert "4 imported records were converted from the published SIF-50K's padded-square values" in card
    exported = runner.invoke(
        app, ["export", str(tmp_path / "shards"), "--format", "sif50k", "--out", str(tmp_path / "release")]
    )
    assert exported.exit_code == 0, exported.output
    assert (tmp_path / "release" / "SIF-50K.json").read_bytes() == original
    for name in ("2316539.jpg", "2316539_d.png"):
        assert (tmp_path / "release" / "images" / "gqa" / name).read_bytes() == (
            release.parent / "images" / "gqa" / name
        ).read_bytes()
    # ... and the export imports again to the same records.
    again = [item.record for item in sif50k.read(tmp_path / "release" / "SIF-50K.json")]
    assert [r.gt_boxes for r in again] == [[box] for box in EXPECTED_GT]


def test_kept_frame_import_validates_and_round_trips(tmp_path: Path, release: Path) -> None:
    report = convert_published(release, tmp_path / "kept", keep_published_frame=True)
    assert report.records == 4 and not report.rejects
    assert validate_folder(tmp_path / "kept").ok, validate_folder(tmp_path / "kept").errors
    assert "keep the published padded-square values" in (tmp_path / "kept" / "README.md").read_text()
    rows = [row for path in shard_files(tmp_path / "kept") for row in iter_rows(path)]
    assert {row["box_frame"] for row in rows} == {"padded-square"}
    to_sif50k(tmp_path / "kept", tmp_path / "out")
    assert (tmp_path / "out" / "SIF-50K.json").read_bytes() == release.read_bytes()


def test_missing_images_are_counted_rejects_and_no_records_is_a_failure(tmp_path: Path) -> None:
    rows, sizes = _viscot_rows("gqa", 3)
    json_path = write_release(tmp_path / "rel", rows, sizes)
    (tmp_path / "rel" / "images" / "gqa" / "2414389.jpg").unlink()
    runner = CliRunner()
    result = runner.invoke(app, ["import", str(json_path), "--out", str(tmp_path / "a")])
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert "imported 2 records" in output and "1 rejected" in output and "rejected 1: image not found" in output
    lines = [json.loads(line) for line in (tmp_path / "a" / "work" / "source_rejects.jsonl").read_text().splitlines()]
    assert [line["id"] for line in lines] == ["sif50k/000001"]
    assert json.loads((tmp_path / "a" / "manifest.json").read_text())["rejects"] == 1
    shutil.rmtree(tmp_path / "rel" / "images")
    result = runner.invoke(app, ["import", str(json_path), "--out", str(tmp_path / "b")])
    assert result.exit_code == 1 and "no record could be imported" in " ".join(result.output.split())
    with pytest.raises(sifdata.hub.DatasetNotAvailable, match="no record could be imported"):
        sifdata.load_dataset(json_path)


def test_two_files_with_one_stem_never_share_a_conversion(tmp_path: Path) -> None:
    first, sizes = _viscot_rows("gqa", 2)
    second, more = _viscot_rows("vsr", 3)
    a = write_release(tmp_path / "a", first, sizes)
    b = write_release(tmp_path / "b", second, more)
    assert a.name == b.name == "SIF-50K.json"
    loaded_a, loaded_b = sifdata.load_dataset(a), sifdata.load_dataset(b)
    assert len(loaded_a) == 2 and len(loaded_b) == 3
    assert {row["source"] for row in loaded_b} == {"vsr"}
    assert sifdata.load_dataset(a)["id"] == loaded_a["id"]  # the same content: the cached conversion
    kept = sifdata.load_dataset(a, keep_published_frame=True)
    assert set(kept["box_frame"]) == {"padded-square"} and set(loaded_a["box_frame"]) == {"per-axis"}
    record = sifdata.SIFRecord.from_row(loaded_a[0])
    assert record.gt_boxes == [EXPECTED_GT[0]] and loaded_a[0]["image"].size == (391, 500)
    assert np.asarray(loaded_a[0]["depth_image"]).shape[:2] == (500, 391)


def test_a_layout_sif50k_does_not_write_still_round_trips(tmp_path: Path, release: Path) -> None:
    rows = json.loads(release.read_text())
    rows[0]["normalized_solution_round"]["bbox_3d"] = [[0, 0, 1, 1]]  # integers, not floats
    rows[1]["note"] = "a field of someone's own"
    rows[2] = {"problem": rows[2].pop("problem"), **rows[2]}  # other key order
    text = json.dumps(rows, ensure_ascii=False, indent=2) + "\n"
    (release.parent / "odd.json").write_text(text, encoding="utf-8")
    for keep in (False, True):
        out = tmp_path / f"shards-{keep}"
        assert convert_published(release.parent / "odd.json", out, keep_published_frame=keep).records == 4
        to_sif50k(out, tmp_path / f"again-{keep}")
        assert (tmp_path / f"again-{keep}" / "SIF-50K.json").read_text(encoding="utf-8") == text
