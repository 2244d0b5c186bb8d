"""Each benchmark scored as its upstream code scores it: tables of (sample, reply, expected) whose
expected values come from running the upstream rule by hand (file and line cited beside each),
the official aggregates on small hand-computed runs, and the real Visual-CoT files.

Upstream commits read: arijitray1993/SAT d5dcb10, BAAI-DCAI/SpatialBot 2d84503,
deepcs233/Visual-CoT 83212ae, penghao-wu/vstar 4ede664, the CV-Bench card (nyu-visionx/CV-Bench).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import datasets
import pytest
from conftest import VISCOT
from PIL import Image

from sifeval import get_benchmark
from sifeval.runner import summarize
from sifeval.sat import official_prompt, official_reading, official_truth
from sifeval.spatialbench import depth_twin
from sifeval.types import Sample, ScoredSample
from sifeval.viscot import JUDGE_SYSTEM, JUDGE_USER, crop_around, parse_judge_score, parse_padded_box, read_subset
from sifmodel.backends import GenerationError
from sifmodel.judge import JudgeItem, JudgeResult, MatchJudge


def _sample(category: str, target: str = "A", **metadata: object) -> Sample:
    return Sample(
        id=f"{category}/{len(metadata)}/{id(metadata)}",
        question="q",
        target=target,
        category=category,
        metadata=dict(metadata),
    )


def _chain(answer: str) -> str:
    return f'<think><area>[{{"bbox_2d":[0.000,0.000,1.000,1.000],"depth":0.500}}]</area><text>x</text></think><answer>{answer}</answer>'


# ----------------------------------------------------------------------------- CV-Bench


def _cv(source: str, score: float | None, task: str = "Count", error: str | None = None) -> ScoredSample:
    sample = _sample(task, source=source, task=task, type="2D" if source != "Omni3D" else "3D")
    failure = GenerationError("request", error) if error else None
    return ScoredSample(sample, None if error else "r", "A", True, None if error else score, request_error=failure)


def test_cvbench_official_formula_by_hand() -> None:
    """The card's formula: ((ADE20K + COCO) / 2 + Omni3D) / 2, not micro accuracy."""
    rows = [_cv("ADE20K", 1.0) for _ in range(3)] + [_cv("COCO", 0.0)]
    rows += [_cv("Omni3D", s, "Depth") for s in (1.0, 0.0, 0.0, 0.0)]
    metrics = get_benchmark("cvbench").aggregate(rows)
    assert metrics["acc_2D"] == 50.0 and metrics["acc_3D"] == 25.0
    assert metrics["score"] == 37.5 and metrics["micro_accuracy"] == 50.0


def test_cvbench_missing_source_is_nan_not_averaged_away() -> None:
    metrics = get_benchmark("cvbench").aggregate([_cv("ADE20K", 1.0), _cv("Omni3D", 1.0, "Depth")])
    assert math.isnan(metrics["acc_2D"]) and math.isnan(metrics["score"]) and math.isnan(metrics["source/COCO"])


def test_request_errors_count_as_unanswered_in_the_headline() -> None:
    """5 errors in 40 turned 89.6 into 100.0 when errors left the denominator; never again."""
    bench = get_benchmark("cvbench")
    rows = [_cv(source, 1.0) for source in ("ADE20K", "COCO", "Omni3D") for _ in range(4)]
    rows += [_cv("Omni3D", None, "Depth", error="request: HTTP 500") for _ in range(4)]
    result = summarize(bench, rows, "plain", None, {}, None)
    assert result.metrics["score"] == pytest.approx((100 + 50) / 2)  # Omni3D: 4 right of 8
    assert result.metrics["score_answered_only"] == 100.0
    assert not result.complete and result.request_errors == 4 and "counts them as wrong" in result.notes[0]
    data = result.to_json()
    json.dumps(data, allow_nan=False)  # strict JSON


def test_cvbench_loads_both_halves_where_the_default_config_cannot(tmp_path: Path) -> None:
    from sifeval.cvbench import build_mirror

    folder = build_mirror(tmp_path / "cv", per_task=2)
    with pytest.raises(datasets.exceptions.DatasetGenerationError):
        datasets.load_dataset(str(folder), "default", split="test")  # the halves' columns clash
    samples = get_benchmark("cvbench").load(folder)
    assert len(samples) == 8 and {s.metadata["source"] for s in samples} == {"ADE20K", "COCO", "Omni3D"}


