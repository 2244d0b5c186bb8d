"""Each benchmark's scoring of one reply, its figures and the terms of their intervals, worked out
by hand on small sets (issue 23). The official formulas themselves are pinned against the
upstream code in test_conformance.py; here every number a run reports is checked, including
the per-pair and per-question terms the confidence intervals are computed from."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from recording_judge import RecordingJudge

from sifeval import get_benchmark
from sifeval.intervals import Term
from sifeval.solvers import TwoPass
from sifeval.types import ImageRef, Sample, ScoredSample
from sifmodel.backends import GenerationError
from sifmodel.judge import JudgeItem, JudgeResult

# ----------------------------------------------------------------------------- SpatialBench


def _sb(category: str, position: int, target: str = "Yes") -> Sample:
    return Sample(
        f"{category}/{position}",
        "q",
        target,
        category,
        metadata={"position": position, "pair": position // 2, "depth_twin": "-"},
    )


@pytest.mark.parametrize(
    ("reply", "truth", "extracted", "score", "ape"),
    [
        ("3", "2", "3.0", 0.5, 50.0),  # |3 - 2| / 2
        ("<answer>2.5</answer>", "2", "2.5", 0.75, 25.0),
        ("7", "2", "7.0", 0.0, 250.0),  # not capped: the error counts whole in the mean
        ("0", "0", "0.0", 1.0, 0.0),  # a true count of 0 (upstream divides by it)
        ("1", "0", "1.0", 0.0, 100.0),
    ],
)
def test_spatialbench_counting_by_its_percentage_error(
    reply: str, truth: str, extracted: str, score: float, ape: float
) -> None:
    """eval_spatialbench.py L201-207: 100 minus the mean absolute percentage error."""
    scored = get_benchmark("spatialbench").score(_sb("counting", 0, truth), reply, "plain")
    assert (scored.response, scored.extracted, scored.parse_ok) == (reply, extracted, True)
    assert scored.score == pytest.approx(score) and scored.details == {"ape": pytest.approx(ape)}


def test_spatialbench_a_count_that_is_not_a_number() -> None:
    scored = get_benchmark("spatialbench").score(_sb("counting", 0, "2"), "several", "plain")
    assert (scored.response, scored.extracted, scored.parse_ok, scored.score) == ("several", None, False, 0.0)
    assert scored.details == {"ape": 100.0}  # as if it had answered 0: 100% off


def test_spatialbench_an_empty_answer_is_a_count_of_nothing() -> None:
    scored = get_benchmark("spatialbench").score(_sb("counting", 0, "2"), "<think>hm</think><answer> </answer>", "sif")
    assert (scored.extracted, scored.parse_ok, scored.score, scored.details) == (None, False, 0.0, {"ape": 100.0})


def test_spatialbench_unanswered_and_the_depth_picture_of_a_sif_request(tmp_path: Path) -> None:
    from sifmodel.backends import GenerationSettings

    bench = get_benchmark("spatialbench")
    error = GenerationError("request", "HTTP 500")
    count = _sb("counting", 0, "2")
    assert bench.unanswered(count, error) == ScoredSample(
        count, None, None, False, 0.0, request_error=error, details={"ape": 100.0}
    )
    assert bench.unanswered(_sb("reach", 0), error) == ScoredSample(
        _sb("reach", 0), None, None, False, 0.0, request_error=error
    )
    # The twin holds millimetres, farther = larger: 1 m on the left, 3 m on the right. Min-max
    # normalized (SIF: 0 = nearest), then drawn closer = brighter: 255 on the left, 0 on the right.
    Image.new("RGB", (4, 2), "red").save(tmp_path / "0000.jpg")
    Image.fromarray(np.array([[1000, 1000, 3000, 3000]] * 2, dtype=np.uint16)).save(tmp_path / "0000_d.png")
    sample = replace(
        count,
        images=(ImageRef(path=str(tmp_path / "0000.jpg")),),
        depth_image=ImageRef(path=str(tmp_path / "0000_d.png")),
        metadata={**count.metadata, "depth_twin": str(tmp_path / "0000_d.png")},
        sif_question="How many? (SIF)",
    )
    request = bench.request(sample, "sif", GenerationSettings())
    assert (request.question, request.mode) == ("How many? (SIF)", "sif")
    assert np.asarray(request.depth_image.convert("L")).tolist() == [[255, 255, 0, 0]] * 2


def test_spatialbench_yes_no_reads_the_answer_part() -> None:
    bench = get_benchmark("spatialbench")
    right = bench.score(_sb("existence", 0, "Yes"), "<think>No idea</think><answer>Yes</answer>", "sif")
    assert (right.extracted, right.parse_ok, right.score) == ("Yes", True, 1.0)
    assert right.response == "<think>No idea</think><answer>Yes</answer>"


def _scored(category: str, scores: list[float | None], apes: list[float] | None = None) -> list[ScoredSample]:
    items = []
    for position, score in enumerate(scores):
        details = {"ape": apes[position]} if apes else {}
        items.append(ScoredSample(_sb(category, position), "r", "r", True, score, details=details))
    return items


def test_spatialbench_figures_and_their_terms_by_hand() -> None:
    bench = get_benchmark("spatialbench")
    scored = (
        _scored("positional", [1.0, 0.0, 1.0, 1.0])  # 3 of 4: 75
        + _scored("existence", [1.0, 1.0, 1.0, 0.0])  # the first pair right, the second not: 50
        + _scored("counting", [0.0, 1.0], apes=[250.0, 0.0])  # 100 - 125 = -25: the error is not capped
        + _scored("reach", [1.0, 1.0, 1.0, 0.0])  # (1+1+1) + (1+0+0) of 6
        + _scored("size", [0.0, 1.0, 0.0, 0.0])  # (0+1+0) + 0 of 6
    )
    metrics = bench.aggregate(scored)
    assert metrics == {
        "score": pytest.approx((75 + 50 - 25 + 400 / 6 + 100 / 6) / 5),
        "category/positional": 75.0,
        "category/existence": 50.0,
        "category/counting": -25.0,
        "category/reach": pytest.approx(400 / 6),
        "category/size": pytest.approx(100 / 6),
    }
    terms = bench.figure_terms(scored)
    assert terms["category/positional"] == [
        Term(1.0, [100.0, 0.0, 100.0, 100.0], ["positional/0", "positional/1", "positional/2", "positional/3"])
    ]
    assert terms["category/existence"] == [Term(1.0, [100.0, 0.0], ["0", "1"])]  # one value per pair
    assert terms["category/counting"] == [Term(1.0, [-150.0, 100.0], ["counting/0", "counting/1"])]
    assert terms["category/reach"] == [Term(1.0, [100.0, pytest.approx(100 / 3)], ["0", "1"])]
    assert terms["category/size"] == [Term(1.0, [pytest.approx(100 / 3), 0.0], ["0", "1"])]
    # The score: each category's terms at a fifth of their weight.
    assert [term.weight for term in terms["score"]] == [0.2] * 5
    assert [list(term.values) for term in terms["score"]] == [
        list(terms[f"category/{c}"][0].values) for c in ("positional", "existence", "counting", "reach", "size")
    ]


def test_spatialbench_an_incomplete_pair_or_an_ungraded_member_has_no_figure() -> None:
    bench = get_benchmark("spatialbench")
    alone = _scored("reach", [1.0, 1.0, 1.0])  # the third record's partner is missing
    assert math.isnan(bench.aggregate(alone)["category/reach"]) and bench.figure_terms(alone)["category/reach"] == []
    ungraded = _scored("existence", [1.0, None])
    assert math.isnan(bench.aggregate(ungraded)["category/existence"])
    assert bench.figure_terms(ungraded)["category/existence"] == []
    assert bench.aggregate(_scored("existence", [1.0, 1.0, 1.0, 1.0]))["category/existence"] == 100.0  # 2 of 2 pairs
    missing = bench.aggregate(_scored("positional", [1.0]))
    assert math.isnan(missing["score"]) and math.isnan(missing["category/counting"])
    assert bench.figure_terms(_scored("positional", [1.0]))["category/counting"] == []


# ----------------------------------------------------------------------------- V*


def test_vstar_figures_and_terms_by_hand() -> None:
    """vstar_bench_eval.py L275-277: accuracy per category and over all questions."""
    bench = get_benchmark("vstar")
    scored = [
        ScoredSample(Sample(str(i), "q", "A", category), "r", "A", True, score)
        for i, (category, score) in enumerate(
            [
                ("direct_attributes", 1.0),
                ("direct_attributes", 0.0),
                ("direct_attributes", 1.0),
                ("relative_position", 0.0),
            ]
        )
    ]
    assert bench.aggregate(scored) == {
        "score": 50.0,
        "category/direct_attributes": pytest.approx(200 / 3),
        "category/relative_position": 0.0,
    }
    terms = bench.figure_terms(scored)
    assert terms == {
        "score": [Term(1.0, [100.0, 0.0, 100.0, 0.0], ["0", "1", "2", "3"])],
        "category/direct_attributes": [Term(1.0, [100.0, 0.0, 100.0], ["0", "1", "2"])],
        "category/relative_position": [Term(1.0, [0.0], ["3"])],
    }
    only_one = bench.aggregate(scored[:1])
    assert only_one["score"] == 100.0 and math.isnan(only_one["category/relative_position"])
    assert bench.figure_terms(scored[:1])["category/relative_position"] == []


def test_vstar_likelihood_solver_requests_and_scores(tmp_path: Path) -> None:
    from sifeval.solvers import Likelihood
    from sifmodel.backends import GenerationSettings

    bench = get_benchmark("vstar", "likelihood")
    solver = bench.solver()
    assert isinstance(solver, Likelihood) and solver.build == bench.likelihood_request
    assert not isinstance(get_benchmark("vstar").solver(), Likelihood)
    Image.new("RGB", (3, 2), "blue").save(tmp_path / "a.png")
    sample = Sample("5", "Q?", "B", "c", images=(ImageRef(path=str(tmp_path / "a.png")),), choices=("x", "y"))
    settings = GenerationSettings(max_new_tokens=3)
    request, options = bench.likelihood_request(sample, settings)
    assert [image.size for image in request.images] == [(3, 2)] and request.settings == settings
    assert (request.question, options) == ("Q?", ["x", "y"])  # no question_core: the question itself
    assert bench.score_losses(sample, [0.3, 0.2]) == ScoredSample(
        sample, '{"option_losses": [0.3, 0.2]}', extracted="B", parse_ok=True, score=1.0
    )


def test_vstar_documents_from_lmms_eval() -> None:
    doc = {
        "text": "Q?\n(A) x\n(B) y\n" + "Answer with the option's letter from the given choices directly.",
        "label": "A",
        "category": "relative_position",
        "question_id": 12,
    }
    (sample,) = get_benchmark("vstar").samples_from_lmms_eval(doc, 0)
    assert (sample.id, sample.target, sample.category, sample.choices, sample.images) == (
        "12",
        "A",
        "relative_position",
        ("x", "y"),
        (),
    )
    assert sample.metadata == {"question_core": "Q?"}


# ----------------------------------------------------------------------------- SAT


def _sat(question: int, rotation: int, category: str, score: float) -> ScoredSample:
    sample = Sample(
        f"{question}#r{rotation}", "q", "x", category, metadata={"question_index": question, "rotation": rotation}
    )
    return ScoredSample(sample, "r", "x", True, score)


def test_sat_figures_and_terms_by_hand() -> None:
    """The micro accuracy over every copy, per question type, and the share of questions right in
    every order; the terms cluster a question's copies (they are one question, not independent)."""
    bench = get_benchmark("sat")
    scored = [
        _sat(0, 0, "ego_movement", 1.0),
        _sat(0, 1, "ego_movement", 1.0),  # question 0: right in both orders
        _sat(1, 0, "goal_aim", 1.0),
        _sat(1, 1, "goal_aim", 0.0),
        _sat(1, 2, "goal_aim", 0.0),  # question 1: right in one order of three
    ]
    assert bench.aggregate(scored) == {
        "score": 60.0,
        "question_type/ego_movement": 100.0,
        "question_type/goal_aim": pytest.approx(100 / 3),
        "all_orders_right": 50.0,
    }
    terms = bench.figure_terms(scored)
    assert terms == {
        "score": [Term(1.0, [100.0, 100.0, 100.0, 0.0, 0.0], ["0", "0", "1", "1", "1"])],
        "question_type/ego_movement": [Term(1.0, [100.0, 100.0], ["0", "0"])],
        "question_type/goal_aim": [Term(1.0, [100.0, 0.0, 0.0], ["1", "1", "1"])],
        "all_orders_right": [Term(1.0, [100.0, 0.0], ["0", "1"])],
    }
    assert math.isnan(bench.aggregate([])["all_orders_right"]) and bench.figure_terms([])["all_orders_right"] == []


