"""How replies of reasoning models are read, in every mode and benchmark (issue 17).

Every expected value here is worked out by hand from the reply and the options; the published
replies of real models are in test_real_replies.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from chat_server import ScriptedChatServer

from sifdata.answers import (
    answer_part,
    answers_agree,
    first_number,
    normalize_answer,
    read_choice,
    read_option,
    reference_number,
    yes_no,
)
from sifeval import get_benchmark
from sifeval.adapters import MultipleChoiceBenchmark
from sifeval.choice_judge import ChoiceItem, ChoiceJudge, choice_messages, parse_choice_reply
from sifeval.runner import summarize
from sifeval.sat import samples_from_row
from sifeval.solvers import Likelihood
from sifeval.types import Sample, ScoredSample
from sifeval.view import view_runs
from sifeval.viscot import detection_right
from sifeval.vstar import sample_from_question
from sifmodel.backends import GenerationRequest, GenerationSettings
from sifmodel.judge import LLMJudge

MODES = ("plain", "sif", "sif-rgb")

# ----------------------------------------------------------------------------- the answer part


@pytest.mark.parametrize(
    ("reply", "part"),
    [
        ("<answer>white</answer>", "white"),
        ("<think>It looks pale.</think>\n<answer>white</answer>", "white"),
        ("<think>x</think><answer> B </answer> trailing", "B"),
        ("<answer>B", "B"),  # the closing tag is optional, as in SIF chains
        ("<ANSWER>yes</Answer>", "yes"),
        ("<answer>A</answer> on second thought <answer>C</answer>", "C"),  # the last one
        ("<answer>A</answer><answer> </answer>", None),  # an empty last answer: none, never the earlier
        ("<think>Counting the cups: 1, 2, 3.</think>\n\nThere are 3 cups.", "There are 3 cups."),
        ("The cups are easy to count.\n</think>\n\n4", "4"),  # the template opened the thinking
        ("<think>The bag is blue, so the answer is A", None),  # cut off while thinking
        ("<think>done</think>", None),  # thought, then said nothing
        ("So the answer is \\boxed{B}.", "B"),
        ("\\boxed{\\text{left}}", "left"),
        ("<think>maybe \\boxed{A}</think> final: \\boxed{\\textbf{C}}", "C"),
        ("<answer>\\boxed{2}</answer>", "2"),
        ("\\boxed{f(x)}", "f(x)"),  # braces matched
        ("The answer is \\boxed{B", "B"),  # an unclosed box: read to the end
        ("The red one.", "The red one."),
        ("   ", None),
    ],
)
def test_answer_part(reply: str, part: str | None) -> None:
    assert answer_part(reply) == part


def test_punctuation_becomes_space_so_glued_answers_are_read() -> None:
    """Each of these failed when punctuation was deleted ("answerwhiteanswer")."""
    assert normalize_answer("<answer>white</answer>") == "answer white answer"
    assert read_choice("<answer>white</answer>", ("black", "white")) == "B"
    assert read_choice("Answer:white", ("black", "white")) == "B"
    assert yes_no("<answer>Yes</answer>") == "yes"
    assert answers_agree("<answer>white</answer>", "white")
    assert first_number("<answer>three</answer>") == 3.0
    # and numbers keep their sign, decimals and thousands
    assert [reference_number(r) for r in ("-1.5", "(3)", "3.", "three", "3 cups")] == [-1.5, 3.0, 3.0, 3.0, None]
    assert reference_number("1,000") == 1000.0 and first_number("about 1,000 birds") == 1000.0
    assert normalize_answer("The cat, a dog and an owl.") == "cat dog and owl"


# ----------------------------------------------------------------------------- options as sentences

BAG = ("The color of the bag is blue.", "The color of the bag is red.", "The color of the bag is white.")


@pytest.mark.parametrize(
    ("reply", "option", "how"),
    [
        ("Blue", "A", "content"),
        ("blue bag", "A", "content"),
        ("It is red.", "B", "content"),
        ("The color of the bag is white.", "C", "text"),
        ("the colour is blue or red", None, "none"),  # two options' words: no commitment
        ("black", None, "none"),
        ("(C) The color of the bag is white.", "C", "letter"),
    ],
)
def test_sentence_options_are_read_by_their_distinguishing_words(reply: str, option: str | None, how: str) -> None:
    reading = read_option(reply, BAG)
    assert (reading.option, reading.how) == (option, how)
    if how != "letter":
        assert reading.by_text == option and reading.letter is None


def test_letters_are_the_options_there_are() -> None:
    assert read_option("E", ("x", "y")).option is None  # two options: A and B only
    assert read_option("(B)", ()).option == "B"  # options unknown: any of A-H
    assert read_option("blue", ()).option is None
    assert read_option("(c)", ()).option == "C"


def test_options_set_apart_only_by_a_combination_of_words() -> None:
    # A real reply (DeepEyes ds4 step 72, direct_attributes line 107): no word is option A's
    # alone, but "red" and "white" together are.
    buoy = tuple(f"The color of the life buoy is {c}." for c in ("red and white", "blue and white", "yellow and red"))
    assert read_option("The life buoy is red and white.", buoy).option == "A"
    assert read_option("The life buoy is white.", buoy).option is None  # A's and B's "white"
    assert read_option("red, white and blue", buoy).option is None  # A and B both stated
    assert read_option("red, white", buoy).option == "A"  # exactly its varying words
    assert read_option("red, white and blue", buoy).how == "none"
    shoe = ("The color of the bag is blue.", "The color of the bag is red.", "The color of the shoe is red.")
    assert read_option("blue", shoe).option == "A"  # its distinguishing word is enough
    assert read_option("red", shoe).option is None


def test_an_option_inside_a_longer_stated_option_does_not_count() -> None:
    assert read_choice("It is black and white.", ("white", "black and white")) == "B"
    # "white" said on its own too: two options stated, no commitment
    assert read_choice("white, not black and white", ("white", "black and white")) is None
    assert read_option("white, not black and white", ("white", "black and white")).how == "none"
    assert read_choice("It is white and black.", ("white", "white and black")) == "B"  # inside, at its start
    # An option whose words another option has (no distinguishing word) is never read by content.
    assert read_choice("blue", ("The bag is blue", "The bag is not blue")) is None
    assert read_choice("not blue", ("The bag is blue", "The bag is not blue")) == "B"


def test_letter_and_text_conflicts_are_scored_by_the_letter_and_counted() -> None:
    reading = read_option("A. The color of the bag is red.", BAG)
    assert (reading.option, reading.letter, reading.by_text, reading.conflicting) == ("A", "A", "B", True)
    assert not read_option("A. The color of the bag is blue.", BAG).conflicting
    assert not read_option("A", BAG).conflicting


# ----------------------------------------------------------------------------- every benchmark, every mode


def _vstar_sample() -> Sample:
    text = (
        "What is the color of the bag?\n(A) The color of the bag is blue.\n(B) The color of the bag is red.\n"
        "(C) The color of the bag is white.\nAnswer with the option's letter from the given choices directly."
    )
    return sample_from_question({"text": text, "label": "A", "category": "direct_attributes", "question_id": 7}, ())


def _sat_sample(protocol: str) -> Sample:
    row = {"question": "Which object is closer?", "answers": ["lamp", "cup"], "correct_answer": "lamp"}
    return samples_from_row(0, {**row, "question_type": "goal_aim"}, protocol, rotations=(0,))[0]


REPLIES = (
    "<think>The bag in the corner is clearly blue.</think>\n<answer>A</answer>",
    "<think>I see a blue bag.</think><answer>Blue</answer>",
    "<answer>The color of the bag is blue.</answer>",
    "The bag is on the chair.</think>\n\n\\boxed{A}",
    '<think><area>[{"bbox_2d":[0.1,0.1,0.4,0.4],"depth":0.3}]</area><text>A blue bag.</text></think><answer>A',
)


@pytest.mark.parametrize("reply", REPLIES)
def test_vstar_reads_the_same_answer_in_every_mode(reply: str) -> None:
    bench = get_benchmark("vstar")
    scored = [bench.score(_vstar_sample(), reply, mode) for mode in MODES]
    assert {(s.extracted, s.score, s.parse_ok) for s in scored} == {("A", 1.0, True)}


@pytest.mark.parametrize("mode", MODES)
def test_cvbench_sat_spatialbench_read_the_answer_part_in_every_mode(mode: str) -> None:
    cv = get_benchmark("cvbench")
    sample = Sample("1", "q", "B", "Count", choices=("2", "3", "4"), metadata={"source": "COCO", "task": "Count"})
    assert cv.score(sample, "<think>I count 2 chairs, then a 3rd.</think><answer>3</answer>", mode).extracted == "B"
    assert cv.score(sample, "<think>2 or 3 or 4?</think>\\boxed{(B)}", mode).score == 1.0
    official = get_benchmark("sat")
    right = official.score(_sat_sample("official"), "<think>Is it the cup? No.</think><answer>Lamp</answer>", mode)
    assert (right.extracted, right.score) == ("lamp", 1.0)  # QAAccuracy lower-cases the answer part
    letters = get_benchmark("sat", "letters")
    assert letters.score(_sat_sample("letters"), "<answer>lamp</answer>", mode).extracted == "A"
    spatial = get_benchmark("spatialbench")
    existence = Sample("existence/0", "Is there a cup?", "Yes", "existence", metadata={"position": 0, "pair": 0})
    # Upstream's `gt in response` over the whole reply would credit the "Yes" that was only considered.
    assert spatial.score(existence, "<think>Yes? Looking again, no.</think><answer>No</answer>", mode).score == 0.0
    assert spatial.score(existence, "<think>A cup, on the left.</think><answer>Yes.</answer>", mode).score == 1.0
    counting = Sample("counting/0", "How many?", "3", "counting", metadata={"position": 0, "pair": 0})
    read = spatial.score(counting, "<think>1 cup, then 2 more.</think>\n<answer>three</answer>", mode)
    assert read.details["ape"] == 0.0  # "three" is 3; the thinking's "1" is not read


def _viscot_sample() -> Sample:
    # 200 x 100 image: padded square of side 200, the image 50 px down; truth [50, 75, 100, 100] on it.
    metadata = {"width": 200, "height": 100, "truth_padded_px": [50, 75, 100, 100], "defects": []}
    return Sample("gqa/1", "What color?", "red", "gqa", metadata=metadata)


GOOD = '{"bbox_2d":[0.250,0.250,0.500,0.500],"depth":0.5}'  # per-axis: exactly the truth


def _area_chain(*areas: str, answer: str = "red") -> str:
    steps = "".join(f"<area>{area}</area><text>look</text>" for area in areas)
    return f"<think>{steps}</think><answer>{answer}</answer>"


@pytest.mark.parametrize(
    ("last_area", "right"),
    [
        (f"[{GOOD}]", True),
        ("[]", False),  # empty: no box, never the earlier good one
        ('[{"bbox_2d":[0.300,0.250,0.300,0.500],"depth":0.5}]', False),  # zero width
        ('[{"bbox_2d":[0.500,0.500,0.250,0.250],"depth":0.5}]', False),  # inverted: as written, IoU 0
        ('[{"bbox_2d":[50,25,100,50],"depth":0.5}]', False),  # pixels: upstream multiplies them by the side
        (f'[{GOOD},{{"bbox_2d":[0.5,0.5,0.4,0.4],"depth":0.5}}]', False),  # one of its boxes is degenerate
        ("not json at all", False),
    ],
)
@pytest.mark.parametrize("mode", MODES)
def test_viscot_detection_is_the_last_area_as_written(last_area: str, right: bool, mode: str) -> None:
    bench = get_benchmark("viscot")
    from sifmodel.judge import MatchJudge

    bench.judge = MatchJudge()
    scored = bench.score(_viscot_sample(), _area_chain(f"[{GOOD}]", last_area), mode)
    assert scored.details["detection"] == float(right)
    assert scored.score == 1.0  # the answer is read whatever the box


def test_viscot_last_area_degenerate_boxes_are_never_repaired_by_a_union() -> None:
    bench = get_benchmark("viscot")
    sample = _viscot_sample()
    inside = ("[0.35,0.3,0.35,0.4]", "[0.3,0.3,0.4,0.3]", "[0.4,0.4,0.3,0.3]")  # zero width, zero height, inverted
    for box in inside:  # inside GOOD: a union would hide them and be right
        chain = _area_chain(f'[{GOOD},{{"bbox_2d":{box},"depth":0.5}}]')
        assert bench.predicted_box(sample, chain) is not None
        assert not detection_right(sample, bench.predicted_box(sample, chain)), box
    two = '[{"bbox_2d":[0.25,0.25,0.4,0.5],"depth":0.5},{"bbox_2d":[0.3,0.25,0.5,0.5],"depth":0.5}]'
    union = bench.predicted_box(sample, _area_chain(two))
    assert union == pytest.approx([0.25, 0.375, 0.5, 0.5]) and detection_right(sample, union)  # per-axis -> padded
    assert bench.predicted_box(sample, "<answer>red</answer>") is None  # no area at all


def test_viscot_last_area_as_written_in_the_padded_square_frame() -> None:
    bench = get_benchmark("viscot")
    bench.box_frame = "padded-square"
    sample = _viscot_sample()
    padded_good = '[{"bbox_2d":[0.250,0.375,0.500,0.500],"depth":0.5}]'
    assert bench.predicted_box(sample, _area_chain(padded_good)) == [0.25, 0.375, 0.5, 0.5]
    assert bench.predicted_box(sample, _area_chain(padded_good, "[]")) is None
    inverted = bench.predicted_box(sample, _area_chain(padded_good, '[{"bbox_2d":[0.5,0.5,0.25,0.375],"depth":0}]'))
    assert inverted == [0.5, 0.5, 0.25, 0.375]  # kept inverted; IoU 0
    assert not detection_right(sample, inverted)
    past = bench.predicted_box(sample, _area_chain('[{"bbox_2d":[0.25,0.375,1.2,0.5],"depth":0}]'))
    assert past == [0.25, 0.375, 1.2, 0.5]  # past the edge: as written, never clipped


# ----------------------------------------------------------------------------- likelihood near-ties


def test_likelihood_near_ties_are_rescored_as_the_run_chose() -> None:
    bench = get_benchmark("vstar", "likelihood")
    sample = Sample("1", "q", "B", "direct_attributes", choices=("blue", "red"), metadata={"question_core": "q"})
    losses = [0.7000001, 0.7]  # 1e-7 apart: rounded to 6 decimals they tie and the first would win
    solver = Likelihood(lambda s, settings: (GenerationRequest(s.id, "q", ()), list(s.choices)))
    steps = solver.steps(sample, "plain", GenerationSettings())
    next(steps)
    with pytest.raises(StopIteration) as stop:
        steps.send(losses)
    response = stop.value.value.text
    run = bench.score(sample, response)
    assert run.extracted == "B" and run.score == 1.0
    again = bench.score(sample, run.response or "")  # what `sifeval rescore` does with the journal line
    assert (again.extracted, again.response) == (run.extracted, run.response)
    assert json.loads(response)["option_losses"] == losses


# ----------------------------------------------------------------------------- counted in the results


def test_conflicts_are_counted_in_results_and_filtered_in_the_viewer(tmp_path: Path) -> None:
    bench = get_benchmark("vstar")
    sample = _vstar_sample()
    replies = ["A. The color of the bag is red.", "<answer>(B) The color of the bag is red.</answer>", "Blue"]
    scored = [
        bench.score(Sample(f"{i}", sample.question, "A", sample.category, choices=sample.choices), r, "plain")
        for i, r in enumerate(replies)
    ]
    assert [s.score for s in scored] == [1.0, 0.0, 1.0]  # the letter decides
    result = summarize(bench, scored, "plain", None, {}, None)
    assert result.conflicting_replies == 1 and result.to_json()["conflicting_replies"] == 1
    assert any("letter and another option's text" in note for note in result.notes)
    assert scored[0].details == {"read_by": "letter", "conflicting_option": "B"}
    assert scored[2].details == {"read_by": "content"}
    # the viewer's "conflict" filter
    run = tmp_path / "run"
    run.mkdir()
    from sifeval.runner import RUN, SAMPLES, scored_to_json, write_results

    (run / RUN).write_text(json.dumps({"benchmark": "vstar", "protocol": "generation", "options": {}, "mode": "plain"}))
    (run / SAMPLES).write_text("".join(json.dumps(scored_to_json(s)) + "\n" for s in scored))
    write_results(run, result)
    view_runs([run], tmp_path / "site", progress=False)
    manifest = (tmp_path / "site" / "data" / "manifest.js").read_text()
    assert manifest.count("letter and text name different options") == 1 and '"conflict"' in manifest


# ----------------------------------------------------------------------------- the choice judge


def test_choice_judge_prompt_and_reply() -> None:
    messages = choice_messages(ChoiceItem("What color?", ("blue", "red"), "navy"))
    text = messages[0]["content"]
    assert "Options:\nA. blue\nB. red\n" in text and "Answer: navy" in text and "(A, B)" in text
    assert parse_choice_reply("B", 2) == "B" and parse_choice_reply("**Z**", 2) == "Z"
    assert parse_choice_reply("The answer is (A).", 2) == "A"
    for reply in ("C", "I cannot tell", ""):
        with pytest.raises(ValueError, match=f"names no option: {reply!r}"):
            parse_choice_reply(reply, 2)


def _choice_bench(server: ScriptedChatServer, cache: Path) -> MultipleChoiceBenchmark:
    bench = get_benchmark("vstar")
    assert isinstance(bench, MultipleChoiceBenchmark)
    bench.choice_judge = ChoiceJudge(LLMJudge("scripted-judge", server.base_url, concurrency=4, cache_dir=cache))
    return bench


def test_choice_judge_is_called_only_for_unmapped_replies_cached_and_recorded(tmp_path: Path) -> None:
    samples = [
        Sample(f"{i}", "q", "A", "direct_attributes", choices=BAG[:2], metadata={"question_core": "What color?"})
        for i in range(4)
    ]
    replies = ["<answer>A</answer>", "navy-ish", "a dark shade", "no idea at all"]
    with ScriptedChatServer() as server:
        server.script("Answer: navy-ish", ["text:A"])
        server.script("Answer: a dark shade", ["text:Z"])
        server.script("Answer: no idea at all", ["text:C"])  # not an option of two: a failure
        bench = _choice_bench(server, tmp_path / "cache")
        assert bench.scoring_workers() == 4  # judged replies are scored concurrently
        scored = bench.score_many(samples, replies, "plain")
        asked = [m["messages"][0] for m in server.requests]
        assert len(asked) == 3 and not any("Answer: A\n" in m["content"] for m in asked)  # rules first
        assert {m["role"] for m in asked} == {"user"}
        assert all(m["content"].count("Question: What color?\nOptions:\nA. The color") == 1 for m in asked)
    assert [s.extracted for s in scored] == ["A", "A", None, None]
    assert [s.score for s in scored] == [1.0, 1.0, 0.0, None]  # a judge failure is never a 0
    assert scored[1].details == {"read_by": "choice judge", "choice_judge": "A"}
    assert scored[2].details["choice_judge"] == "none" and not scored[2].parse_ok
    assert scored[3].judge_error and "choice judge" in scored[3].judge_error and "'C'" in scored[3].judge_error
    assert scored[3].details["choice_judge"] == "failed"
    result = summarize(bench, scored, "plain", None, {}, None)
    assert (result.choice_judge_calls, result.judge_failures, result.parse_failures) == (3, 1, 1)
    assert result.protocol_options == {"choice_judge": "scripted-judge"} and not result.complete
    assert result.metrics["score"] == pytest.approx(100 * 2 / 3)  # the failure is left out, with a note
    assert any("not the official protocol" in note for note in result.notes)
    # A second judge over the same cache asks nothing it has answered (the failure is asked again).
    with ScriptedChatServer() as server:
        server.script("Answer: no idea at all", ["text:B"])
        again = _choice_bench(server, tmp_path / "cache").score_many(samples, replies, "plain")
        assert len(server.requests) == 1
    assert [s.score for s in again] == [1.0, 1.0, 0.0, 0.0]


def test_a_run_read_again_keeps_its_choice_judge() -> None:
    cls = type(get_benchmark("vstar"))
    again = cls.from_options("likelihood", {"choice_judge": "j-model"})
    assert (again.protocol, again.options()) == ("likelihood", {"choice_judge": "j-model"})
    assert cls.from_options(None, {}).options() == {} and get_benchmark("vstar").scoring_workers() == 1


def test_choice_judge_maps_sat_official_readings_to_option_texts(tmp_path: Path) -> None:
    bench = get_benchmark("sat")
    assert isinstance(bench, MultipleChoiceBenchmark)
    sample = _sat_sample("official")
    with ScriptedChatServer() as server:
        server.script("the light on the table", ["text:A"])
        bench.choice_judge = ChoiceJudge(LLMJudge("j", server.base_url, cache_dir=tmp_path / "c"))
        mapped = bench.score(sample, "<answer>lamp</answer>")
        judged = bench.score(sample, "<answer>the light on the table</answer>")
        assert len(server.requests) == 1  # "lamp" is an option's text: the official rule maps it
        prompt = server.requests[0]["messages"][0]["content"]
        assert "Question: Which object is closer?\nOptions:\nA. lamp\nB. cup\n" in prompt
    assert (mapped.extracted, mapped.score) == ("lamp", 1.0)
    assert (judged.extracted, judged.score, judged.details["read_by"]) == ("lamp", 1.0, "choice judge")


def test_scored_sample_details_survive_the_journal() -> None:
    scored = get_benchmark("vstar").score(_vstar_sample(), "A. The color of the bag is red.")
    from sifeval.runner import scored_from_json, scored_to_json

    again: ScoredSample = scored_from_json(json.loads(json.dumps(scored_to_json(scored))))
    assert again.details == {"read_by": "letter", "conflicting_option": "B"}


def test_choice_judge_end_to_end_run_rescore_and_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from sifeval.cli import app
    from sifeval.mirrors import build_all

    vstar = build_all(tmp_path / "mirrors")["vstar"]
    targets = [json.loads(line)["label"] for line in (vstar / "test_questions.jsonl").read_text().splitlines()]
    cli = CliRunner()
    out = tmp_path / "run"
    with ScriptedChatServer(default="text:<think>Hard to say.</think><answer>the colour of the sky</answer>") as server:
        server.script("You match the answer", ["text:A"] * len(targets))
        monkeypatch.setenv("SIF_JUDGE_BASE_URL", server.base_url)
        monkeypatch.setenv("SIF_JUDGE_MODEL", "scripted-choice-judge")
        args = ["run", "--no-progress", "--bench", "vstar", "--data", str(vstar), "--mode", "plain", "--no-cache"]
        result = cli.invoke(
            app, [*args, "--model", f"openai:m@{server.base_url}", "--out", str(out), "--choice-judge", "llm"]
        )
        assert result.exit_code == 0, result.output
        judged = sum("You match the answer" in json.dumps(r["messages"]) for r in server.requests)
        assert judged == len(targets)
        results = json.loads((out / "results.json").read_text())
        expected = 100 * sum(t == "A" for t in targets) / len(targets)  # every reply mapped to A by the judge
        assert results["metrics"]["score"] == pytest.approx(expected) and 0 < expected < 100
        assert results["choice_judge_calls"] == len(targets) and results["parse_failures"] == 0
        assert json.loads((out / "run.json").read_text())["options"] == {"choice_judge": "scripted-choice-judge"}
        # The re-score uses the run's judge, whose verdicts are cached: the judge is asked nothing.
        before = len(server.requests)
        assert cli.invoke(app, ["rescore", str(out)]).exit_code == 0
        assert len(server.requests) == before
        assert json.loads((out / "results.json").read_text())["metrics"]["score"] == pytest.approx(expected)
        report = cli.invoke(app, ["report", str(out), "--no-published"]).output
        assert "differs from the official protocol: choice judge scripted-choice-judge" in report
        # A judge other than the run's is refused unless asked for; off is the official protocol.
        monkeypatch.setenv("SIF_JUDGE_MODEL", "another-judge")
        refused = cli.invoke(app, ["rescore", str(out)])
        assert refused.exit_code == 1 and "this run's choice judge was scripted-choice-judge" in refused.output
    official = cli.invoke(app, ["rescore", str(out), "--choice-judge", "off"])
    assert official.exit_code == 0, official.output
    rescored = json.loads((out / "results.json").read_text())
    assert rescored["metrics"]["score"] == 0.0 and rescored["parse_failures"] == len(targets)
    assert rescored["protocol_options"] == {} and rescored["choice_judge_calls"] == 0


def test_choice_judge_mistakes_get_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from sifeval.cli import app

    cli = CliRunner()
    base = ["run", "--model", "openai:m@http://127.0.0.1:9/v1", "--out", str(tmp_path / "r"), "--choice-judge"]
    monkeypatch.delenv("SIF_JUDGE_BASE_URL", raising=False)
    monkeypatch.delenv("SIF_JUDGE_MODEL", raising=False)
    missing = cli.invoke(app, [*base, "llm", "--bench", "cvbench"])
    assert missing.exit_code == 1 and "SIF_JUDGE_BASE_URL" in missing.output and "Traceback" not in missing.output
    wrong = cli.invoke(app, [*base, "llm", "--bench", "spatialbench"])
    assert wrong.exit_code == 1 and "multiple-choice benchmarks" in wrong.output
    typo = cli.invoke(app, [*base, "gpt", "--bench", "cvbench"])
    assert typo.exit_code == 1 and "--choice-judge takes off or llm" in typo.output
    assert not (tmp_path / "r").exists()  # nothing left behind to block the corrected command
