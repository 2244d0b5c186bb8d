from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from chat_server import ScriptedChatServer
from conftest import kill_once_journaled
from huggingface_hub import DatasetCard
from PIL import Image

import sifdata
from sifdata.builder.pipeline import BuildAborted, BuildConfig, build, merge
from sifdata.builder.writer import OpenAIWriter
from sifdata.depth import DepthEstimator
from sifdata.journal import Journal, JournalError
from sifdata.llm import RetryPolicy
from sifdata.shards import iter_rows, read_manifest, shard_files
from sifdata.validate import validate_folder


def _rows(folder: Path) -> list[dict]:
    return [row for path in shard_files(folder) for row in iter_rows(path, columns=["id", "chain", "provenance"])]


def test_demo_build_validates_and_loads(demo_build: Path, tiny_depth_model: Path) -> None:
    report = validate_folder(demo_build)
    assert report.ok, report.errors[:5]
    assert report.records == 56 and report.shards == 2
    dataset = sifdata.load_dataset(demo_build)
    assert len(dataset) == 56
    records = [sifdata.SIFRecord.from_row(row) for row in dataset]
    assert Counter(r.source for r in records) == {"photos": 11, "synthetic": 45}
    photo = next(r for r in records if r.source == "photos")
    assert photo.provenance.depth_model == str(tiny_depth_model)
    assert photo.provenance.writer_kind == "offline-template"
    assert next(r for r in records if r.source == "synthetic").provenance.depth_model == "synthetic-exact"
    for record in records:
        chain = record.parsed_chain()
        assert chain.focus_steps[0].boxes == [(0.0, 0.0, 1.0, 1.0)]
        assert chain.last_boxes == [tuple(round(v, 3) for v in b) for b in record.gt_boxes]
    row = dataset[0]
    assert row["image"].size == (row["width"], row["height"])
    assert row["depth_image"].mode.startswith("I")
    manifest = read_manifest(demo_build)
    assert manifest["records"] == 56 and manifest["rejects"] == 0
    card = DatasetCard.load(demo_build / "README.md")  # the Hub's own reader
    assert card.data.configs == [
        {"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*.parquet"}]}
    ]
    assert card.data.size_categories == ["n<1K"] and "sifthinker" in card.data.tags
    assert "| records | 56 |" in card.text and "per-axis (56)" in card.text and "offline-template" in card.text
    for column in ("gt_boxes", "box_frame", "depth_image"):
        assert f"- `{column}`:" in card.text  # the columns, described from the record schema


def test_build_with_the_openai_writer_over_loopback(tmp_path: Path, tiny_depth_model: Path) -> None:
    out = tmp_path / "openai-build"
    config = BuildConfig(
        source="demo", n=50, writer="openai", concurrency=4, max_attempts=2, depth_model=str(tiny_depth_model)
    )
    with ScriptedChatServer() as server:
        server.script("mug on the desk", ["garbage", "garbage"])  # rejected after 2 attempts
        server.script("sticky notes", ["429", "garbage", "ok"])  # retried, fixed on the second attempt
        writer = OpenAIWriter(
            model="scripted-writer",
            base_url=server.base_url,
            api_key="sk-secret-key",
            retry=RetryPolicy(base_delay=0.01),
            cache_dir=out / "work" / "writer-cache",
        )
        report = build(config, out, writer=writer, estimator=DepthEstimator(str(tiny_depth_model)), progress=False)
    assert report.dataset_complete and report.records == 49 and report.rejects == 1
    rejects = [
        json.loads(line) for path in out.glob("work/shard-*/rejects.jsonl") for line in path.read_text().splitlines()
    ]
    assert [r["id"] for r in rejects] == ["photos/blackmug-mug"]
    assert rejects[0]["stage"] == "writer" and "after 2 attempts: grammar" in rejects[0]["reason"]
    assert validate_folder(out).ok
    rows = _rows(out)
    assert {row["provenance"]["writer_kind"] for row in rows} == {"openai-compatible"}
    assert {row["provenance"]["writer_model"] for row in rows} == {"scripted-writer"}
    assert read_manifest(out)["rejects"] == 1
    for path in out.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".jsonl", ".md", ".txt"):
            assert "sk-secret-key" not in path.read_text(errors="ignore"), path


