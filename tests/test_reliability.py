"""Reliability and security, one test per finding: no silent loss, nothing read outside its
root, failures sorted into per-record, systematic and transient, exit codes that tell the truth."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from chat_server import ScriptedChatServer
from conftest import VISCOT
from PIL import Image
from typer.testing import CliRunner

from sifdata.builder.pipeline import BuildAborted, BuildConfig, build
from sifdata.builder.writer import OpenAIWriter
from sifdata.cli import app as sifdata_app
from sifdata.llm import RetryPolicy
from sifdata.shards import iter_rows, shard_files
from sifdata.sources import tallyqa, viscot
from sifdata.sources.synthetic import photos_dir
from sifdata.validate import validate_folder
from sifeval import get_benchmark
from sifeval.cli import app as sifeval_app
from sifeval.mirrors import build_mirror

runner = CliRunner()


def _flat(output: str) -> str:
    return " ".join(output.split())


# ----------------------------------------------------------------------------- silent data loss


def test_images_are_stored_as_bytes_whatever_the_current_folder_holds(
    tmp_path: Path, tiny_depth_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """datasets keeps only the path of an Image cell when that path names a file in the current
    folder: a build run from a folder holding files named like its images lost every image."""
    decoys = tmp_path / "cwd"
    decoys.mkdir()
    for photo in photos_dir().iterdir():
        (decoys / photo.name).write_bytes(b"")  # same names, no image
    monkeypatch.chdir(decoys)
    config = BuildConfig(source="photos", depth_model=str(tiny_depth_model), depth_device="cpu")
    assert build(config, tmp_path / "out", progress=False).dataset_complete
    rows = [row for path in shard_files(tmp_path / "out") for row in iter_rows(path)]
    assert rows and all(row["image"]["bytes"] and row["depth_image"]["bytes"] for row in rows)
    assert validate_folder(tmp_path / "out").ok
    (decoys / "0.png").write_bytes(b"")
    mirror = build_mirror("cvbench", tmp_path / "cvbench")
    samples = get_benchmark("cvbench").load(mirror)
    assert all(sample.images[0].data for sample in samples)  # sifeval mirror: bytes too


# ----------------------------------------------------------------------------- reading outside the root


def test_paths_in_source_files_never_leave_their_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    Image.new("RGB", (40, 30), "white").save(root / "ok.jpg")
    outside = tmp_path / "secret.jpg"
    Image.new("RGB", (40, 30), "black").save(outside)
    (root / "link.jpg").symlink_to(outside)
    rows = [
        {"question": "How many?", "bboxs": [[1, 1, 9, 9]], "answer": 1, "image": image, "question_id": name}
        for name, image in (("ok", "ok.jpg"), ("abs", str(outside)), ("up", "../secret.jpg"), ("link", "link.jpg"))
    ]
    (root / "tally.json").write_text(json.dumps(rows))
    rejects: list = []
    kept = list(tallyqa.read(root / "tally.json", on_reject=rejects.append))
    assert [r.source_id for r in kept] == ["ok"]
    reasons = {r.key: r.reason for r in rejects}
    assert "not relative" in reasons["tallyqa/abs"] and "leaves" in reasons["tallyqa/up"]
    assert "link out of" in reasons["tallyqa/link"]


def test_benchmark_folders_never_open_a_file_outside_them(tmp_path: Path) -> None:
    root = tmp_path / "viscot"
    shutil.copytree(VISCOT, root)
    rows = json.loads((root / "benchmark" / "gqa.json").read_text())
    rows[0]["image"][0] = "../../../../etc/hostname"
    rows[1]["image"][0] = "/etc/hostname"
    (root / "benchmark" / "gqa.json").write_text(json.dumps(rows))
    samples = {s.id: s for s in get_benchmark("viscot").load(root)}
    for sample_id in ("gqa/7", "gqa/8"):
        with pytest.raises(ValueError, match="image refused"):
            samples[sample_id].images[0].load()  # that sample's error, never a read outside
    vstar = build_mirror("vstar", tmp_path / "vstar")
    lines = (vstar / "test_questions.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    first["image"] = "../secret.jpg"
    (vstar / "test_questions.jsonl").write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n")
    assert get_benchmark("vstar").load(vstar)[0].images[0].refused


# ----------------------------------------------------------------------------- failures, sorted


def _tally_source(folder: Path, count: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for index in range(count):
        Image.new("RGB", (48 + index, 40), (index * 20 % 255, 90, 120)).save(folder / f"{index}.png")
        rows.append(
            {
                "question": f"How many {index}?",
                "bboxs": [[4, 4, 30, 30]],
                "answer": 1,
                "image": f"{index}.png",
                "question_id": index,
            }
        )
    (folder / "tally.json").write_text(json.dumps(rows))
    return folder / "tally.json"


def _writer(server: ScriptedChatServer) -> OpenAIWriter:
    return OpenAIWriter("scripted", server.base_url, "k", retry=RetryPolicy(2, base_delay=0.01))


def test_an_outage_leaves_records_pending_and_a_rerun_completes_them(tmp_path: Path, tiny_depth_model: Path) -> None:
    source = _tally_source(tmp_path / "src", 6)
    config = BuildConfig(
        source="tallyqa", source_path=source, depth_model=str(tiny_depth_model), depth_device="cpu", concurrency=1
    )
    with ScriptedChatServer() as server:
        server.script("How many 1?", ["500", "500"])  # down through every retry for two records
        server.script("How many 4?", ["500", "500"])
        report = build(config, tmp_path / "out", writer=_writer(server), progress=False)
        assert report.pending == 2 and report.rejects == 0 and report.records == 4 and not report.dataset_complete
        again = build(config, tmp_path / "out", writer=_writer(server), progress=False)  # the endpoint is back
    assert again.pending == 0 and again.records == 6 and again.dataset_complete and again.rejects == 0


def test_a_systematic_failure_stops_the_build_early(tmp_path: Path, tiny_depth_model: Path) -> None:
    source = _tally_source(tmp_path / "src", 20)
    config = BuildConfig(
        source="tallyqa", source_path=source, depth_model=str(tiny_depth_model), depth_device="cpu", concurrency=1
    )
    with ScriptedChatServer(default="400") as server:
        with pytest.raises(BuildAborted, match="the same way 8 times in a row: HTTP 400"):
            build(config, tmp_path / "out", writer=_writer(server), progress=False)
        assert len(server.requests) < 20  # not every record was tried and failed


def test_an_unavailable_depth_model_stops_the_build_before_any_work(tmp_path: Path) -> None:
    config = BuildConfig(source="photos", depth_model="nobody/no-such-depth-model")
    with pytest.raises(BuildAborted, match=r"depth model 'nobody/no-such-depth-model' cannot be loaded.*--depth-model"):
        build(config, tmp_path / "out", progress=False)
    assert not list((tmp_path / "out").rglob("records.jsonl"))


def test_a_garbage_200_reply_is_that_requests_typed_error(tmp_path: Path) -> None:
    mirror = build_mirror("cvbench", tmp_path / "cvbench")
    sample = get_benchmark("cvbench").load(mirror)[0]
    with ScriptedChatServer() as server:
        server.script(sample.question.split("\n")[0], ["garbage200"] * 10)
        result = runner.invoke(
            sifeval_app,
            [
                "run",
                "--no-progress",
                "--bench",
                "cvbench",
                "--model",
                f"openai:m@{server.base_url}?retries=1",
                "--data",
                str(mirror),
                "--mode",
                "plain",
                "--out",
                str(tmp_path / "run"),
                "--no-cache",
            ],
        )
    assert result.exit_code == 1 and "samples have no response" in _flat(result.output)  # not everything was done
    lines = [json.loads(line) for line in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    failed = [line for line in lines if line["request_error"]]
    assert len(lines) == 16 and len(failed) >= 1
    assert all("not a chat completion" in line["request_error"]["message"] for line in failed)


def test_a_refused_key_stops_the_run_at_once_and_keeps_what_was_scored(tmp_path: Path) -> None:
    mirror = build_mirror("cvbench", tmp_path / "cvbench")
    with ScriptedChatServer(default="401") as server:
        result = runner.invoke(
            sifeval_app,
            [
                "run",
                "--no-progress",
                "--bench",
                "cvbench",
                "--model",
                f"openai:m@{server.base_url}?concurrency=1",
                "--data",
                str(mirror),
                "--mode",
                "plain",
                "--out",
                str(tmp_path / "run"),
                "--no-cache",
            ],
        )
        asked = len(server.requests)
    assert result.exit_code == 1 and "run stopped" in _flat(result.output) and "HTTP 401" in _flat(result.output)
    assert asked < 16  # it did not keep sending after the 401
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert any("stopped early" in note for note in results["notes"]) and not results["complete"]


def test_a_missing_image_is_that_samples_error_and_the_rest_are_scored(tmp_path: Path) -> None:
    mirror = build_mirror("vstar", tmp_path / "vstar")
    first = json.loads((mirror / "test_questions.jsonl").read_text().splitlines()[0])
    (mirror / first["image"]).unlink()
    with ScriptedChatServer() as server:
        result = runner.invoke(
            sifeval_app,
            [
                "run",
                "--no-progress",
                "--bench",
                "vstar",
                "--model",
                f"openai:m@{server.base_url}",
                "--data",
                str(mirror),
                "--mode",
                "plain",
                "--out",
                str(tmp_path / "run"),
            ],
        )
    assert result.exit_code == 1
    lines = {
        json.loads(line)["id"]: json.loads(line)
        for line in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()
    }
    assert len(lines) == 12 and lines[str(first["question_id"])]["request_error"]["kind"] == "input"
    assert sum(line["request_error"] is None for line in lines.values()) == 11


def test_a_resumed_run_compacts_its_journal(tmp_path: Path) -> None:
    mirror = build_mirror("cvbench", tmp_path / "cvbench")
    sample = get_benchmark("cvbench").load(mirror)[0]
    args = [
        "run",
        "--no-progress",
        "--bench",
        "cvbench",
        "--data",
        str(mirror),
        "--mode",
        "plain",
        "--out",
        str(tmp_path / "run"),
        "--no-cache",
    ]
    with ScriptedChatServer() as server:
        server.script(sample.question.split("\n")[0], ["400"])
        model = ["--model", f"openai:m@{server.base_url}"]
        assert runner.invoke(sifeval_app, [*args, *model]).exit_code == 1
        assert runner.invoke(sifeval_app, [*args, *model, "--resume"]).exit_code == 0
    lines = [json.loads(line) for line in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    assert len(lines) == 16 and all(line["request_error"] is None for line in lines)


# ----------------------------------------------------------------------------- messages and exit codes


def test_malformed_source_files_name_the_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('[{"dataset": "gqa",\n "question_id": 1,,\n}]')
    with pytest.raises(ValueError, match=r"bad\.json: line 2, column 19: not valid JSON"):
        list(viscot.read(bad))
    lines = tmp_path / "vstar"
    shutil.copytree(build_mirror("vstar", tmp_path / "v"), lines)
    with (lines / "test_questions.jsonl").open("a") as handle:
        handle.write("{not json\n")
    with pytest.raises(ValueError, match=r"test_questions\.jsonl: line 13: not valid JSON"):
        get_benchmark("vstar").load(lines)


def test_a_model_that_is_not_cached_says_which_and_what_to_pass(tmp_path: Path) -> None:
    mirror = build_mirror("cvbench", tmp_path / "cvbench")
    result = runner.invoke(
        sifeval_app,
        [
            "run",
            "--no-progress",
            "--bench",
            "cvbench",
            "--model",
            "hf:nobody/no-such-vlm",
            "--data",
            str(mirror),
            "--mode",
            "plain",
            "--out",
            str(tmp_path / "run"),
        ],
    )
    assert result.exit_code == 1 and "model 'nobody/no-such-vlm' cannot be loaded" in _flat(result.output)
    depth = runner.invoke(
        sifeval_app,
        [
            "run",
            "--no-progress",
            "--bench",
            "cvbench",
            "--model",
            "hf:nobody/no-such-vlm",
            "--data",
            str(mirror),
            "--depth-model",
            "nobody/no-depth",
            "--out",
            str(tmp_path / "run2"),
        ],
    )
    assert depth.exit_code == 1 and "depth model 'nobody/no-depth' cannot be loaded" in _flat(depth.output)
    assert not (tmp_path / "run2" / "samples.jsonl").exists()  # before any work


def test_exit_codes_tell_the_truth(tmp_path: Path, tiny_depth_model: Path) -> None:
    # build: nothing built is a failure
    source = _tally_source(tmp_path / "src", 2)
    rows = json.loads(source.read_text())
    for row in rows:
        row["bboxs"] = [[500, 500, 900, 900]]  # outside every image: every record rejected
    source.write_text(json.dumps(rows))
    built = runner.invoke(
        sifdata_app,
        [
            "build",
            "--out",
            str(tmp_path / "b"),
            "--source",
            "tallyqa",
            "--source-path",
            str(source),
            "--depth-model",
            str(tiny_depth_model),
            "--depth-device",
            "cpu",
            "--no-progress",
        ],
    )
    assert built.exit_code == 1 and "produced no record" in _flat(built.output)
    # push --dry-run: a folder that does not validate is not "would upload"
    good = tmp_path / "good"
    build(BuildConfig(source="synthetic", n=2), good, progress=False)
    (good / "manifest.json").unlink()
    dry = runner.invoke(sifdata_app, ["push", str(good), "--repo", "me/x", "--dry-run"])
    assert dry.exit_code == 1 and "does not validate" in _flat(dry.output) and "would upload" not in dry.output
    # report: a format it cannot write is refused, not Markdown in a .pdf
    runs = tmp_path / "runs"
    mirror = build_mirror("cvbench", tmp_path / "cv")
    with ScriptedChatServer() as server:
        ran = runner.invoke(
            sifeval_app,
            [
                "run",
                "--no-progress",
                "--bench",
                "cvbench",
                "--model",
                f"openai:m@{server.base_url}",
                "--data",
                str(mirror),
                "--mode",
                "plain",
                "--out",
                str(runs),
            ],
        )
    assert ran.exit_code == 0, ran.output
    pdf = runner.invoke(sifeval_app, ["report", str(runs), "--format", "pdf", "--out", str(tmp_path / "r.pdf")])
    assert pdf.exit_code == 1 and not (tmp_path / "r.pdf").exists()
    mismatch = runner.invoke(sifeval_app, ["report", str(runs), "--format", "md", "--out", str(tmp_path / "r.pdf")])
    assert mismatch.exit_code == 1


def test_an_unreadable_image_in_an_import_is_that_records_reject(tmp_path: Path) -> None:
    from published_sif50k import write_release

    rows = json.loads((VISCOT / "benchmark" / "gqa.json").read_text())[:3]
    sizes = {
        e.img_path: (e.width, e.height) for e in viscot.read_detection(VISCOT / "benchmark_det" / "gqa.jsonl").values()
    }
    release = write_release(tmp_path / "rel", rows, sizes)
    (tmp_path / "rel" / "images" / "gqa" / "2414389.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    result = runner.invoke(sifdata_app, ["import", str(release), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "imported 2 records" in _flat(result.output) and "1 rejected" in _flat(result.output)
    (line,) = (tmp_path / "out" / "work" / "source_rejects.jsonl").read_text().splitlines()
    assert json.loads(line)["id"] == "sif50k/000001" and "unreadable" in json.loads(line)["reason"]
