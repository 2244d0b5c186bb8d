"""What each benchmark's loader hands to scoring, read again here from the raw files of its
mirror (in the upstream layout) without the adapter: ids, targets, choices, categories, the
metadata the official aggregates group by, the prompts of each mode, the images (issue 23)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from sifdata.files import DataFileError
from sifeval import get_benchmark
from sifeval.cvbench import sample_from_row
from sifeval.mirrors import build_mirror
from sifeval.types import Sample, ScoredSample

LETTER_INSTRUCTION = "Answer with the option's letter from the given choices directly."


@pytest.fixture(scope="module")
def cvbench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_mirror("cvbench", tmp_path_factory.mktemp("cvbench"))


def test_cvbench_samples_are_the_rows_of_both_halves(cvbench: Path) -> None:
    rows = [row for name in ("test_2d", "test_3d") for row in pq.read_table(cvbench / f"{name}.parquet").to_pylist()]
    samples = get_benchmark("cvbench").load(cvbench)
    assert len(samples) == len(rows) == 16
    for sample, row in zip(samples, rows, strict=True):
        options = "\n".join(f"({letter}) {choice}" for letter, choice in zip("ABCDEF", row["choices"], strict=False))
        assert sample.id == str(row["idx"])
        assert sample.target == row["answer"][1]  # "(B)" -> "B"
        assert sample.choices == tuple(row["choices"]) and sample.category == row["task"]
        assert sample.question == f"{row['prompt']}\n{LETTER_INSTRUCTION}"  # the official prompt, then the instruction
        assert sample.sif_question == f"{row['question']}\n{options}"
        assert sample.metadata == {
            "type": row["type"],
            "source": row["source"],
            "task": row["task"],
            "question_core": row["question"],
        }
        assert [image.data for image in sample.images] == [row["image"]["bytes"]]


def test_cvbench_without_its_files_says_what_the_layout_is(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not CV-Bench")
    with pytest.raises(FileNotFoundError) as raised:
        get_benchmark("cvbench").load(tmp_path)
    assert str(raised.value) == (
        f"{tmp_path} has no test*.parquet: CV-Bench's layout is test_2d.parquet and test_3d.parquet with idx, "
        "type, task, image, question, choices, answer, prompt, source"
    )


def test_cvbench_in_one_table_without_the_halves_configs(cvbench: Path, tmp_path: Path) -> None:
    """An older copy: one ``test.parquet``, no card naming the 2D and 3D configs."""
    table = pq.read_table(cvbench / "test_2d.parquet")
    pq.write_table(table, tmp_path / "test.parquet")
    samples = get_benchmark("cvbench").load(tmp_path)
    assert [sample.id for sample in samples] == [str(idx) for idx in table.column("idx").to_pylist()]
    assert {sample.metadata["source"] for sample in samples} == {"ADE20K", "COCO"}


def test_a_cvbench_row_without_its_image_has_none() -> None:
    """lmms-eval's documents arrive without images (it sends them itself)."""
    row = {
        "idx": 3,
        "type": "2D",
        "task": "Count",
        "question": "How many cups?",
        "choices": ["1", "2"],
        "answer": "(B)",
        "prompt": "How many cups? (A) 1 (B) 2",
        "source": "COCO",
        "image": None,
    }
    assert sample_from_row(row).images == ()


def _scored(source: str, score: float, task: str = "Count") -> ScoredSample:
    sample = Sample(f"{source}-{score}-{task}", "q", "A", task, metadata={"source": source, "task": task, "type": "2D"})
    return ScoredSample(sample, "A", "A", True, score)


def test_cvbench_without_its_3d_half_has_no_score_but_its_2d_figures() -> None:
    bench = get_benchmark("cvbench")
    scored = [_scored("ADE20K", 1.0), _scored("ADE20K", 0.0, "Relation"), _scored("COCO", 1.0)]
    metrics = bench.aggregate(scored)
    assert metrics["acc_2D"] == 75.0 and math.isnan(metrics["acc_3D"]) and math.isnan(metrics["score"])
    assert math.isnan(metrics["source/Omni3D"]) and metrics["task/Count"] == 100.0 and metrics["task/Relation"] == 0.0
    terms = bench.figure_terms(scored)
    assert terms["acc_3D"] == [] and terms["source/Omni3D"] == [] and terms["score"] == []
    assert sorted(terms) == sorted(
        [
            "score",
            "acc_2D",
            "acc_3D",
            "micro_accuracy",
            "source/ADE20K",
            "source/COCO",
            "source/Omni3D",
            "task/Count",
            "task/Relation",
        ]
    )
    assert [value for term in terms["task/Relation"] for value in term.values] == [0.0]
    assert [value for term in terms["source/COCO"] for value in term.values] == [100.0]
    assert sorted(value for term in terms["micro_accuracy"] for value in term.values) == [0.0, 100.0, 100.0]


