"""The viewer's sites: their data files for a build and for evaluation runs (one, or two side by
side), pictures made once, boxes brought to the image frame, and the CLI commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner
from viewer_runs import LIMIT, viscot_run

from sifdata.chain import parse_chain
from sifdata.cli import app as sifdata_app
from sifdata.shards import iter_rows, shard_files
from sifdata.viewer import read_data_file
from sifdata.viewer.build import view_build
from sifeval import get_benchmark
from sifeval.cli import app as sifeval_app
from sifeval.mirrors import build_mirror
from sifeval.view import view_runs

runner = CliRunner()


@pytest.fixture(scope="module")
def viscot_mirror(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_mirror("viscot", tmp_path_factory.mktemp("mirror"))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, viscot_mirror: Path) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("runs")
    return {
        "right": viscot_run(viscot_mirror, folder / "right", right=True, hostile=True, error=True),
        "wrong": viscot_run(viscot_mirror, folder / "wrong", right=False),
    }


def _site(folder: Path) -> tuple[dict, list[dict]]:
    manifest = read_data_file(folder / "data" / "manifest.js")
    items = [item for page in sorted((folder / "data").glob("page-*.js")) for item in read_data_file(page)]
    return manifest, items


# ----------------------------------------------------------------------------- builds


def test_a_build_site_holds_every_record_with_its_chain_and_pictures(demo_build: Path, tmp_path: Path) -> None:
    rows = [row for path in shard_files(demo_build) for row in iter_rows(path)]
    site = view_build(demo_build, tmp_path / "site", progress=False)
    manifest, items = _site(tmp_path / "site")
    assert site.items == len(rows) == len(items) == len(manifest["items"]) == 56 and site.picture_errors == 0
    assert site.pages == 2 and manifest["facets"][:3] == ["kind", "source", "chain length"]  # 50 per page
    assert "reject stage" not in manifest["facets"]  # no reject in this build: no drop-down for it
    by_id = {item["id"]: item for item in items}
    for row in rows:
        item = by_id[row["id"]]
        chain = parse_chain(row["chain"])
        assert [len(step) for step in item["panels"][0]["steps"]] == [len(s.boxes) for s in chain.focus_steps]
        assert item["truth"] == [list(box) for box in row["gt_boxes"]] and item["size"] == [row["width"], row["height"]]
        for picture in (item["image"], item["depth"]):
            assert (tmp_path / "site" / picture).is_file()
    summary = manifest["items"][0]
    assert (tmp_path / "site" / summary["thumb"]).is_file() and summary["page"] == 0
    assert summary["facets"]["kind"] == "record" and summary["facets"]["chain length"].endswith("steps")
    again = view_build(demo_build, tmp_path / "site", progress=False)
    assert again.pictures_written == 0 and again.pictures_reused == site.pictures_written + site.pictures_reused


def test_rejects_are_items_with_their_reasons(demo_build: Path, tmp_path: Path) -> None:
    import shutil

    build = tmp_path / "build"
    shutil.copytree(demo_build, build)
    shard = next((build / "work").glob("shard-*"))
    (shard / "rejects.jsonl").write_text(
        json.dumps({"order": 9, "id": "gqa/77", "stage": "checks", "reason": "the boxes do not narrow", "attempts": 2})
        + "\n"
    )
    view_build(build, tmp_path / "site", limit=3, progress=False)
    manifest, items = _site(tmp_path / "site")
    assert len(items) == 4 and "reject stage" in manifest["facets"]
    reject = items[-1]
    assert reject["id"] == "reject:gqa/77" and reject["panels"][0]["status"] == "reject"
    assert ["reason", "the boxes do not narrow"] in reject["panels"][0]["fields"]
    assert reject["image"] is None and "no image is kept" in reject["notes"][0]


# ----------------------------------------------------------------------------- runs


def test_a_run_site_shows_each_sample_as_scored(runs: dict[str, Path], viscot_mirror: Path, tmp_path: Path) -> None:
    site = view_runs([runs["right"]], tmp_path / "site", progress=False)
    manifest, items = _site(tmp_path / "site")
    assert site.items == LIMIT and site.picture_errors == 0
    samples = get_benchmark("viscot").load(viscot_mirror)[:LIMIT]
    assert [item["id"] for item in items] == [s.id for s in samples]  # the benchmark's order
    known, hostile, failed = items[0], items[1], items[2]
    panel = known["panels"][0]
    assert panel["status"] == "right" and panel["score"] == 1.0
    assert [[b["depth"] for b in step] for step in panel["steps"]] == [[0.4], [0.3, 0.6]]
    assert panel["steps"][1][0]["box"] == [0.2, 0.2, 0.4, 0.4]
    # the official ground truth (on the padded square) brought back to the image frame
    sample = samples[0]
    width, height = sample.metadata["width"], sample.metadata["height"]
    assert known["size"] == [width, height]
    (truth,) = known["truth"]
    side = max(width, height)
    assert [round(v * s) for v, s in zip(truth, (width, height, width, height), strict=True)] == [
        round(v - (side - (width if i % 2 == 0 else height)) // 2)
        for i, v in enumerate(sample.metadata["truth_padded_px"])
    ]
    assert hostile["panels"][0]["status"] == "wrong" and hostile["panels"][0]["steps"] == []
    assert failed["panels"][0]["status"] == "request error"
    assert any(label == "why" and "request error" in text for label, text in failed["panels"][0]["fields"])
    assert manifest["items"][2]["facets"] == {"category": sample.category, "status": "request error"}
    assert (tmp_path / "site" / known["image"]).is_file() and known["depth"] is None  # VisCoT brings no depth


def test_two_runs_side_by_side_open_on_their_disagreements(runs: dict[str, Path], tmp_path: Path) -> None:
    view_runs([runs["right"], runs["wrong"]], tmp_path / "site", progress=False)
    manifest, items = _site(tmp_path / "site")
    assert manifest["preset"] == {"agreement": "disagree"}
    first = manifest["items"][0]["facets"]
    assert first["agreement"] == "disagree" and (first["status A"], first["status B"]) == ("right", "wrong")
    assert [panel["label"][:2] for panel in items[0]["panels"]] == ["A:", "B:"]
    assert all(len(panel["steps"]) == 2 for panel in items[0]["panels"])  # both wrote the known chain
    assert manifest["title"].endswith("right (A) vs wrong (B)")
    assert "openai:scripted-right" in items[0]["panels"][0]["label"]


def test_each_run_is_read_with_its_own_options(runs: dict[str, Path], tmp_path: Path) -> None:
    """A run read in the padded-square frame beside one read per axis: each side's boxes as its
    own run read them, and the labels say what differs."""
    import shutil

    padded = tmp_path / "padded"
    shutil.copytree(runs["right"], padded)
    identity = json.loads((padded / "run.json").read_text())
    identity["options"]["box_frame"] = "padded-square"
    (padded / "run.json").write_text(json.dumps(identity))
    view_runs([runs["right"], padded], tmp_path / "site", progress=False)
    _, items = _site(tmp_path / "site")
    assert items[0]["panels"][0]["steps"][0][0]["box"] == [0.1, 0.1, 0.8, 0.8]
    oblong = next(item for item in items if item["size"][0] != item["size"][1] and item["panels"][0]["steps"])
    per_axis, square = (panel["steps"][0][0]["box"] for panel in oblong["panels"])
    assert square != per_axis and (min(square) < 0 or max(square) > 1)  # the padded square reaches past
    assert "box_frame=padded-square" in items[0]["panels"][1]["label"]
    assert "box_frame=per-axis" in items[0]["panels"][0]["label"]
    with pytest.raises(ValueError, match="the same run twice"):
        view_runs([runs["right"], runs["right"]], tmp_path / "x", progress=False)


def test_two_different_wrong_answers_disagree(runs: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    other = tmp_path / "other"
    shutil.copytree(runs["wrong"], other)
    lines = [json.loads(line) for line in (other / "samples.jsonl").read_text().splitlines()]
    for line in lines:
        if line["extracted"] == "a purple elephant":
            line["extracted"] = "a green giraffe"
    (other / "samples.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    view_runs([runs["wrong"], other], tmp_path / "site", progress=False)
    manifest, _ = _site(tmp_path / "site")
    facets = manifest["items"][0]["facets"]
    assert facets["status A"] == facets["status B"] == "wrong" and facets["agreement"] == "disagree"


def test_without_the_benchmark_data_the_site_still_pages_through_the_text(
    runs: dict[str, Path], viscot_mirror: Path, tmp_path: Path
) -> None:
    site = view_runs([runs["right"]], tmp_path / "site", data_dir=tmp_path / "nowhere", progress=False)
    manifest, items = _site(tmp_path / "site")
    assert site.items == LIMIT and all(item["image"] is None for item in items)
    assert "images unavailable" in manifest["subtitle"] and all("--data" in item["notes"][0] for item in items)
    assert len(site.notes) == 1 and "images unavailable" in site.notes[0]  # the command warns with it
    known = get_benchmark("viscot").load(viscot_mirror)[0].id  # in the run's order now: look it up
    assert next(item for item in items if item["id"] == known)["panels"][0]["status"] == "right"


def test_depth_estimated_for_samples_without_depth(
    runs: dict[str, Path], tiny_depth_model: Path, tmp_path: Path
) -> None:
    view_runs([runs["right"]], tmp_path / "site", depth_model=str(tiny_depth_model), depth_device="cpu", progress=False)
    _, items = _site(tmp_path / "site")
    assert all(item["depth"] and (tmp_path / "site" / item["depth"]).is_file() for item in items)


def test_boxes_read_in_the_padded_square_frame_are_drawn_in_the_image_frame(viscot_mirror: Path) -> None:
    per_axis = get_benchmark("viscot")
    padded = type(per_axis).from_options(None, {"box_frame": "padded-square"})
    sample = next(s for s in per_axis.load(viscot_mirror) if s.metadata["width"] != s.metadata["height"])
    width, height = sample.metadata["width"], sample.metadata["height"]
    chain = '<think><area>[{"bbox_2d":[0.000,0.000,1.000,1.000],"depth":0.5}]</area><text>x</text></think><answer>a</answer>'
    assert per_axis.focus_steps(sample, chain, width, height) == [[((0.0, 0.0, 1.0, 1.0), 0.5)]]
    ((box, _),) = padded.focus_steps(sample, chain, width, height)[0:1][0]
    # the whole padded square reaches past the image on the shorter axis
    assert box[0] < 0 or box[1] < 0


def test_vstar_truth_boxes_come_from_the_image_json(tmp_path: Path) -> None:
    mirror = build_mirror("vstar", tmp_path / "vstar")
    bench = get_benchmark("vstar")
    sample = bench.load(mirror)[0]
    meta = json.loads((mirror / sample.metadata["image"]).with_suffix(".json").read_text())
    x, y, w, h = meta["bbox"][0]
    from PIL import Image

    width, height = Image.open(mirror / sample.metadata["image"]).size
    assert bench.truth_boxes(sample, width, height) == [(x / width, y / height, (x + w) / width, (y + h) / height)]


def test_every_image_of_a_sample_is_shown(tmp_path: Path) -> None:
    """SAT's movement questions come with two frames: both are on the page."""
    from sifeval.runner import RUN, SAMPLES

    mirror = build_mirror("sat", tmp_path / "sat")
    bench = get_benchmark("sat")
    two = next(sample for sample in bench.load(mirror) if len(sample.images) == 2)
    run = tmp_path / "run"
    run.mkdir()
    (run / RUN).write_text(
        json.dumps(
            {"benchmark": "sat", "protocol": bench.protocol, "options": {}, "mode": "sif", "data_dir": str(mirror)}
        )
    )
    line = {"id": two.id, "sample": two.to_json(), "response": "(A)", "extracted": "A", "parse_ok": True, "score": 1.0}
    (run / SAMPLES).write_text(json.dumps(line) + "\n")
    view_runs([run], tmp_path / "site", progress=False)
    (item,) = _site(tmp_path / "site")[1]
    assert item["image"] and len(item["more_images"]) == 1
    assert (tmp_path / "site" / item["more_images"][0]["image"]).is_file() and item["more_images"][0]["size"]