# ----------------------------------------------------------------------------- V*


def test_vstar_micro_over_all_and_per_category() -> None:
    rows = [ScoredSample(_sample("direct_attributes"), "r", "A", True, s) for s in (1.0, 1.0, 0.0)]
    rows.append(ScoredSample(_sample("relative_position"), "r", "A", True, 1.0))
    metrics = get_benchmark("vstar").aggregate(rows)  # vstar_bench_eval.py L275-277
    assert metrics["score"] == 75.0 and metrics["category/direct_attributes"] == pytest.approx(200 / 3)


def test_vstar_likelihood_picks_the_lowest_loss_and_runs_in_plain_mode() -> None:
    bench = get_benchmark("vstar", "likelihood")
    sample = Sample(id="1", question="q", target="B", category="relative_position", choices=("left", "right"))
    assert bench.score_losses(sample, [2.5, 0.7]).score == 1.0  # argmin, L163
    assert bench.mode_for("sif") == "plain"  # the question alone: options are never shown (L119)


# ----------------------------------------------------------------------------- SAT


def test_sat_official_prompt_is_upstreams() -> None:
    """format_prompts (dataloaders.py L159-175) and get_prefix (L627-633), the chat wrapper aside."""
    assert official_prompt("Which way did the car turn?", ["left", "right"], "obj_movement") == (
        "Which way did the car turn? Answer the question using a single word or phrase. "
        'Choose between the following options: "left" or "right".'
    )
    assert official_prompt("Did the camera move left?", ["yes", "no"], "ego_movement").startswith(
        "The first image is from the beginning of the video and the second image is from the end. Did"
    )


@pytest.mark.parametrize(
    ("reply", "truth", "question", "right"),
    [
        ("Left", "left", "q", True),  # prediction lower-cased (eval_funcs.py L1804)
        ("yes", "Yes", "q", True),  # ground truth lower-cased (L1836)
        ("left.", "left", "q", False),  # no punctuation stripped; equality (L1907-1909)
        ('"left"', "left", "q", False),  # quotes kept
        ("I don't know.", "no", "q", False),
        ("turn left", "left", "q", False),  # equality, not containment
        ("Answer: left", "left", "q", True),  # the word after "answer: " (L1901-1902)
        ("left", "(left)", "q", True),  # parentheses removed from the ground truth (L1838-1839)
        ("The camera is moving clockwise", "left", "Is the camera moving left or right?", True),  # L1864-1875
        ("The cup is closer to the camera", "cup", "Which object is closer to the camera?", True),  # L1852-1856
        ("left ### and more", "left", "q", True),  # cut at ### (L1804)
        ("###Assistant: left", "left", "q", True),  # a reply opening with chat markers (L1806-1818)
        ("maybe###Assistant: yes", "yes", "q", True),  # the yes/no fallback (L1820-1825)
        ("ight", "right", "q", True),  # L1827-1828
        ("The camera is moving.", "left", "Is the camera moving left or right?", False),  # upstream: IndexError (L1866)
    ],
)
def test_sat_official_text_matching(reply: str, truth: str, question: str, right: bool) -> None:
    """Cross-checked by running QAAccuracy.update itself on 5,959 replies: these are the shapes
    where a first version of ours differed."""
    assert (official_reading(reply, question, truth) == official_truth(truth)) is right