@pytest.mark.parametrize("name", ["cvbench"])
def test_results_json_names_each_figure_with_its_interval(name: str) -> None:
    """Every figure of the aggregate has terms under the same name (an interval for each)."""
    bench = get_benchmark(name)
    scored = [
        _scored("ADE20K", 1.0),
        _scored("COCO", 0.0),
        _scored("Omni3D", 1.0, "Depth"),
        _scored("Omni3D", 0.0, "Depth"),
    ]
    assert set(bench.figure_terms(scored)) == set(bench.aggregate(scored))
    json.dumps(list(bench.figure_terms(scored)))


# ----------------------------------------------------------------------------- V*


@pytest.fixture(scope="module")
def vstar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_mirror("vstar", tmp_path_factory.mktemp("vstar"))


def test_vstar_samples_are_the_lines_of_test_questions(vstar: Path) -> None:
    rows = [json.loads(line) for line in (vstar / "test_questions.jsonl").read_text().splitlines()]
    samples = get_benchmark("vstar").load(vstar)
    assert len(samples) == len(rows) == 12
    for sample, row in zip(samples, rows, strict=True):
        lines = row["text"].split("\n")  # the question, one line per option, the letter instruction
        options = [line[4:] for line in lines[1:-1]]  # "(A) red" -> "red"
        assert lines[-1] == LETTER_INSTRUCTION and all(line[0] == "(" and line[2] == ")" for line in lines[1:-1])
        assert (sample.id, sample.question, sample.target) == (str(row["question_id"]), row["text"], row["label"])
        assert sample.category == row["category"] and sample.choices == tuple(options)
        assert sample.sif_question == "\n".join(lines[:-1])  # the letter instruction left to the SIF prompt
        assert sample.metadata == {"question_core": lines[0], "image": row["image"]}
        assert [image.path for image in sample.images] == [str(vstar / row["image"])]


def test_a_vstar_question_over_several_lines_and_loose_spacing() -> None:
    from sifeval.vstar import sample_from_question

    row = {
        "text": "Look at the bag.\nWhat colour is it?\n (A)  blue \n(B) red\n" + LETTER_INSTRUCTION,
        "label": "(b)",
        "category": "direct_attributes",
        "question_id": 7,
    }
    sample = sample_from_question(row, ())
    assert sample.choices == ("blue", "red") and sample.target == "B"
    assert sample.metadata == {"question_core": "Look at the bag. What colour is it?"}
    assert sample.sif_question == "Look at the bag. What colour is it?\n(A) blue\n(B) red"


def test_vstar_truth_boxes_are_the_json_beside_the_image(vstar: Path) -> None:
    bench = get_benchmark("vstar")
    sample = bench.load(vstar)[0]
    meta = json.loads((vstar / sample.metadata["image"]).with_suffix(".json").read_text())
    (x, y, w, h) = meta["bbox"][0]
    width, height = 400, 200  # any size: the boxes are divided by it
    assert bench.truth_boxes(sample, width, height) == [
        pytest.approx((x / width, y / height, min(1.0, (x + w) / width), min(1.0, (y + h) / height)))
    ]
    assert bench.truth_boxes(Sample("s", "q", "A", "c"), width, height) == []  # no image: no box