def test_fatal_writer_error_stops_the_build_and_a_rerun_resumes(tmp_path: Path) -> None:
    out = tmp_path / "aborted"
    config = BuildConfig(source="synthetic", n=12, writer="openai", concurrency=2)
    with ScriptedChatServer() as server:
        server.script("Question", ["ok"] * 5 + ["401"] * 50)
        writer = OpenAIWriter(model="m", base_url=server.base_url, retry=RetryPolicy(base_delay=0.01))
        with pytest.raises(BuildAborted, match="HTTP 401"):
            build(config, out, writer=writer, progress=False)
    journaled = (out / "work" / "shard-00000-of-00001" / "records.jsonl").read_text().splitlines()
    assert 1 <= len(journaled) <= 5 and not shard_files(out)
    with ScriptedChatServer() as server:
        writer = OpenAIWriter(model="m", base_url=server.base_url, retry=RetryPolicy(base_delay=0.01))
        report = build(config, out, writer=writer, progress=False)
        assert len(server.requests) == 12 - len(journaled)  # finished records were not redone
    assert report.dataset_complete and report.records == 12
    assert sorted(r["id"] for r in _rows(out)) == sorted(f"synthetic/0-{i:06d}" for i in range(12))


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "sifdata.cli", *args]


def test_killed_build_resumes_without_losing_or_duplicating(tmp_path: Path) -> None:
    """The writer (a scripted server) holds every request after its 40th until the child has
    been killed: the build cannot finish first, however fast the machine (a state, not a time)."""
    import threading

    answered = {"count": 0}
    killed_yet = threading.Event()
    lock = threading.Lock()

    def latency(request: dict) -> float:
        with lock:
            answered["count"] += 1
            beyond = answered["count"] > 40
        if beyond:
            killed_yet.wait(120)
        return 0.0

    killed, clean = tmp_path / "killed", tmp_path / "clean"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "SIF_WRITER_API_KEY": "k"}
    journal = killed / "work" / "shard-00000-of-00002" / "records.jsonl"
    with ScriptedChatServer(latency=latency) as server:
        args = ["build", "--source", "synthetic", "--n", "120", "--num-shards", "2", "--no-progress"]
        args += ["--writer", "openai", "--writer-model", "m", "--writer-base-url", server.base_url]
        process = subprocess.Popen(
            _cli(*args, "--out", str(killed)), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        kill_once_journaled(process, journal, 10)
        killed_yet.set()
        assert not shard_files(killed) or len(shard_files(killed)) < 2
        resumed = subprocess.run(_cli(*args, "--out", str(killed)), env=env, capture_output=True, text=True)
        assert resumed.returncode == 0, resumed.stderr
        subprocess.run(_cli(*args, "--out", str(clean)), env=env, check=True, capture_output=True)
    killed_rows, clean_rows = _rows(killed), _rows(clean)
    assert len(killed_rows) == 120 and len({r["id"] for r in killed_rows}) == 120
    assert [(r["id"], r["chain"]) for r in killed_rows] == [(r["id"], r["chain"]) for r in clean_rows]
    assert not list((killed / "data").glob(".*tmp"))
    assert validate_folder(killed).ok


def test_shard_jobs_merge_into_the_same_dataset(tmp_path: Path) -> None:
    config = BuildConfig(source="synthetic", n=30, num_shards=3)
    whole = build(config, tmp_path / "whole", progress=False)
    assert whole.dataset_complete
    parts = []
    for index in range(3):
        report = build(config, tmp_path / f"part{index}", shard=index, progress=False)
        assert not report.dataset_complete and report.shards[0].complete
        parts.append(tmp_path / f"part{index}")
    with pytest.raises(ValueError, match="missing 1 of 3 shards"):
        merge(parts[:2], tmp_path / "merged")
    manifest = merge(parts, tmp_path / "merged")
    assert manifest["records"] == 30
    assert _rows(tmp_path / "merged") == _rows(tmp_path / "whole")
    assert validate_folder(tmp_path / "merged").ok


def test_a_shard_job_opens_only_its_own_share_of_images(
    tmp_path: Path, tiny_depth_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Selection works on the source index; a --shard i/n job reads only its share's image files."""
    images = tmp_path / "images"
    images.mkdir()
    rows = []
    for index in range(24):
        Image.new("RGB", (60 + index, 48), (index * 10, 80, 120)).save(images / f"{index}.png")
        rows.append(
            {
                "question": "How many?",
                "bboxs": [[5, 5, 30, 30]],
                "answer": 1,
                "image": f"{index}.png",
                "question_id": index,
            }
        )
    (images / "tally.json").write_text(json.dumps(rows))
    opened: list[str] = []
    real_open = Image.open

    def counting_open(fp, *args, **kwargs):  # type: ignore[no-untyped-def]
        if str(fp).endswith(".png") and str(images) in str(fp):
            opened.append(Path(str(fp)).name)
        return real_open(fp, *args, **kwargs)

    monkeypatch.setattr(Image, "open", counting_open)
    config = BuildConfig(
        source="tallyqa",
        source_path=images / "tally.json",
        num_shards=4,
        depth_model=str(tiny_depth_model),
        depth_device="cpu",
    )
    from sifdata.builder.pipeline import select_candidates, shard_share

    share = shard_share(select_candidates(config, lambda reject: None), 1, 4)
    assert opened == []  # choosing the share read no image
    report = build(config, tmp_path / "out", shard=1, progress=False)
    assert report.shards[0].complete and report.records == 6
    assert (
        set(opened)
        == {f"{index}.png" for index in (1, 5, 9, 13, 17, 21)}
        == {f"{c.key.split('/')[1]}.png" for _, c in share}
    )


def test_resuming_with_other_settings_is_refused(tmp_path: Path) -> None:
    build(BuildConfig(source="synthetic", n=3), tmp_path, progress=False)
    with pytest.raises(ValueError, match=r"seed: 0 there, 1 now.*--restart"):
        build(BuildConfig(source="synthetic", n=3, seed=1), tmp_path, progress=False)
    again = build(BuildConfig(source="synthetic", n=3), tmp_path, progress=False)  # idempotent
    assert again.records == 3 and len(_rows(tmp_path)) == 3


def test_broken_source_records_are_rejected_with_reasons(tmp_path: Path, tiny_depth_model: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (120, 90), "white").save(images / "ok.jpg")
    (images / "corrupt.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    rows = [
        {
            "question": "How many cups?",
            "bboxs": [[10, 10, 40, 40]],
            "answer": 1,
            "image": "ok.jpg",
            "question_id": "ok",
        },
        {
            "question": "How many cups?",
            "bboxs": [[10, 10, 40, 40]],
            "answer": 1,
            "image": "corrupt.jpg",
            "question_id": "corrupt",
            "width": 120,
            "height": 90,
        },
        {
            "question": "How many cups?",
            "bboxs": [[10, 10, 40, 40]],
            "answer": 1,
            "image": "gone.jpg",
            "question_id": "gone",
            "width": 120,
            "height": 90,
        },
        {
            "question": "How many cups?",
            "bboxs": [[500, 500, 900, 900]],
            "answer": 1,
            "image": "ok.jpg",
            "question_id": "far",
        },
    ]
    (images / "tally.json").write_text(json.dumps(rows))
    config = BuildConfig(source="tallyqa", source_path=images / "tally.json", depth_model=str(tiny_depth_model))
    report = build(config, tmp_path / "out", progress=False)
    assert report.records == 1 and report.dataset_complete
    rejects = {
        json.loads(line)["id"]: json.loads(line)
        for line in (tmp_path / "out/work/shard-00000-of-00001/rejects.jsonl").read_text().splitlines()
    }
    # Broken rows are found by the shard that resolves them, and rejected there with the reason.
    assert rejects["tallyqa/corrupt"]["stage"] == "source" and "unreadable" in rejects["tallyqa/corrupt"]["reason"]
    assert rejects["tallyqa/far"]["stage"] == "source" and "outside" in rejects["tallyqa/far"]["reason"]
    assert rejects["tallyqa/gone"]["stage"] == "image" and "not found" in rejects["tallyqa/gone"]["reason"]
    assert read_manifest(tmp_path / "out")["rejects"] == 3


def test_journal_cuts_a_partial_last_line_and_refuses_corruption(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    path.write_text('{"a": 1}\n{"a": 2}\n{"a": 3')  # killed mid-write
    with Journal(path) as journal:
        assert journal.entries == [{"a": 1}, {"a": 2}]
        journal.append({"a": 4})
    assert path.read_text() == '{"a": 1}\n{"a": 2}\n{"a": 4}\n'
    path.write_text('{"a": 1}\nnot json\n{"a": 3}\n')
    with pytest.raises(JournalError, match=r"j\.jsonl:2"):
        Journal(path)
