from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from conftest import VISCOT
from PIL import Image

from sifdata.sources import synthetic, tallyqa, viscot
from sifdata.sources.base import SourceError, SourceRecord, clean_pixel_box


def test_viscot_record_fields_from_sizes_file() -> None:
    records = list(viscot.read(VISCOT / "benchmark" / "gqa.json", sizes=VISCOT / "benchmark_det" / "gqa.jsonl"))
    first = records[0]
    assert first.question_id == 7
    assert first.question == "What are the tree branches in front of?"
    assert first.answer == "window"
    assert (first.width, first.height) == (391, 500)
    assert first.gt_boxes_pixel == [(217.0, 343.0, 242.0, 393.0)]
    assert first.gt_boxes == [pytest.approx((217 / 391, 343 / 500, 242 / 391, 393 / 500))]


def test_viscot_clips_rounding_overshoot() -> None:
    records = {
        r.source_id: r
        for r in viscot.read(VISCOT / "benchmark" / "gqa.json", sizes=VISCOT / "benchmark_det" / "gqa.jsonl")
    }
    overshoot = records["3684"]  # real record: y2 = 505 on a 500-pixel-high image
    assert overshoot.gt_boxes_pixel[0][3] == 500.0
    assert all(0 <= v <= 1 for v in overshoot.gt_boxes[0])


def test_viscot_takes_sizes_from_the_image_file(tmp_path: Path) -> None:
    rows = json.loads((VISCOT / "benchmark" / "vsr.json").read_text())[:2]
    (tmp_path / "q.json").write_text(json.dumps(rows))
    for row in rows:
        path = tmp_path / row["image"][0]
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (640, 480)).save(path)
    records = list(viscot.read(tmp_path / "q.json"))
    assert [(r.width, r.height) for r in records] == [(640, 480), (640, 480)]
    assert records[0].image_path == tmp_path / rows[0]["image"][0]


def _viscot_row(qid: int, box: list[int], marked: str | None = None) -> dict:
    return {
        "dataset": "gqa",
        "question_id": qid,
        "image": ["img.jpg", marked if marked is not None else f"img.jpg###{box}"],
        "conversations": [
            {
                "from": "human",
                "value": "<image>\nWhat? Please provide the bounding box coordinate of the region that "
                "can help you answer the question better.",
            },
            {"from": "gpt", "value": "[0.1, 0.1, 0.2, 0.2]"},
            {"from": "human", "value": "<image>"},
            {"from": "gpt", "value": "a cat"},
        ],
    }


def test_viscot_broken_records_are_rejected_with_reasons(tmp_path: Path) -> None:
    rows = [
        _viscot_row(1, [10, 10, 50, 50]),
        _viscot_row(2, [50, 10, 10, 50]),  # inverted
        _viscot_row(3, [900, 900, 1200, 1300]),  # far outside a 100x100 image
        _viscot_row(4, [10, 10, 10, 50]),  # empty
        _viscot_row(5, [10, 10, 50, 50], marked="img.jpg"),  # no box
        {"dataset": "gqa", "question_id": 6},  # missing fields
    ]
    (tmp_path / "q.json").write_text(json.dumps(rows))
    sizes = tmp_path / "det.jsonl"
    sizes.write_text(
        "".join(
            json.dumps({"img_path": "img.jpg", "bbox": [0, 0, 1, 1], "height": 100, "width": 100, "question_id": i})
            + "\n"
            for i in (1, 2, 3, 4, 5)
        )
    )
    rejects: list = []
    # The det file's box would override '###'; use a sizes table without boxes for this test.
    table = {
        viscot.detection_key("img.jpg", r["question_id"]): viscot.DetectionEntry(
            100,
            100,
            tuple(json.loads(r["image"][1].split("###")[1])) if "###" in r["image"][1] else (0, 0, 1, 1),
            "img.jpg",
        )
        for r in rows[:5]
    }
    records = list(viscot.read(tmp_path / "q.json", sizes=table, on_reject=rejects.append))
    assert [r.source_id for r in records] == ["1"]
    reasons = {r.key: r.reason for r in rejects}
    assert "inverted box" in reasons["gqa/2"]
    assert "lies outside" in reasons["gqa/3"]
    assert "empty box" in reasons["gqa/4"]
    assert "no '###" in reasons["gqa/5"]
    assert "KeyError" in reasons["gqa/6"]
    assert list(viscot.read(tmp_path / "q.json", sizes=sizes, on_reject=lambda r: None))  # file form works too


def test_clean_pixel_box_tolerance() -> None:
    assert clean_pixel_box((0, 0, 101.5, 50), 100, 100) == (0.0, 0.0, 100.0, 50.0)
    with pytest.raises(ValueError, match="outside"):
        clean_pixel_box((0, 0, 110, 50), 100, 100)


def test_tallyqa_reads_multi_box_counting_records(tmp_path: Path) -> None:
    Image.new("RGB", (200, 100)).save(tmp_path / "a.jpg")
    rows = [
        {
            "question": "How many dogs?",
            "bboxs": [[0, 0, 20, 20], [50, 50, 80, 90]],
            "answer": 2,
            "image": "a.jpg",
            "dataset": "tallyqa",
        },
        {
            "question": "How many cats?",
            "bboxs": [[0, 0, 20, 20]],
            "answer": 1,
            "image": "missing.jpg",
            "dataset": "tallyqa",
        },
    ]
    (tmp_path / "t.json").write_text(json.dumps(rows))
    rejects: list = []
    records = list(tallyqa.read(tmp_path / "t.json", on_reject=rejects.append))
    assert len(records) == 1 and records[0].answer == "2"
    assert records[0].gt_boxes == [(0.0, 0.0, 0.1, 0.2), (0.25, 0.5, 0.4, 0.9)]
    assert "image size unknown" in rejects[0].reason