def test_a_malformed_vstar_line_is_named(tmp_path: Path) -> None:
    lines = [{"image": "a.jpg", "text": "Q?\n(A) x\n(B) y", "category": "c", "question_id": 0, "label": "A"}]
    lines.append({"image": "b.jpg", "text": "Q?\n(A) x\n(B) y", "category": "c", "question_id": 1})
    (tmp_path / "test_questions.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    with pytest.raises(DataFileError) as raised:
        get_benchmark("vstar").load(tmp_path)
    assert str(raised.value) == f"{tmp_path / 'test_questions.jsonl'}: line 2: missing or malformed 'label'"


def test_vstar_likelihood_asks_the_question_alone_and_takes_the_first_lowest_loss() -> None:
    from sifmodel.backends import GenerationSettings

    bench = get_benchmark("vstar", "likelihood")
    sample = Sample(
        "9",
        "Q?\n(A) red\n(B) blue\n" + LETTER_INSTRUCTION,
        "B",
        "c",
        choices=("red", "blue"),
        metadata={"question_core": "What colour?"},
    )
    request, options = bench.likelihood_request(sample, GenerationSettings())
    assert (request.id, request.question, request.mode, options) == ("9", "What colour?", "plain", ["red", "blue"])
    tie = bench.score_losses(sample, [0.5, 0.25, 0.25])
    assert (tie.extracted, tie.score) == ("B", 1.0)  # the first of two equal lowest, as argmin
    assert json.loads(tie.response or "") == {"option_losses": [0.5, 0.25, 0.25]}
    again = bench.score(sample, tie.response or "")  # a re-score reads the losses back
    assert (again.extracted, again.score) == ("B", 1.0)
    assert bench.score_losses(sample, [0.1, 0.2]).score == 0.0


# ----------------------------------------------------------------------------- SAT

EGO = "The first image is from the beginning of the video and the second image is from the end. "


@pytest.fixture(scope="module")
def sat(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_mirror("sat", tmp_path_factory.mktemp("sat"))


def test_sat_official_copies_one_per_position_of_the_answer(sat: Path) -> None:
    """Upstream format_prompts (SAT d5dcb10, L161-175): the question, the instruction, the options
    quoted and joined by "or"; here each copy rotates the options once (the module says why)."""
    rows = pq.read_table(sat / "SAT_test.parquet").to_pylist()
    samples = get_benchmark("sat").load(sat)
    assert len(samples) == sum(len(row["answers"]) for row in rows) == 28
    copies = iter(samples)
    for index, row in enumerate(rows):
        answers = list(row["answers"])
        for shift in range(len(answers)):
            sample = next(copies)
            choices = answers[shift:] + answers[:shift]
            prefix = EGO if row["question_type"] == "ego_movement" else ""
            quoted = " or ".join(f'"{choice}"' for choice in choices)
            prompt = (
                f"{prefix}{row['question'].strip()} Answer the question using a single word or phrase. "
                f"Choose between the following options: {quoted}."
            )
            assert (sample.id, sample.question, sample.sif_question) == (f"{index}#r{shift}", prompt, prompt)
            assert (sample.target, sample.category, sample.choices) == (
                row["correct_answer"],
                row["question_type"],
                tuple(choices),
            )
            assert sample.metadata == {"question_index": index, "rotation": shift, "raw_question": row["question"]}
            assert [image.data for image in sample.images] == [cell["bytes"] for cell in row["image_bytes"]]


def test_sat_letters_protocol_asks_lettered_options(sat: Path) -> None:
    row = pq.read_table(sat / "SAT_test.parquet").to_pylist()[0]
    first, second = get_benchmark("sat", "letters").load(sat)[:2]
    answers = list(row["answers"])
    body = row["question"] + "\n" + "\n".join(f"({'AB'[i]}) {a}" for i, a in enumerate(answers))
    assert (first.question, first.sif_question) == (f"{body}\n{LETTER_INSTRUCTION}", body)
    assert first.target == "AB"[answers.index(row["correct_answer"])]
    assert second.target == "AB"[(answers.index(row["correct_answer"]) - 1) % 2]  # rotated by one


def test_sat_rows_from_lmms_eval_and_bad_rows() -> None:
    from sifeval.sat import samples_from_row

    row = {"question": "Is it left?", "answers": ["left", "right"], "correct_answer_idx": 1, "image_bytes": [b"png"]}
    (only,) = samples_from_row(4, row, "letters", rotations=[0])
    assert (only.target, only.category, only.images[0].data) == ("B", "unknown", b"png")
    with pytest.raises(ValueError) as raised:
        samples_from_row(5, {**row, "correct_answer_idx": None, "correct_answer": "up"}, "official")
    assert str(raised.value) == "SAT row 5: correct_answer 'up' is not among the answers ['left', 'right']"
    with pytest.raises(ValueError) as raised:
        samples_from_row(6, {**row, "image_bytes": ["a path"]}, "official")
    assert str(raised.value) == "SAT image_bytes holds a str, not image bytes"


def test_sat_without_its_test_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as raised:
        get_benchmark("sat").load(tmp_path)
    assert (
        str(raised.value) == f"{tmp_path} has no SAT_test.parquet (the Hub layout of array/SAT: one parquet per split)"
    )


# ----------------------------------------------------------------------------- SpatialBench


@pytest.fixture(scope="module")
def spatialbench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_mirror("spatialbench", tmp_path_factory.mktemp("spatialbench"))


def test_spatialbench_samples_are_the_records_of_the_five_files(spatialbench: Path) -> None:
    """eval_spatialbench.py (SpatialBot 2d84503) reads the five files in this order; records are
    paired by position (L159-200); a depth twin is ``<folder>_d/<name up to its first dot>.png``."""
    samples = iter(get_benchmark("spatialbench").load(spatialbench))
    for category in ("positional", "existence", "counting", "reach", "size"):
        for position, record in enumerate(json.loads((spatialbench / f"{category}.json").read_text())):
            sample = next(samples)
            folder, name = record["image"].split("/")
            twin = spatialbench / f"{folder}_d" / (name.split(".")[0] + ".png")
            assert sample.id == f"{category}/{record.get('id', position)}"  # size.json has no ids
            assert (sample.question, sample.target, sample.category) == (record["question"], record["answer"], category)
            assert sample.metadata == {"position": position, "pair": position // 2, "depth_twin": str(twin)}
            assert [image.path for image in sample.images] == [str(spatialbench / record["image"])]
            assert sample.depth_image is not None and sample.depth_image.path == str(twin)
    assert next(samples, None) is None


def test_spatialbench_missing_file_and_malformed_record(spatialbench: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(spatialbench, copy)
    (copy / "reach.json").unlink()
    with pytest.raises(FileNotFoundError) as raised:
        get_benchmark("spatialbench").load(copy)
    assert str(raised.value) == f"SpatialBench folder {copy} has no reach.json"
    shutil.copy(spatialbench / "reach.json", copy / "reach.json")
    (copy / "counting.json").write_text(json.dumps([{"image": "counting/0008.jpg", "question": "How many?"}]))
    with pytest.raises(DataFileError) as raised:
        get_benchmark("spatialbench").load(copy)
    assert str(raised.value) == f"{copy / 'counting.json'}: record 0: missing or malformed 'answer'"


def test_spatialbench_a_record_with_two_images_and_an_unanswered_count(spatialbench: Path, tmp_path: Path) -> None:
    import shutil

    from sifmodel.backends import GenerationError, GenerationSettings

    copy = tmp_path / "copy"
    shutil.copytree(spatialbench, copy)
    record = {"image": ["counting/0008.jpg", "counting/0009.jpg"], "question": "How many?", "answer": 2}
    (copy / "counting.json").write_text(json.dumps([record]))
    bench = get_benchmark("spatialbench")
    (count,) = [s for s in bench.load(copy) if s.category == "counting"]
    assert [image.path for image in count.images] == [str(copy / "counting/0008.jpg"), str(copy / "counting/0009.jpg")]
    assert count.target == "2" and count.metadata["depth_twin"] == str(copy / "counting_d/0008.png")
    error = GenerationError("request", "HTTP 500")
    assert bench.unanswered(count, error).details == {"ape": 100.0}  # a count never given: 100% off
    positional = bench.load(copy)[0]
    assert bench.unanswered(positional, error).details == {}
    (copy / "counting_d" / "0008.png").unlink()
    with pytest.raises(FileNotFoundError) as raised:
        bench.request(count, "sif", GenerationSettings())
    assert str(raised.value) == f"the depth twin of counting/0 is missing: {copy / 'counting_d/0008.png'}"


def test_spatialbench_depth_twin_names() -> None:
    from sifeval.spatialbench import depth_twin

    assert depth_twin(Path("/r"), "existence/0001.v2.jpg") == Path("/r/existence_d/0001.png")
    assert depth_twin(Path("/r"), "0001.jpg") == Path("/r/_d/0001.png")


# ----------------------------------------------------------------------------- Visual-CoT


@pytest.fixture(scope="module")
def viscot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_mirror("viscot", tmp_path_factory.mktemp("viscot"))


def test_viscot_samples_pair_each_question_with_its_detection_record(viscot: Path) -> None:
    """The questions of benchmark/<subset>.json, each with the line of benchmark_det/<subset>.jsonl
    at its position; the ground truth moved onto the padded square as calculation.py L9-23 does
    (deepcs233/Visual-CoT 83212ae): the shorter axis shifted by half the difference, floored."""
    samples = iter(get_benchmark("viscot").load(viscot))
    for subset in ("gqa", "vsr"):
        questions = json.loads((viscot / "benchmark" / f"{subset}.json").read_text())
        detections = [
            json.loads(line) for line in (viscot / "benchmark_det" / f"{subset}.jsonl").read_text().splitlines()
        ]
        for position, (row, det) in enumerate(zip(questions, detections, strict=True)):
            sample = next(samples)
            first = row["conversations"][0]["value"]
            line = first.split(" Please provide the bounding box coordinate")[0]
            x1, y1, x2, y2 = det["bbox"]
            width, height = det["width"], det["height"]
            shift = abs(width - height) // 2
            padded = [x1, y1 + shift, x2, y2 + shift] if width > height else [x1 + shift, y1, x2 + shift, y2]
            assert sample.id == f"{subset}/{row['question_id']}" and sample.category == subset
            assert sample.question == line.replace("<image>", "").strip()
            assert sample.target == row["conversations"][-1]["value"]
            assert sample.metadata == {
                "question_line": line,
                "question_id": row["question_id"],
                "position": position,
                "width": width,
                "height": height,
                "truth_padded_px": padded,
                "defects": [],
            }
            assert [image.path for image in sample.images] == [str(viscot / row["image"][0])]
    assert next(samples, None) is None


def test_viscot_files_that_do_not_pair_up(viscot: Path, tmp_path: Path) -> None:
    from sifeval.viscot import read_subset

    (tmp_path / "benchmark").mkdir()
    (tmp_path / "benchmark_det").mkdir()
    questions = json.loads((viscot / "benchmark" / "gqa.json").read_text())[:2]
    detections = (viscot / "benchmark_det" / "gqa.jsonl").read_text().splitlines()[:2]
    (tmp_path / "benchmark" / "gqa.json").write_text(json.dumps(questions))
    (tmp_path / "benchmark_det" / "gqa.jsonl").write_text(detections[0] + "\n")
    with pytest.raises(ValueError) as raised:
        read_subset(tmp_path, "gqa")
    assert str(raised.value) == (
        "Visual-CoT gqa: 2 questions but 1 detection records (the two files must pair up line by line)"
    )
    (tmp_path / "benchmark_det" / "gqa.jsonl").write_text(detections[1] + "\n" + detections[0] + "\n")
    with pytest.raises(ValueError) as raised:
        read_subset(tmp_path, "gqa")
    assert str(raised.value) == "Visual-CoT gqa #0 (question_id 0): the detection record there has question_id 1"
    broken = [{**questions[0], "conversations": []}, questions[1]]
    (tmp_path / "benchmark" / "gqa.json").write_text(json.dumps(broken))
    (tmp_path / "benchmark_det" / "gqa.jsonl").write_text("\n".join(detections) + "\n")
    with pytest.raises(DataFileError) as raised:
        read_subset(tmp_path, "gqa")
    assert str(raised.value) == (
        "Visual-CoT gqa #0 (question_id 0): missing or malformed field (IndexError: list index out of range)"
    )


def test_cvbench_rows_for_lmms_eval_are_the_halves_in_order_without_images(cvbench: Path) -> None:
    """lmms-eval's ``cv_bench`` numbers its documents in the default config's order: 2D, then 3D."""
    bench = get_benchmark("cvbench")
    rows = bench.rows_without_images(cvbench)
    raw = [row for name in ("test_2d", "test_3d") for row in pq.read_table(cvbench / f"{name}.parquet").to_pylist()]
    assert [row["idx"] for row in rows] == [row["idx"] for row in raw]
    assert all("image" not in row for row in rows)
    assert set(rows[0]) == {"idx", "type", "task", "question", "choices", "answer", "prompt", "source"}
    (sample,) = bench.samples_from_lmms_eval({**rows[3], "image": "ignored"}, 3)
    assert sample.images == () and sample.id == str(rows[3]["idx"]) and sample.metadata["source"] == rows[3]["source"]