def _sat_file(folder: Path, rows: list[dict]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", (8, 8), "gray")
    import io

    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    for row in rows:
        row.setdefault("image_bytes", [{"bytes": buffer.getvalue(), "path": None}])
    pq.write_table(pa.Table.from_pylist(rows), folder / "SAT_test.parquet")
    return folder


def test_sat_circular_official_protocol_end_to_end(tmp_path: Path) -> None:
    rows = [
        {
            "question": "Did the car move left or right?",
            "answers": ["left", "right"],
            "question_type": "obj_movement",
            "correct_answer": "right",
        },
        {
            "question": "Which object is closer?",
            "answers": ["cup", "chair", "lamp"],
            "question_type": "goal_aim",
            "correct_answer": "lamp",
        },
    ]
    folder = _sat_file(tmp_path / "sat", rows)
    (folder / "SAT_train.parquet").write_text("never read")  # the other splits are not touched
    bench = get_benchmark("sat")
    samples = bench.load(folder)
    assert [s.id for s in samples] == ["0#r0", "0#r1", "1#r0", "1#r1", "1#r2"]  # every position of the answer
    assert [s.choices for s in samples[:2]] == [("left", "right"), ("right", "left")]
    assert (
        samples[2].target == "lamp"
        and 'Choose between the following options: "cup" or "chair" or "lamp".' in samples[2].question
    )
    replies = [
        "<answer>right</answer>",
        "<answer>Right.</answer>",
        "<answer>lamp</answer>",
        "<answer>Lamp</answer>",
        "<think>The lamp is nearest.",  # cut off while thinking: no answer
    ]
    scored = [bench.score(s, r) for s, r in zip(samples, replies, strict=True)]
    assert [s.score for s in scored] == [1.0, 0.0, 1.0, 1.0, 0.0] and not scored[4].parse_ok
    metrics = bench.aggregate(scored)
    assert metrics["score"] == 60.0 and metrics["question_type/goal_aim"] == pytest.approx(200 / 3)
    assert metrics["all_orders_right"] == 0.0


def test_sat_letters_is_its_own_protocol_and_needs_only_the_test_file(tmp_path: Path) -> None:
    folder = _sat_file(
        tmp_path / "sat", [{"question": "q?", "answers": ["a", "b"], "question_type": "t", "correct_answer": "b"}]
    )
    letters = get_benchmark("sat", "letters").load(folder)
    assert [s.target for s in letters] == ["B", "A"] and letters[0].question.endswith(
        "from the given choices directly."
    )
    with pytest.raises(FileNotFoundError, match=r"SAT_test\.parquet"):
        get_benchmark("sat").load(tmp_path / "empty")


# ----------------------------------------------------------------------------- SpatialBench


@pytest.mark.parametrize(
    ("reply", "truth", "right"),
    [
        ("yes", "Yes", False),  # `gt in response`, case-sensitive (eval_spatialbench.py L159-207)
        ("Yes", "yes", False),
        ("Yes.", "Yes", True),
        ('"Yes"', "Yes", True),
        ("I don't know.", "No", False),  # lower-casing both would read "no" in "know"
        ("I don't know.", "no", True),  # ... which upstream does when the truth is lower case
        ("Not sure", "No", True),  # upstream's containment, reproduced
    ],
)
def test_spatialbench_matching_is_case_sensitive(reply: str, truth: str, right: bool) -> None:
    bench = get_benchmark("spatialbench")
    sample = _sample("positional", truth, position=0, pair=0)
    assert bench.score(sample, reply, "plain").score == float(right)


def test_spatialbench_counting_is_uncapped_and_a_word_is_a_parse_failure() -> None:
    bench = get_benchmark("spatialbench")
    seven = bench.score(_sample("counting", "2", position=0, pair=0), "7", "plain")
    assert seven.details["ape"] == 250.0  # L201-207: |7 - 2| / 2 * 100, no cap
    word = bench.score(_sample("counting", "2", position=1, pair=0), "no idea", "plain")
    assert not word.parse_ok and word.details["ape"] == 100.0  # upstream's int() stops; here: as answering 0
    metrics = bench.aggregate([seven, word])
    assert metrics["category/counting"] == 100 - (250 + 100) / 2  # below 0 is allowed
    assert math.isnan(metrics["score"])  # four categories missing from this run


def _pair_items(category: str, results: list[bool]) -> list[ScoredSample]:
    return [
        ScoredSample(_sample(category, "Yes", position=i, pair=i // 2), "r", "r", True, float(right))
        for i, right in enumerate(results)
    ]


def test_spatialbench_pairs_are_the_files_positions() -> None:
    bench = get_benchmark("spatialbench")
    existence = _pair_items("existence", [True, True, True, False])  # pairs (0, 1) both right, (2, 3) not
    reach = _pair_items("reach", [True, True, True, False])  # 3 + 1 points of 6
    size = _pair_items("size", [False, False])
    positional = _pair_items("positional", [True, False])
    counting = [ScoredSample(_sample("counting", "4", position=0, pair=0), "r", "3", True, 0.75, details={"ape": 25.0})]
    metrics = bench.aggregate(existence + reach + size + positional + counting)
    assert metrics["category/existence"] == 50.0 and metrics["category/reach"] == pytest.approx(100 * 4 / 6)
    assert metrics["category/size"] == 0.0 and metrics["category/counting"] == 75.0
    assert metrics["score"] == pytest.approx((50 + 100 * 4 / 6 + 0 + 50 + 75) / 5)
    # A shard holding the first of each pair: never re-paired into an all-right score.
    firsts = [
        item
        for item in _pair_items("existence", [True, False, True, False])
        if item.sample.metadata["position"] % 2 == 0
    ]
    assert math.isnan(bench.aggregate(firsts)["category/existence"])


def test_spatialbench_depth_twins_and_optional_ids(tmp_path: Path) -> None:
    assert depth_twin(tmp_path, "existence/0001.jpg") == tmp_path / "existence_d" / "0001.png"  # L116-118
    assert depth_twin(tmp_path, "size/a.b.jpeg") == tmp_path / "size_d" / "a.png"  # the name up to its first '.'
    for category in ("positional", "existence", "counting", "reach", "size"):
        (tmp_path / category).mkdir()
        (tmp_path / f"{category}_d").mkdir()
        Image.new("RGB", (8, 8)).save(tmp_path / category / "0.jpg")
        rows = [{"image": f"{category}/0.jpg", "question": "q", "answer": "1"}] * 2
        (tmp_path / f"{category}.json").write_text(json.dumps(rows))
    samples = get_benchmark("spatialbench").load(tmp_path)
    assert samples[0].id == "positional/0" and samples[1].id == "positional/1"
    from sifmodel.backends import GenerationSettings

    with pytest.raises(FileNotFoundError, match="depth twin of positional/0 is missing"):
        get_benchmark("spatialbench").request(samples[0], "sif", GenerationSettings())  # never estimated instead


# ----------------------------------------------------------------------------- Visual-CoT


def test_viscot_real_files_load_whole_with_the_official_ground_truth() -> None:
    samples = get_benchmark("viscot").load(VISCOT)
    counts = {subset: sum(s.category == subset for s in samples) for subset in ("gqa", "vsr", "cub")}
    assert counts == {"gqa": 978, "vsr": 404, "cub": 492}
    gqa7 = next(s for s in samples if s.id == "gqa/7")  # 391 x 500, bbox [217, 343, 242, 393]
    assert gqa7.metadata["truth_padded_px"] == [
        217 + 54,
        343,
        242 + 54,
        393,
    ]  # x + (500 - 391) // 2 (calculation.py L9-23)
    gqa8 = next(s for s in samples if s.id == "gqa/8")  # 500 x 374, bbox [227, 68, 391, 173]
    assert gqa8.metadata["truth_padded_px"] == [227, 68 + 63, 391, 173 + 63]
    assert gqa7.metadata["question_line"].startswith("<image>\n") and gqa7.question.startswith("What are the tree")
    # Small overshoots in the real gqa and cub files are flagged, never dropped.
    assert sum(bool(s.metadata["defects"]) for s in samples if s.category == "gqa") == 9


def _defect_folder(tmp_path: Path) -> Path:
    """Synthetic files that carry each real defect of the 13 shipped files."""
    root = tmp_path / "viscot"
    (root / "benchmark").mkdir(parents=True)
    (root / "benchmark_det").mkdir(parents=True)

    def write(subset: str, rows: list[tuple], dataset: str | None = None, det_prefix: str | None = None) -> None:
        questions, detections = [], []
        for qid, image, question, answer, box, size in rows:
            questions.append(
                {
                    "dataset": dataset or subset,
                    "question_id": qid,
                    "image": [image, f"{image}###{[int(v) for v in box]}"],
                    "conversations": [
                        {
                            "from": "human",
                            "value": f"<image>\n{question} Please provide the bounding box coordinate of the region that can help you answer the question better.",
                        },
                        {"from": "gpt", "value": "[0.1, 0.1, 0.2, 0.2]"},
                        {"from": "human", "value": "<image>"},
                        {"from": "gpt", "value": answer},
                    ],
                }
            )
            det_image = image.replace("cot/v7w/", f"cot/{det_prefix}/") if det_prefix else image
            detections.append(
                {
                    "img_path": det_image,
                    "expression": question,
                    "bbox": box,
                    "width": size[0],
                    "height": size[1],
                    "question_id": qid,
                }
            )
        (root / "benchmark" / f"{subset}.json").write_text(json.dumps(questions))
        (root / "benchmark_det" / f"{subset}.jsonl").write_text("".join(json.dumps(d) + "\n" for d in detections))

    write(
        "docvqa", [(128, "cot/docvqa/a.png", "What is the name?", "ACME", [868, 213, 859, 389], (1267, 821))]
    )  # inverted x
    write(
        "dude",
        [
            (36, "cot/dude/b.png", "Which page?", "5", [484, 16537, 1896, 16625], (1700, 2800)),  # far outside
            (
                243,
                "cot/dude/c.png",
                "WHAT IS THE STATE MENTIONED?",
                "",
                [759, 165, 809, 201],
                (1701, 2201),
            ),  # empty answer
        ],
    )
    shared = "cot/textvqa/89fbd8dd5560dfce.jpg"  # one image path and question id in two subsets
    write("textcap", [(150, shared, "What is on sale?", "CHAINSAWS", [444, 293, 583, 317], (1024, 768))])
    write("textvqa", [(150, shared, "how many dollars can you save?", "$50", [166, 193, 350, 280], (1024, 768))])
    write(
        "visual7w", [(0, "cot/v7w/v7w_1.jpg", "q?", "a", [1, 1, 5, 5], (10, 10))], dataset="v7w", det_prefix="visual7w"
    )
    return root


def test_viscot_defects_are_flagged_and_kept_and_unscored_subsets_skipped(tmp_path: Path) -> None:
    samples = {s.id: s for s in get_benchmark("viscot").load(_defect_folder(tmp_path))}
    assert sorted(samples) == ["docvqa/128", "dude/243", "dude/36", "textcap/150", "textvqa/150"]  # no visual7w
    assert "inverted" in samples["docvqa/128"].metadata["defects"][0]
    assert "13825 px outside" in samples["dude/36"].metadata["defects"][0]
    assert samples["dude/243"].metadata["defects"] == ["empty reference answer"]
    assert samples["textcap/150"].target == "CHAINSAWS" and samples["textvqa/150"].target == "$50"
    bench = get_benchmark("viscot")
    bench.judge = MatchJudge()
    inverted = samples["docvqa/128"]  # IoU with an inverted box is 0: unwinnable, as upstream, and still counted
    scored = bench.score(
        inverted,
        '<think><area>[{"bbox_2d":[0.600,0.200,0.750,0.500],"depth":0.5}]</area><text>x</text></think><answer>ACME</answer>',
    )
    assert scored.details["detection"] == 0.0 and scored.score == 1.0


def test_viscot_question_and_detection_files_must_pair(tmp_path: Path) -> None:
    root = _defect_folder(tmp_path)
    rows = [json.loads(line) for line in (root / "benchmark_det" / "docvqa.jsonl").read_text().splitlines()]
    rows[0]["question_id"] = 999
    (root / "benchmark_det" / "docvqa.jsonl").write_text(json.dumps(rows[0]) + "\n")
    with pytest.raises(
        ValueError, match=r"docvqa #0 \(question_id 128\): the detection record there has question_id 999"
    ):
        read_subset(root, "docvqa")


def test_viscot_detection_official_rule_and_box_frames() -> None:
    bench = get_benchmark("viscot")
    # 200 x 100 image: padded square 200, image 50 px down; ground truth pixels [50, 25, 100, 50] -> [50, 75, 100, 100].
    sample = _sample("gqa", "red", width=200, height=100, truth_padded_px=[50, 75, 100, 100])
    per_axis = '<think><area>[{"bbox_2d":[0.250,0.250,0.500,0.500],"depth":0.5}]</area><text>x</text></think>'
    padded = '<think><area>[{"bbox_2d":[0.250,0.375,0.500,0.500],"depth":0.5}]</area><text>x</text></think>'
    from sifeval.viscot import detection_right

    assert detection_right(sample, bench.predicted_box(sample, per_axis))
    assert not detection_right(sample, bench.predicted_box(sample, padded))  # read per axis, it misses
    bench.box_frame = "padded-square"  # a checkpoint trained on the published SIF-50K
    assert detection_right(sample, bench.predicted_box(sample, padded))
    # IoU > 0.5 strictly (calculation.py L47): exactly 0.5 is wrong.
    half = _sample("gqa", "red", width=100, height=100, truth_padded_px=[0, 0, 100, 100])
    assert not detection_right(half, [0.0, 0.0, 0.5, 1.0])
    assert parse_padded_box("[0.1, 0.2, 0.3, 0.4]") == [0.1, 0.2, 0.3, 0.4] and parse_padded_box("no box") is None


def test_viscot_judge_prompt_and_reply_are_official() -> None:
    # eval_cot_score.py L13-21: the system prompt and the user template, newlines included.
    assert JUDGE_SYSTEM.startswith("\nYou are responsible for proofreading the answers") and JUDGE_SYSTEM.endswith(
        "higher the score.\n"
    )
    assert (
        JUDGE_USER.format(question="<image>\nq?", reference="a", prediction="b")
        == "\nquestion: <image>\nq?\nstandard answer: a\nmodel's answer: b\n"
    )
    # L49-63: lower-cased, exactly one "score: x", clamped to [0, 1]; anything else fails (upstream: 0 or a crash).
    assert parse_judge_score("Score: 0.8") == 0.8 and parse_judge_score("score: 1.5") == 1.0
    for reply in ("score:0.5", "score: 0.2 ... score: 0.9", "I cannot grade this", "score: 0.8."):
        with pytest.raises(ValueError):
            parse_judge_score(reply)


class _FailingJudge:
    model = "scripted-judge"

    def score_many(self, items: list[JudgeItem], prompt: object = None) -> list[JudgeResult]:
        return [JudgeResult(None, "llm", "judge reply holds 0 'score: x'") for _ in items]


def test_viscot_judge_failures_are_their_own_count_not_request_errors(tmp_path: Path) -> None:
    bench = get_benchmark("viscot")
    bench.judge = _FailingJudge()
    sample = _sample("gqa", "red", width=100, height=100, truth_padded_px=[0, 0, 50, 50])
    scored = bench.score(sample, _chain("red"))
    assert scored.score is None and scored.judge_error and scored.request_error is None and scored.parse_ok
    result = summarize(bench, [scored], "sif", None, {}, None)
    assert result.judge_failures == 1 and result.request_errors == 0 and not result.complete
    assert any("could not be graded by the judge" in note for note in result.notes)


def test_viscot_headline_is_the_mean_of_the_eleven_subset_means() -> None:
    bench = get_benchmark("viscot")
    subsets = bench.categories
    rows = [
        ScoredSample(_sample(name), "r", "a", True, 1.0 if i % 2 else 0.5, details={"detection": 1.0})
        for i, name in enumerate(subsets)
    ]
    rows.append(ScoredSample(_sample("gqa"), "r", "a", True, 0.0, details={"detection": 0.0}))  # gqa: (1.0 + 0) / 2
    metrics = bench.aggregate(rows)
    means = [100 * (1.0 if i % 2 else 0.5) for i in range(11)]
    means[subsets.index("gqa")] = 100 * (means[subsets.index("gqa")] / 100 + 0.0) / 2
    assert metrics["score"] == pytest.approx(sum(means) / 11)  # unweighted over subsets (cot_get_result.py L57-69)
    assert math.isnan(bench.aggregate(rows[:3])["score"])  # a subset without results: NaN, not 0


def test_viscot_crop_is_upstreams_square() -> None:
    image = Image.new("RGB", (400, 200))
    # A small box near the left edge: half-size at least 112, moved inside the image (cropwithbbox L150-181).
    crop = crop_around(image, [0.0, 0.25, 0.05, 0.3])
    assert crop.size == (224, 200)
    assert crop_around(image, [0.25, 0.25, 0.75, 0.75]).size == (224, 200)  # 2 x 112 wide, the image's height