def test_synthetic_scenes_are_deterministic_and_exact() -> None:
    first, again = synthetic.scene(5, seed=3), synthetic.scene(5, seed=3)
    assert (first.question, first.answer, first.gt_boxes) == (again.question, again.answer, again.gt_boxes)
    assert np.array_equal(first.depth, again.depth)
    assert (
        synthetic.scene(6, seed=3).question != first.question or synthetic.scene(6, seed=3).gt_boxes != first.gt_boxes
    )
    for index in range(40):
        record = synthetic.scene(index)
        assert record.depth.shape == (record.height, record.width)
        assert record.image.size == (record.width, record.height)
        for x1, y1, x2, y2 in record.gt_boxes_pixel:
            # A target's box is filled by its own colour at the centre (objects never overlap).
            centre = record.image.getpixel((int((x1 + x2) / 2), int(y1 + 0.6 * (y2 - y1))))
            assert centre in synthetic.COLOURS.values()


def test_synthetic_closer_answers_agree_with_depth() -> None:
    checked = 0
    for index in range(200):
        record = synthetic.scene(index)
        if not record.question.startswith("Which is closer"):
            continue
        names = [n for n in record.meta["objects"] if n in record.question]
        closer = record.answer.removeprefix("The ").rstrip(".")
        centres = [record.depth[int((b[1] + b[3]) / 2), int((b[0] + b[2]) / 2)] for b in record.gt_boxes_pixel]
        assert closer in names
        assert min(centres) < max(centres)
        checked += 1
    assert checked > 10


def test_photos_load_and_missing_images_raise_a_named_error(tmp_path: Path) -> None:
    photos = list(synthetic.read_photos())
    assert len(photos) == 11
    assert photos[0].load_image().size == (photos[0].width, photos[0].height)
    missing = SourceRecord("x", "1", "q?", "a", [(0, 0, 1, 1)], [(0, 0, 1, 1)], 1, 1, image_path=tmp_path / "nope.jpg")
    with pytest.raises(SourceError, match="x/1: image file not found"):
        missing.load_image()
    (tmp_path / "bad.jpg").write_bytes(b"not a jpeg")
    corrupt = SourceRecord("x", "2", "q?", "a", [(0, 0, 1, 1)], [(0, 0, 1, 1)], 1, 1, image_path=tmp_path / "bad.jpg")
    with pytest.raises(SourceError, match="x/2: image file unreadable"):
        corrupt.load_image()


def test_viscot_folder_of_subsets_with_a_folder_of_sizes() -> None:
    records = list(viscot.read(VISCOT / "benchmark", sizes=VISCOT / "benchmark_det"))
    assert Counter(r.source for r in records) == {"gqa": 978, "vsr": 404, "cub": 492}
    by_key = {r.key: r for r in records}
    assert len(by_key) == len(records)  # question ids repeat across subsets; keys do not
    assert by_key["gqa/7"].width == 391 and by_key["cub/7"].width == 500  # each from its own subset


def test_candidate_selection_filters_caps_and_samples_by_seed() -> None:
    from sifdata.builder.pipeline import BuildConfig, select_candidates

    def pick(**kwargs: object) -> list[str]:
        config = BuildConfig(
            source="viscot", source_path=VISCOT / "benchmark", sizes=VISCOT / "benchmark_det", **kwargs
        )
        return [r.key for r in select_candidates(config, lambda reject: None)]

    capped = pick(per_subset_cap=10)
    assert Counter(k.split("/")[0] for k in capped) == {"gqa": 10, "vsr": 10, "cub": 10}
    assert capped == pick(per_subset_cap=10)  # same seed, same sample
    assert capped != pick(per_subset_cap=10, seed=1)
    assert capped[:10] != [f"cub/{r}" for r in range(10)]  # sampled, not the first rows of the file
    assert {k.split("/")[0] for k in pick(subsets=["vsr"], n=5)} == {"vsr"}
    assert len(pick(n=25)) == 25
    assert pick(subsets=["textvqa"]) == []  # text-heavy subsets are dropped by default


def test_viscot_visual7w_sizes_are_found_under_their_other_folder_name(tmp_path: Path) -> None:
    """The question file names cot/v7w/..., the detection file cot/visual7w/... (the real files)."""
    question = {
        "dataset": "v7w",
        "question_id": 3,
        "image": ["cot/v7w/v7w_1.jpg", "cot/v7w/v7w_1.jpg###[10, 10, 40, 30]"],
        "conversations": [
            {"from": "human", "value": "<image>\nWhat is red? Please provide the bounding box coordinate of the region that can help you answer the question better."},
            {"from": "gpt", "value": "[0.1, 0.1, 0.4, 0.3]"},
            {"from": "human", "value": "<image>"},
            {"from": "gpt", "value": "the bus"},
        ],
    }  # fmt: skip
    (tmp_path / "visual7w.json").write_text(json.dumps([question]))
    detection = {"img_path": "cot/visual7w/v7w_1.jpg", "question_id": 3, "bbox": [10, 10, 40, 30], "width": 100,
                 "height": 80, "expression": "What is red?"}  # fmt: skip
    (tmp_path / "det.jsonl").write_text(json.dumps(detection) + "\n")
    rejects: list = []
    records = list(viscot.read(tmp_path / "visual7w.json", sizes=tmp_path / "det.jsonl", on_reject=rejects.append))
    assert not rejects and len(records) == 1 and (records[0].width, records[0].height) == (100, 80)