# ----------------------------------------------------------------------------- Visual-CoT


def _coded(width: int, height: int) -> Image.Image:
    """Each pixel says where it is: red = x mod 256, green = y mod 256, blue = 16 * (x // 256) + y // 256."""
    x = np.arange(width)[None, :].repeat(height, 0)
    y = np.arange(height)[:, None].repeat(width, 1)
    return Image.fromarray(np.stack([x % 256, y % 256, 16 * (x // 256) + y // 256], axis=-1).astype(np.uint8))


def _origin(crop: Image.Image) -> tuple[int, int]:
    red, green, blue = crop.getpixel((0, 0))  # type: ignore[misc]
    return red + 256 * (blue // 16), green + 256 * (blue % 16)


@pytest.mark.parametrize(
    ("size", "box", "origin", "crop_size"),
    [
        # Worked through cropwithbbox (model_cot_loader.py L150-181) by hand; boxes on the padded square.
        ((400, 200), [0.0, 0.25, 0.05, 0.3], (0, 0), (224, 200)),  # small, at the left edge: 2 x 112, moved in
        ((1000, 600), [0.5, 0.5, 0.6, 0.6], (438, 238), (224, 224)),  # y shifted up by (1000 - 600) // 2
        ((1000, 600), [500, 500, 600, 600], (438, 238), (224, 224)),  # pixel numbers (sum >= 5): the same
        ((1000, 600), [0.1, 0.2, 0.7, 0.8], (100, 0), (600, 600)),  # large: half its longer side
        ((600, 1000), [0.5, 0.5, 0.6, 0.6], (238, 438), (224, 224)),  # portrait: x shifted instead
        ((1000, 600), [0.95, 0.75, 0.99, 0.79], (776, 376), (224, 224)),  # past the right and bottom: moved in
        ((400, 200), [1, 1, 1.5, 1.5], (0, 0), (224, 200)),  # summing to exactly 5: pixels (L152-154)
        ((400, 200), [1, 1, 1.5, 2], (0, 0), (224, 200)),  # 5.5: pixels
        ((1001, 600), [500, 500, 600, 600], (438, 238), (224, 224)),  # an odd difference: shifted by 401 // 2
        ((600, 1001), [500, 500, 600, 600], (238, 438), (224, 224)),
        ((1000, 600), [450, 100, 550, 600], (300, 0), (400, 400)),  # starting in the padding: from 0
        ((600, 1000), [100, 450, 600, 550], (0, 300), (400, 400)),
        ((1000, 600), [100, 300, 700, 400], (100, 0), (600, 600)),  # wide: half its width, moved down to 0
        ((600, 1000), [300, 100, 400, 700], (0, 100), (600, 600)),  # tall: half its height
        ((1000, 600), [503, 503, 600, 600], (439, 239), (224, 224)),  # odd sums: centres floored
    ],
)
def test_viscot_second_pass_crop_by_hand(
    size: tuple[int, int], box: list[float], origin: tuple[int, int], crop_size: tuple[int, int]
) -> None:
    from sifeval.viscot import crop_around

    crop = crop_around(_coded(*size), box)
    assert (_origin(crop), crop.size) == (origin, crop_size)


def test_viscot_crop_with_a_smaller_minimum() -> None:
    from sifeval.viscot import crop_around

    crop = crop_around(_coded(1000, 600), [0.5, 0.5, 0.6, 0.6], min_half=30)
    assert (_origin(crop), crop.size) == ((500, 300), (100, 100))  # half-size 50, the box's own
    # Odd sides: half-sizes floored (103 // 2 = 51), on either axis.
    wide = crop_around(_coded(1000, 600), [501, 500, 604, 560], min_half=30)
    assert (_origin(wide), wide.size) == ((501, 279), (102, 102))
    tall = crop_around(_coded(1000, 600), [500, 501, 560, 604], min_half=30)
    assert (_origin(tall), tall.size) == ((479, 301), (102, 102))


def recorder(script: dict[str, JudgeResult]) -> RecordingJudge:
    return RecordingJudge(script, model="recorder", concurrency=5)


def _vc(subset: str, number: int, width: int = 400, height: int = 200, truth: list[float] | None = None) -> Sample:
    return Sample(
        f"{subset}/{number}",
        f"What is {number}?",
        "a cat",
        subset,
        metadata={
            "question_line": f"<image>\nWhat is {number}?",
            "width": width,
            "height": height,
            "truth_padded_px": truth or [100.0, 150.0, 200.0, 250.0],
            "defects": [],
        },
    )


def test_viscot_one_pass_answers_go_to_the_judge_with_the_official_prompt() -> None:
    from sifeval.viscot import VisCoT

    judge = recorder(
        {"a cat": JudgeResult(1.0, "llm"), "a dog": JudgeResult(0.25, "llm"), "?": JudgeResult(None, "llm", "down")}
    )
    bench = VisCoT(judge=judge)
    # The truth [100, 150, 200, 250] px on the 400-px padded square is (0.25, 0.25, 0.5, 0.75) on the 400 x 200 image.
    right_box = '<area>[{"bbox_2d":[0.25,0.25,0.5,0.75],"depth":0.5}]</area>'
    replies = [
        f"<think>{right_box}<text>t</text></think><answer>a cat</answer>",
        "<think><text>t</text></think><answer>a dog</answer>",
        "<answer>?</answer>",
        "<think><text>t</text></think><answer> </answer>",  # an empty answer: nothing to judge
    ]
    scored = bench.score_many([_vc("gqa", i) for i in range(4)], replies, "sif")
    assert [s.score for s in scored] == [1.0, 0.25, None, 0.0]
    assert [s.extracted for s in scored] == ["a cat", "a dog", "?", None]
    assert [s.parse_ok for s in scored] == [True, True, True, False]
    assert [s.judge_error for s in scored] == [None, None, "down", None]
    assert [s.details["detection"] for s in scored] == [1.0, 0.0, 0.0, 0.0]
    assert scored[0].details["predicted_box_padded"] == pytest.approx([0.25, 0.375, 0.5, 0.625])
    assert scored[1].details["predicted_box_padded"] is None
    assert [item.question for item in judge.asked] == [
        "<image>\nWhat is 0?",
        "<image>\nWhat is 1?",
        "<image>\nWhat is 2?",
    ]
    assert [item.reference for item in judge.asked] == ["a cat"] * 3 and judge.prompts == ["viscot-official"]
    with pytest.raises(ValueError) as raised:
        VisCoT().score_many([_vc("gqa", 0)], ["<answer>a cat</answer>"])
    assert str(raised.value) == "the Visual-CoT answer score needs a judge: --judge llm (SIF_JUDGE_*) or --judge match"
    assert scored[0].response == replies[0]
    assert (
        VisCoT().score_many([_vc("gqa", 0)], ["<answer></answer>"])[0].score == 0.0
    )  # nothing to judge: no judge needed


def test_viscot_two_pass_response_is_both_passes() -> None:
    from sifeval.viscot import VisCoT

    judge = recorder({"a cat": JudgeResult(1.0, "llm")})
    bench = VisCoT("two-pass", judge=judge)
    responses = [
        json.dumps({"first_pass": "[0.25, 0.375, 0.5, 0.625]", "answer": " a cat "}),
        json.dumps({"first_pass": "no box", "answer": "  "}),
    ]
    first, second = bench.score_many([_vc("gqa", 0), _vc("gqa", 1)], responses)
    assert (first.extracted, first.score, first.details["detection"]) == ("a cat", 1.0, 1.0)
    assert first.details["first_pass"] == "[0.25, 0.375, 0.5, 0.625]"
    assert (second.extracted, second.parse_ok, second.score, second.details["detection"]) == (None, False, 0.0, 0.0)
    assert second.details["predicted_box_padded"] is None and second.details["first_pass"] == "no box"


def test_viscot_two_pass_requests(tmp_path: Path) -> None:
    from sifeval.viscot import VisCoT
    from sifmodel.backends import GenerationSettings

    _coded(1000, 600).save(tmp_path / "i.png")
    sample = replace(
        _vc("gqa", 3, 1000, 600), question="What Is On The Table", images=(ImageRef(path=str(tmp_path / "i.png")),)
    )
    bench, settings = VisCoT("two-pass"), GenerationSettings(max_new_tokens=5)  # not the default
    box_request = bench.first_pass(sample, settings)
    assert (box_request.id, box_request.mode, box_request.settings) == ("gqa/3#box", "plain", settings)
    assert [image.size for image in box_request.images] == [(1000, 600)]
    assert box_request.question == (
        "what is on the table. Please provide the bounding box coordinate of the region that can help you answer the "
        "question better."
    )
    answer_request = bench.second_pass(sample, "[0.5, 0.5, 0.6, 0.6]", settings)
    assert (answer_request.id, answer_request.mode, answer_request.settings) == ("gqa/3", "plain", settings)
    assert answer_request.question == (
        "The region [0.5, 0.5, 0.6, 0.6] is shown in the second image. Please answer the question based on the "
        "original image and local detail image. What Is On The Table"
    )
    image, crop = answer_request.images
    assert image.size == (1000, 600) and (_origin(crop), crop.size) == ((438, 238), (224, 224))
    unreadable = bench.second_pass(sample, "I cannot tell", settings)
    assert unreadable.question == (
        "Please answer the question based on the original image and local detail image. What Is On The Table"
    )
    assert [picture.size for picture in unreadable.images] == [(1000, 600), (1000, 600)]
    solver = bench.solver()
    assert isinstance(solver, TwoPass) and not isinstance(VisCoT().solver(), TwoPass)
    assert (solver.first, solver.second) == (bench.first_pass, bench.second_pass)
    _coded(1000, 600).convert("RGBA").save(tmp_path / "rgba.png")
    rgba = replace(sample, images=(ImageRef(path=str(tmp_path / "rgba.png")),))
    precise = bench.second_pass(rgba, "[0.12345, 0.5, 0.6, 0.6]", settings)
    assert precise.question.startswith("The region [0.123, 0.5, 0.6, 0.6] is shown")  # three decimals
    assert [image.mode for image in precise.images] == ["RGB", "RGB"]


def test_viscot_settings_boxes_and_unanswered() -> None:
    from sifeval.viscot import VisCoT

    judge = recorder({})
    bench = VisCoT(judge=judge, box_frame="padded-square")
    assert bench.options() == {"box_frame": "padded-square", "judge": "recorder", "judge_prompt": "viscot-official"}
    assert VisCoT().options() == {"box_frame": "per-axis", "judge": None, "judge_prompt": "viscot-official"}
    again = VisCoT.from_options("two-pass", {"box_frame": "padded-square"})
    assert (again.protocol, again.box_frame) == ("two-pass", "padded-square")
    assert VisCoT.from_options(None, {}).box_frame == "per-axis"
    assert (bench.scoring_workers(), VisCoT().scoring_workers()) == (5, 1)
    sample = _vc("gqa", 0)
    assert bench.truth_boxes(sample, 400, 200) == [pytest.approx((0.25, 0.25, 0.5, 0.75))]
    reply = (
        '<think><area>[{"bbox_2d":[0.25,0.375,0.5,0.625],"depth":0.5}]</area><text>t</text></think><answer>x</answer>'
    )
    (step,) = bench.focus_steps(sample, reply, 400, 200)
    assert step == [(pytest.approx((0.25, 0.25, 0.5, 0.75)), 0.5)]  # read on the padded square
    (as_written,) = VisCoT().focus_steps(sample, reply, 400, 200)
    assert as_written == [(pytest.approx((0.25, 0.375, 0.5, 0.625)), 0.5)]
    error = GenerationError("request", "HTTP 500")
    assert bench.unanswered(sample, error) == ScoredSample(
        sample, None, None, False, 0.0, request_error=error, details={"detection": 0.0}
    )


def test_viscot_figures_and_terms_by_hand() -> None:
    """The headline is the mean of the eleven subsets' answer scores (eval_cot_score.py); the
    detection figure the same over detection; either is NaN while a subset has no sample."""
    from sifeval.viscot import SCORED_SUBSETS, VisCoT

    bench = VisCoT()
    scored = []
    for index, subset in enumerate(SCORED_SUBSETS):
        for number, (score, detection) in enumerate([(1.0, 1.0), (0.5 if index == 0 else 0.0, 0.0)]):
            sample = _vc(subset, number)
            if index == 1 and number == 0:
                sample.metadata["defects"] = ["empty reference answer"]
            scored.append(ScoredSample(sample, "r", "a", True, score, details={"detection": detection}))
    metrics = bench.aggregate(scored)
    assert metrics["answer/" + SCORED_SUBSETS[0]] == 75.0 and metrics["answer/" + SCORED_SUBSETS[1]] == 50.0
    assert metrics["score"] == pytest.approx((75.0 + 10 * 50.0) / 11)
    assert metrics["detection"] == 50.0 and metrics["detection/" + SCORED_SUBSETS[5]] == 50.0
    assert metrics["defective_ground_truth"] == 1.0
    terms = bench.figure_terms(scored)
    first = SCORED_SUBSETS[0]
    assert terms[f"answer/{first}"] == [Term(1.0, [100.0, 50.0], [f"{first}/0", f"{first}/1"])]
    assert terms[f"detection/{first}"] == [Term(1.0, [100.0, 0.0], [f"{first}/0", f"{first}/1"])]
    assert [term.weight for term in terms["score"]] == [pytest.approx(1 / 11)] * 11
    assert [term.weight for term in terms["detection"]] == [pytest.approx(1 / 11)] * 11
    partial = scored[:4]
    assert math.isnan(bench.aggregate(partial)["score"]) and bench.figure_terms(partial)["score"] == []
    assert math.isnan(bench.aggregate(partial)[f"answer/{SCORED_SUBSETS[5]}"])
    assert bench.figure_terms(partial)[f"detection/{SCORED_SUBSETS[5]}"] == []


def test_viscot_small_readers_by_hand() -> None:
    from sifeval.viscot import Record, defects, official_truth, parse_judge_score, parse_padded_box

    def record(
        box: tuple[float, float, float, float], width: int = 301, height: int = 200, answer: str = "a"
    ) -> Record:
        return Record("gqa", 0, 0, "i.jpg", "q", answer, width, height, box)

    # calculation.py L9-23: the shorter side padded by half the difference, floored (101 // 2 = 50).
    assert official_truth(record((10, 20, 30, 40))) == [10, 70, 30, 90]
    assert official_truth(record((10, 20, 30, 40), 200, 301)) == [60, 20, 80, 40]
    assert official_truth(record((10, 20, 30, 40), 200, 200)) == [10, 20, 30, 40]
    assert defects(record((10, 20, 30, 40))) == []
    assert defects(record((30, 20, 30, 40))) == [
        "inverted or empty box [30, 20, 30, 40]: its detection cannot be right"
    ]
    assert defects(record((10, 40, 30, 40))) == [
        "inverted or empty box [10, 40, 30, 40]: its detection cannot be right"
    ]
    assert defects(record((10, -7, 30, 40))) == ["box [10, -7, 30, 40] reaches 7 px outside the 301x200 image"]
    assert defects(record((-3, 20, 30, 40), answer=" ")) == [
        "box [-3, 20, 30, 40] reaches 3 px outside the 301x200 image",
        "empty reference answer",
    ]
    assert defects(record((10, 20, 305, 40))) == ["box [10, 20, 305, 40] reaches 4 px outside the 301x200 image"]
    # calculation.py L37-43: brackets and " ." removed, the first four of ", "-separated numbers.
    assert parse_padded_box("[0.1 ., 0.2, 0.3, 0.4]") == [0.1, 0.2, 0.3, 0.4]
    assert parse_padded_box("[0.1, 0.2, 0.3, 0.4, 0.5]") == [0.1, 0.2, 0.3, 0.4]
    assert parse_padded_box("[0.1, 0.2, 0.3]") is None and parse_padded_box("[a, b, c, d]") is None
    # eval_cot_score.py L49-63: exactly one "score: x", clamped to [0, 1].
    assert parse_judge_score("Score: 0.5") == 0.5 and parse_judge_score("score: 3") == 1.0
    with pytest.raises(ValueError) as raised:
        parse_judge_score("score: 0.5 and score: 1")
    assert str(raised.value) == "the judge reply holds 2 'score: x' (one needed): 'score: 0.5 and score: 1'"
    with pytest.raises(ValueError) as raised:
        parse_judge_score("score: 1.2.3")
    assert str(raised.value) == "the judge's score '1.2.3' is not a number"
    long_reply = "x" * 200
    with pytest.raises(ValueError) as raised:
        parse_judge_score(long_reply)
    assert str(raised.value) == f"the judge reply holds 0 'score: x' (one needed): {'x' * 120!r}"


@pytest.mark.parametrize(
    ("reply", "question", "truth", "reading"),
    [
        # QAAccuracy.update, SAT models/eval_funcs.py L1797-1904 (d5dcb10), rule by rule, worked by hand.
        ("Left ### extra", "q", "", "left"),  # cut at ###, stripped, lower-cased (L1804)
        ("###Assistant: The Chair###Human: x", "q", "", "the chair"),  # opens with its markers (L1806-1818)
        ("###Human: Left", "q", "", "left"),
        ("###Human: The Chair", "q", "", "the chair"),
        ("###Human x y", "q", "", ""),  # no "###Human:" and no assistant turn: nothing
        ("Maybe###Assistant: No", "q", "no", "no"),
        ("yes###Assistant: no", "q", "yes", "yes"),  # already yes or no: kept
        ("no###Assistant: yes", "q", "no", "no"),
        ("Well maybe###Assistant: Yes", "q", "yes", "yes"),
        ("Sure, yes ### more", "q", "yes", "sure, yes"),
        ("###Other", "q", "", ""),
        ("Maybe###Assistant: Yes", "q", "yes", "yes"),  # a yes/no truth: the assistant's turn (L1820-1825)
        ("Sure, yes", "q", "yes", "sure, yes"),
        ("Sure, yes", "q", "left", "sure, yes"),
        ("ight", "q", "", "right"),  # L1827-1828
        ("The ight stand", "q", "", "the night stand"),  # L1830-1831 (see the module docstring)
        ("The night stand", "q", "", "the night stand"),
        ("The red cup is closer to the camera", "Which object is closer to the camera?", "", "cup"),  # L1852-1862
        ("The cups are closer", "Which object is closer to the camera?", "", "cups"),
        ("The lamp is situated closer to us", "Which object is closer to the camera?", "", "lamp"),
        ("The pans are situated closer", "Which object is closer to the camera?", "", "pans"),
        ("The red\tcup is closer", "Which object is closer to the camera?", "", "red\tcup"),  # split on " " only
        ("The red cup is closer to the camera", "Where is the cup?", "", "the red cup is closer to the camera"),
        ("It is moving counter-clockwise slowly", "Is the camera moving left or right?", "", "right"),  # L1864-1875
        ("moving clockwise", "Is the camera moving left or right?", "", "left"),
        ("It is moving  left", "Is the camera moving left or right?", "", ""),  # two spaces: the empty word
        ("It is moving forward", "Is the camera moving left or right?", "", "forward"),
        ("moving", "Is the camera moving left or right?", "", "moving"),  # upstream: IndexError
        ("It is moving forward", "Where is it moving?", "", "it is moving forward"),  # not the camera question
        ("The bed is located to the right", "Considering the relative positions, where?", "", "right"),  # L1877-1884
        ("The bed is located to the left", "Considering the relative positions, where?", "", "left"),
        ("the chair (highlighted by a red box)", "q", "", "the chair"),  # L1886-1887
        ("1. left 2. right", "q", "", "left 2. right"),  # L1892-1893
        ("The cup is located near the sink", "q", "", "near"),  # L1895-1896
        ("The bed is located to the right", "q", "", "to"),  # L1877-1884 needs its question
        ("It is located  near", "q", "", ""),
        ("answer:  left", "q", "", ""),
        ("It is located on the left side", "q", "", "on"),  # L1895 first: L1898-1899 then has nothing to do
        ("is located", "q", "", "is located"),  # upstream: IndexError
        ("The answer: left side", "q", "", "left"),  # L1901-1902
        ("answer:", "q", "", "answer:"),  # upstream: IndexError
    ],
)
def test_sat_official_reading_rule_by_rule(reply: str, question: str, truth: str, reading: str) -> None:
    from sifeval.sat import official_reading

    assert official_reading(reply, question, truth) == reading


def test_sat_scores_by_the_raw_question_and_maps_options_by_text() -> None:
    from sifeval.sat import official_truth, samples_from_row

    row = {"question": "Which object is closer to the camera?", "answers": ["cup", "Yes"], "correct_answer": "cup"}
    copy = samples_from_row(0, row, "official", rotations=[0])[0]
    bench = get_benchmark("sat")
    right = bench.score(copy, "The cup is closer to the camera.")  # the rule for this question reads "cup"
    assert (right.extracted, right.parse_ok, right.score, right.response) == (
        "cup",
        True,
        1.0,
        "The cup is closer to the camera.",
    )
    yes_row = {"question": "Is it on?", "answers": ["yes", "no"], "correct_answer": "yes"}
    yes_copy = samples_from_row(1, yes_row, "official", rotations=[0])[0]
    assert bench.score(yes_copy, "Hmm###Assistant: yes").score == 1.0  # the yes/no fallback, by the truth
    empty = bench.score(copy, "<answer> </answer>")
    assert (empty.extracted, empty.parse_ok, empty.score, empty.response) == (None, False, 0.0, "<answer> </answer>")
    assert bench.mapped(right) and not bench.mapped(replace(right, extracted="bowl"))
    assert bench.option_verdict(copy, "A") == ("cup", 1.0) and bench.option_verdict(copy, "B") == ("yes", 0.0)
    assert official_truth("(Left) ") == "left"
    letters = get_benchmark("sat", "letters")
    lettered = samples_from_row(0, row, "letters", rotations=[0])[0]
    assert letters.option_verdict(lettered, "B") == ("B", 0.0) and letters.option_verdict(lettered, "A") == ("A", 1.0)
    assert letters.mapped(replace(right, extracted="bowl")) and not letters.mapped(replace(right, extracted=None))


def test_sat_rows_that_give_both_forms_of_the_answer_and_samples_without_their_raw_question() -> None:
    from sifeval.sat import samples_from_row

    row = {"question": "Is it left?", "answers": ["left", "right"], "correct_answer": "left", "correct_answer_idx": 1}
    assert samples_from_row(0, row, "official", rotations=[0])[0].target == "left"  # the answer itself first
    bench = get_benchmark("sat")
    bare = Sample("9#r0", "Which object is closer to the camera?", "cup", "depth", choices=("cup", "pan"))
    assert bench.score(bare, "The cup is closer").extracted == "cup"  # the question itself, for its rule


def test_sat_documents_from_lmms_eval() -> None:
    doc = {
        "question": "Is it left?",
        "answers": ["left", "right"],
        "correct_answer_idx": 1,
        "question_type": "obj_movement",
    }
    (sample,) = get_benchmark("sat", "letters").samples_from_lmms_eval({**doc, "image_bytes": ["unread"]}, 7)
    assert (sample.id, sample.target, sample.category, sample.images) == ("7#r0", "B", "obj_movement", ())
    assert sample.choices == ("left", "right")  # lmms-eval sends the images itself
    (official,) = get_benchmark("sat").samples_from_lmms_eval(doc, 7)
    assert official.target == "right" and official.question.startswith("Is it left? Answer the question using")


class ShortJudge(RecordingJudge):
    def score_many(self, items: Sequence[JudgeItem], prompt: Any = None) -> list[JudgeResult]:
        return super().score_many(items, prompt)[:-1]


def test_viscot_a_judge_that_loses_an_answer_or_fails_without_a_reason() -> None:
    from sifeval.viscot import VisCoT

    with pytest.raises(ValueError):  # never a silent 0 for the lost one
        VisCoT(judge=ShortJudge({"a": JudgeResult(1.0, "llm")})).score_many([_vc("gqa", 0), _vc("gqa", 1)], ["a", "a"])
    failed = VisCoT(judge=recorder({"a": JudgeResult(None, "llm")})).score_many([_vc("gqa", 0)], ["a"])
    assert (failed[0].score, failed[0].judge_error) == (None, "judge failure")
    judge = recorder({"a": JudgeResult(1.0, "llm")})
    bare = Sample(
        "vsr/1", "Is it left?", "yes", "vsr", metadata={"width": 10, "height": 10, "truth_padded_px": [0, 0, 5, 5]}
    )
    VisCoT(judge=judge).score_many([bare], ["a"])
    assert judge.asked[0].question == "Is it left?"  # no question line recorded: the question


def test_viscot_messages_loading_and_boxes_in_pixels(tmp_path: Path) -> None:
    from sifeval.viscot import JUDGE_SYSTEM, OFFICIAL_JUDGE, VisCoT

    assert OFFICIAL_JUDGE.messages(JudgeItem("Q?", "ref", "pred")) == [
        {"role": "system", "content": JUDGE_SYSTEM},
        {"role": "user", "content": "\nquestion: Q?\nstandard answer: ref\nmodel's answer: pred\n"},
    ]
    with pytest.raises(FileNotFoundError) as raised:
        VisCoT().load(None)
    assert str(raised.value) == (
        "the Visual-CoT benchmark needs a local folder: viscot_benchmark/benchmark/*.json, benchmark_det/*.jsonl, "
        "and the images extracted from deepcs233/Visual-CoT under it (cot/...)"
    )
    (tmp_path / "benchmark").mkdir()
    with pytest.raises(FileNotFoundError) as raised:
        VisCoT().load(tmp_path)
    assert str(raised.value) == (
        f"{tmp_path}/benchmark holds none of the scored subsets (docvqa, textcap, textvqa, dude, sroie, infographicsvqa, "
        "flickr30k, gqa, openimages, vsr, cub)"
    )
    reply = '<think><area>[{"bbox_2d":[100,50,200,150],"depth":0.5}]</area><text>t</text></think><answer>x</answer>'
    (step,) = VisCoT().focus_steps(_vc("gqa", 0), reply, 400, 200)  # pixels, by the sample's own size
    assert step == [(pytest.approx((0.25, 0.25, 0.5, 0.75)), 0.5)]


def test_viscot_a_sample_without_a_detection_result_is_a_miss() -> None:
    from sifeval.viscot import SCORED_SUBSETS, VisCoT

    scored = [
        ScoredSample(_vc("gqa", 0), "r", "a", True, 1.0),
        ScoredSample(_vc("gqa", 1), "r", "a", True, 1.0, details={"detection": 1.0}),
    ]
    assert VisCoT().aggregate(scored)["detection/gqa"] == 50.0
    assert VisCoT().figure_terms(scored)["detection/gqa"] == [Term(1.0, [0.0, 100.0], ["gqa/0", "gqa/1"])]
    missing = SCORED_SUBSETS[0]  # not gqa
    assert math.isnan(VisCoT().aggregate(scored)[f"detection/{missing}"])
    assert VisCoT().figure_terms(scored)[f"answer/{missing}"] == []


def test_viscot_more_responses_than_samples_is_an_error() -> None:
    from sifeval.viscot import VisCoT

    judge = recorder({"a": JudgeResult(1.0, "llm")})
    with pytest.raises(ValueError) as raised:
        VisCoT(judge=judge).score_many([_vc("gqa", 0)], ["a", "a"])
    assert str(raised.value) == "1 samples but 2 responses to score"
    both = json.dumps({"first_pass": "[0.1, 0.1, 0.2, 0.2]", "answer": "a"})
    with pytest.raises(ValueError) as raised:
        VisCoT("two-pass", judge=judge).score_many([_vc("gqa", 0), _vc("gqa", 1)], [both])
    assert str(raised.value) == "2 samples but 1 responses to score"