def test_a_site_written_again_keeps_only_its_own_pictures(
    runs: dict[str, Path], demo_build: Path, tmp_path: Path
) -> None:
    first = view_build(demo_build, tmp_path / "site", limit=6, progress=False)
    second = view_runs([runs["right"]], tmp_path / "site", progress=False)
    assert second.pictures_removed > 0
    _, items = _site(tmp_path / "site")
    named = {Path(item["image"]).stem for item in items}
    assert {path.stem for path in (tmp_path / "site" / "images").glob("*.jpg")} == named
    assert first.items == 6 and second.items == LIMIT


def test_search_text_leaves_out_failure_boilerplate(runs: dict[str, Path], tmp_path: Path) -> None:
    view_runs([runs["right"]], tmp_path / "site", progress=False)
    manifest, _ = _site(tmp_path / "site")
    texts = [row["text"] for row in manifest["items"]]
    assert not any("scored as wrong" in text or "predicted_box" in text for text in texts)
    assert "onerror" in texts[1] and "purple" not in " ".join(texts)


# ----------------------------------------------------------------------------- commands


def test_view_commands(runs: dict[str, Path], demo_build: Path, tmp_path: Path) -> None:
    result = runner.invoke(sifeval_app, ["view", str(runs["right"]), "--out", str(tmp_path / "run-site")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "run-site" / "index.html").is_file() and "wrote 4 samples" in result.output
    bad = runner.invoke(sifeval_app, ["view", str(tmp_path), "--out", str(tmp_path / "x")])
    assert bad.exit_code == 1 and "not a run folder" in bad.output
    built = runner.invoke(sifdata_app, ["view", str(demo_build), "--out", str(tmp_path / "build-site"), "--limit", "5"])
    assert built.exit_code == 0, built.output
    assert len(read_data_file(tmp_path / "build-site" / "data" / "manifest.js")["items"]) == 5
    not_a_build = runner.invoke(sifdata_app, ["view", str(tmp_path), "--out", str(tmp_path / "y")])
    assert not_a_build.exit_code == 1 and "no shards" in not_a_build.output
    assert not (tmp_path / "y").exists()  # nothing written for a folder that is no build
    missing = runner.invoke(sifeval_app, ["view", str(tmp_path / "nope"), "--out", str(tmp_path / "z")])
    assert missing.exit_code == 1 and "does not exist" in missing.output
    (tmp_path / "a-file").write_text("x")
    on_file = runner.invoke(sifeval_app, ["view", str(runs["right"]), "--out", str(tmp_path / "a-file")])
    assert on_file.exit_code == 1 and "is a file" in on_file.output
    no_data = runner.invoke(
        sifeval_app, ["view", str(runs["right"]), "--out", str(tmp_path / "w"), "--data", str(tmp_path / "nowhere")]
    )
    assert no_data.exit_code == 0 and "warning" in no_data.output and "images unavailable" in no_data.output


def test_a_depth_model_that_cannot_load_stops_before_writing(runs: dict[str, Path], tmp_path: Path) -> None:
    result = runner.invoke(
        sifeval_app,
        ["view", str(runs["right"]), "--out", str(tmp_path / "site"), "--depth-model", str(tmp_path / "no-model")],
    )
    assert result.exit_code == 1 and "cannot be loaded" in " ".join(result.output.split())
    assert not (tmp_path / "site").exists()
