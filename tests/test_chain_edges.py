"""The chain parser at its edges, every expectation written out by hand (issue 23).

Strict mode: the whole message of each violation (position, line, column and reason), since a
user reads that message to find the fault. Lenient mode: the exact boxes, depths, steps and
``issues`` for each way a model writes a box, since evaluation scores what it reads.
"""

from __future__ import annotations

import math
import pickle

import pytest

from sifdata import ChainError, format_chain, parse_chain
from sifdata.chain import WrittenArea, format_area, read_areas
from sifdata.schema import Chain, Focus, Text

AREA = '<area>[{"bbox_2d":[0.1,0.1,0.5,0.5],"depth":0.4}]</area>'
PAIR = AREA + "<text>t</text>"


def strict_message(text: str) -> str:
    with pytest.raises(ChainError) as raised:
        parse_chain(text)
    return str(raised.value)


def at(text: str, marker: str, reason: str) -> str:
    """The message for a violation at the first ``marker`` of a one-line ``text``."""
    position = text.index(marker)
    return f"at character {position} (line 1, column {position + 1}): {reason}"


# ----------------------------------------------------------------------------- strict


@pytest.mark.parametrize(
    ("text", "marker", "reason"),
    [
        ("<think> stray <area>", "stray", "expected <area>, found text outside tags"),
        (f"<think>{PAIR} stray {PAIR}</think><answer>a</answer>", "stray", "expected <area>, found text outside tags"),
        (
            f"<think>{AREA} stray <text>t</text></think><answer>a</answer>",
            "stray",
            "expected <text>, found text outside tags",
        ),
        (f"<think>{PAIR} stray </think><answer>a</answer>", "stray", "expected </think>, found text outside tags"),
        (f"<think>{PAIR}</think> stray <answer>a</answer>", "stray", "expected <answer>, found text outside tags"),
        ("<think> stray </think><answer>a</answer>", "stray", "expected <area>, found text outside tags"),
        ("<think></think><answer>a</answer>", "</think>", "think needs at least one area/text pair"),
        (f"<think>{AREA} stray", "stray", "expected <text>, found end of text"),
        (f"<think>{AREA}<text> </text></think><answer>a</answer>", " </text>", "text step is empty"),
        (f"<think>{PAIR}</think><answer> </answer>", " </answer>", "answer is empty"),
        (f"<think>{PAIR}</think><answer>a</answer> more", "more", "content after </answer>"),
    ],
)
def test_each_structural_violation_by_its_whole_message(text: str, marker: str, reason: str) -> None:
    assert strict_message(text) == at(text, marker, reason)


def test_an_unclosed_area_is_reported_at_the_end_of_the_text() -> None:
    text = "<think><area>[1"
    assert (
        strict_message(text)
        == f"at character {len(text)} (line 1, column {len(text) + 1}): expected </area>, found end of text"
    )


def test_line_and_column_count_a_leading_newline() -> None:
    text = "\n<think> stray"  # "s" at character 9, the only newline at character 0
    assert strict_message(text) == "at character 9 (line 2, column 9): expected <area>, found end of text"


@pytest.mark.parametrize(
    ("content", "marker", "reason"),
    [
        ('[{"bbox_2d":[0.1,0.1,0.5,0.5],"depth":0.4}, 5]', None, "area box 1 must be an object"),
        (
            '[{"bbox":[0.1,0.1,0.5,0.5],"depth":0.4}]',
            None,
            "area box 0 must have exactly bbox_2d and depth (missing bbox_2d; unknown bbox)",
        ),
        ("[{}]", None, "area box 0 must have exactly bbox_2d and depth (missing bbox_2d, depth)"),
        (
            '[{"bbox_2d":[0.1,0.1,0.5,0.5],"depth":0.4,"b":1,"a":2}]',
            None,
            "area box 0 must have exactly bbox_2d and depth (unknown a, b)",
        ),
        ('[{"bbox_2d":[0.1,0.1,0.5],"depth":0.4}]', None, "area box 0: bbox_2d must be a list of 4 numbers"),
        (
            '[{"bbox_2d":[0.5,0.1,0.5,0.5],"depth":0.4}]',
            None,
            "area box 0: bbox_2d a box needs x1 < x2 and y1 < y2, got [0.5, 0.1, 0.5, 0.5]",
        ),
        (
            '[{"bbox_2d":[0.1,0.5,0.5,0.5],"depth":0.4}]',
            None,
            "area box 0: bbox_2d a box needs x1 < x2 and y1 < y2, got [0.1, 0.5, 0.5, 0.5]",
        ),
        (
            '[{"bbox_2d":[0.1,0.1,1.5,0.5],"depth":0.4}]',
            None,
            "area box 0: bbox_2d coordinates must lie in [0, 1], got [0.1, 0.1, 1.5, 0.5]",
        ),
        (
            '[{"bbox_2d":[0.1,0.1,0.5,1.5],"depth":0.4}]',
            None,
            "area box 0: bbox_2d coordinates must lie in [0, 1], got [0.1, 0.1, 0.5, 1.5]",
        ),
        (
            '[{"bbox_2d":[0.1,0.1,0.5,0.5],"depth":"0.4"}]',
            None,
            "area box 0: depth must be a number in [0, 1], got '0.4'",
        ),
        ('{"bbox_2d":[0.1,0.1,0.5,0.5],"depth":0.4}', None, "area must hold a non-empty JSON list of boxes"),
        ('[{"bbox_2d":[0.1,0.1,0.5,0.5],"depth":NaN}]', None, "area: NaN is not a number the grammar allows"),
        ('[{"bbox_2d":[0.1,0.1,0.5,0.5],"depth":4E-1}]', "4E-1", "area: number 4E-1 uses exponent notation"),
        # The 3-decimal number before it is allowed; the first number with 4 decimals is the fault.
        (
            '[{"bbox_2d":[0.123,0.1,0.5,0.5],"depth":0.4567}]',
            "0.4567",
            "area: number 0.4567 has 4 decimals (at most 3)",
        ),
        ('[{"bbox_2d":[0.1,0.1,0.5,0.5],"depth":}]', "}]", "area is not valid JSON: Expecting value"),
    ],
)
def test_each_area_violation_by_its_whole_message(content: str, marker: str | None, reason: str) -> None:
    text = f"<think><area>{content}</area><text>t</text></think><answer>a</answer>"
    start = len("<think><area>")
    position = start if marker is None else start + content.index(marker)
    assert strict_message(text) == f"at character {position} (line 1, column {position + 1}): {reason}"


def test_the_edges_of_the_unit_square_and_of_depth_are_allowed() -> None:
    text = '<think><area>[{"bbox_2d":[0,0,1,1],"depth":0},{"bbox_2d":[0.5,0.5,1,1],"depth":1}]</area><text>t</text></think><answer>a</answer>'
    chain = parse_chain(text)
    assert chain.focus_steps[0].boxes == [(0.0, 0.0, 1.0, 1.0), (0.5, 0.5, 1.0, 1.0)]
    assert chain.focus_steps[0].depths == [0.0, 1.0]


def test_a_parsed_chain_is_the_model_its_fields_build() -> None:
    """The parser builds its models without pydantic's validation (a hot path); what it builds must
    be indistinguishable from the validated models: equal, the same fields set, the same dump,
    and surviving a pickle and a copy."""
    chain = parse_chain(f"<think>{PAIR}</think><answer>a</answer>")
    built = Chain(steps=[Focus(boxes=[(0.1, 0.1, 0.5, 0.5)], depths=[0.4]), Text(text="t")], answer="a", issues=[])
    assert chain == built
    assert chain.model_fields_set == built.model_fields_set == {"steps", "answer", "issues"}
    assert [step.model_fields_set for step in chain.steps] == [{"boxes", "depths"}, {"text"}]
    assert chain.model_dump(exclude_unset=True) == built.model_dump(exclude_unset=True)
    assert chain.steps[1].model_dump(exclude_unset=True) == {"text": "t"}
    assert pickle.loads(pickle.dumps(chain)) == built
    assert chain.model_copy() == built
    assert chain.steps[0].__pydantic_private__ is None and chain.steps[1].__pydantic_private__ is None
    assert chain.__pydantic_private__ is None


# ----------------------------------------------------------------------------- lenient


def lenient(text: str, width: int | None = None, height: int | None = None) -> Chain:
    return parse_chain(text, strict=False, width=width, height=height)


def in_area(content: str) -> str:
    """``content`` as the only area of a chain whose other parts are strict."""
    return f"<think><area>{content}</area><text>t</text></think><answer>A</answer>"


def area_reason(content: str) -> str:
    """Why strict mode refuses ``in_area(content)`` (checked by its own strict tests above)."""
    with pytest.raises(ChainError) as raised:
        parse_chain(in_area(content))
    return f"not strict: {raised.value}"


def test_a_lenient_chain_keeps_its_text_steps_and_the_strict_reason() -> None:
    text = (
        '<think><area>[{"depth": 0.25, "bbox_2d": [0.1, 0.2, 0.3, 0.4]}]</area><TEXT>  Look  </TEXT>'
        "</think><answer>A</answer>"
    )
    chain = lenient(text)
    assert chain.steps == [Focus(boxes=[(0.1, 0.2, 0.3, 0.4)], depths=[0.25]), Text(text="Look")]
    assert chain.answer == "A"
    assert chain.issues == ["not strict: " + at(text, "<TEXT>", "expected <text>, found text outside tags")]


@pytest.mark.parametrize(
    ("content", "boxes", "depths"),
    [
        # Python literals, depth written before the box, the box under "bbox" as a tuple.
        ("[{'depth': 0.25, 'bbox': (0.1, 0.2, 0.3, 0.4)}]", [(0.1, 0.2, 0.3, 0.4)], [0.25]),
        # One object, not a list, depth first.
        ('{"depth": 0.75, "bbox_2d": [0.5, 0.5, 0.9, 0.9]}', [(0.5, 0.5, 0.9, 0.9)], [0.75]),
        # A bare Python list of four numbers without leading zeros (no regular expression reads ".1").
        ("[.1, .2, .3, .4]", [(0.1, 0.2, 0.3, 0.4)], [None]),
        # Prose: the box and its depth named in words.
        ("bbox: [0.1, 0.2, 0.3, 0.4], depth: 0.3", [(0.1, 0.2, 0.3, 0.4)], [0.3]),
    ],
)
def test_each_way_of_writing_a_box_is_read(content: str, boxes: list, depths: list) -> None:
    chain = lenient(in_area(content))
    assert chain.focus_steps == [Focus(boxes=boxes, depths=depths)]
    assert chain.issues == [area_reason(content)]


@pytest.mark.parametrize(
    ("content", "boxes", "depths", "issues"),
    [
        # Three numbers in a list are no box at all, not an unreadable one.
        ("[.1, .2, .3]", [], [], ["area without a readable box"]),
        ("5", [], [], ["area without a readable box"]),
        ('[{"bbox_2d":[0.1,0.2,0.3,0.4],"depth":NaN}]', [(0.1, 0.2, 0.3, 0.4)], [None], []),
        ('[{"bbox_2d":[0.1,0.2,0.3,0.4],"depth":"nan"}]', [(0.1, 0.2, 0.3, 0.4)], [None], []),
        (
            '[{"bbox_2d":["inf",0.2,0.3,0.4],"depth":0.5}]',
            [],
            [],
            ["unreadable box ['inf', 0.2, 0.3, 0.4]", "area without a readable box"],
        ),
        (
            '[{"bbox_2d":[0.1,0.2,0.3,0.4],"depth":0.0},{"bbox_2d":[0.1,0.2,0.3,0.4],"depth":1.0},'
            '{"bbox_2d":[0.1,0.2,0.3,0.4],"depth":1.5}]',
            [(0.1, 0.2, 0.3, 0.4)] * 3,
            [0.0, 1.0, None],
            ["depth 1.5 outside [0, 1] dropped"],
        ),
        (
            '[{"bbox_2d":[1,2]},{"bbox_2d":[0.1,0.2,0.3,0.4],"depth":0.5}]',
            [(0.1, 0.2, 0.3, 0.4)],
            [0.5],
            ["unreadable box [1, 2]"],
        ),
        ("[0.1, 0.5, 0.3, 0.5]", [], [], ["empty box [0.1, 0.5, 0.3, 0.5] dropped", "area without a readable box"]),
        ("[0.3, 0.1, 0.3, 0.5]", [], [], ["empty box [0.3, 0.1, 0.3, 0.5] dropped", "area without a readable box"]),
        ("[-0.1, 0.2, 0.3, 0.4]", [(0.0, 0.2, 0.3, 0.4)], [None], ["box clipped to the image"]),
        ("[0.1, 0.6, 0.5, 0.9]", [(0.1, 0.6, 0.5, 0.9)], [None], []),
        ("[0.6, 0.1, 0.9, 0.5]", [(0.6, 0.1, 0.9, 0.5)], [None], []),
        ("[0, 0, 1, 1]", [(0.0, 0.0, 1.0, 1.0)], [None], []),
    ],
)
def test_what_lenient_mode_forgives_and_says(content: str, boxes: list, depths: list, issues: list[str]) -> None:
    chain = lenient(in_area(content))
    assert chain.focus_steps == ([Focus(boxes=boxes, depths=depths)] if boxes else [])
    assert chain.issues == [area_reason(content), *issues]


@pytest.mark.parametrize(
    ("content", "box", "issues"),
    [
        # Any coordinate above 1 means pixels; each coordinate alone, on a 4 x 4 image.
        (
            "[2, 0, 1, 1]",
            (0.25, 0.0, 0.5, 0.25),
            ["box given in pixels, normalized by the image size", "box corners given in the wrong order"],
        ),
        (
            "[0, 2, 1, 1]",
            (0.0, 0.25, 0.25, 0.5),
            ["box given in pixels, normalized by the image size", "box corners given in the wrong order"],
        ),
        ("[0, 0, 2, 1]", (0.0, 0.0, 0.5, 0.25), ["box given in pixels, normalized by the image size"]),
        ("[0, 0, 1, 2]", (0.0, 0.0, 0.25, 0.5), ["box given in pixels, normalized by the image size"]),
        ("[0, 0, 1.5, 1.5]", (0.0, 0.0, 0.375, 0.375), ["box given in pixels, normalized by the image size"]),
    ],
)
def test_pixel_boxes_are_divided_by_the_image_size(content: str, box: tuple, issues: list[str]) -> None:
    chain = lenient(in_area(content), width=4, height=4)
    assert chain.focus_steps == [Focus(boxes=[box], depths=[None])]
    assert chain.issues == [area_reason(content), *issues]


@pytest.mark.parametrize(("width", "height"), [(10, None), (None, 10), (0, 10)])
def test_pixel_boxes_need_both_sides_of_the_image(width: int | None, height: int | None) -> None:
    content = "[10, 20, 30, 40]"
    chain = lenient(in_area(content), width=width, height=height)
    assert chain.focus_steps == []
    assert chain.issues == [
        area_reason(content),
        "box [10.0, 20.0, 30.0, 40.0] looks like pixels and no image size was given",
        "area without a readable box",
    ]


def test_answers_missing_empty_and_where_the_thinking_ends() -> None:
    assert lenient("<think>no answer</think>").issues[1:] == ["no <answer>"]
    assert lenient("<think>x</think><answer> </answer>").issues[1:] == ["empty <answer>"]
    # An answer at the very start: nothing before it is thinking, so the area after it is no step.
    chain = lenient("<answer>A</answer><area>[0.1, 0.2, 0.3, 0.4]</area>")
    assert (chain.answer, chain.steps) == ("A", [])
    # Two answers: the thinking is everything before the last one.
    chain = lenient(
        "<answer>A</answer><area>[0.1, 0.2, 0.3, 0.4]</area><answer>B</answer><area>[0.5, 0.5, 0.6, 0.6]</area>"
    )
    assert chain.answer == "B"
    assert chain.focus_steps == [Focus(boxes=[(0.1, 0.2, 0.3, 0.4)], depths=[None])]


def test_boxes_outside_area_tags_only_when_named_as_boxes() -> None:
    text = 'The box is {"bbox_2d": [10, 20, 30, 40]}. <answer>A</answer>'
    chain = lenient(text, width=100, height=200)
    assert chain.focus_steps == [Focus(boxes=[(0.1, 0.1, 0.3, 0.2)], depths=[None])]
    assert chain.issues[1:] == ["boxes found outside <area> tags"]
    # Four numbers in brackets in prose are not a box unless the prose says "bbox".
    chain = lenient("I look at [0.1, 0.2, 0.3, 0.4]. <answer>A</answer>")
    assert chain.steps == []
    assert chain.issues[1:] == []


def test_an_area_nested_too_deeply_for_json_is_read_leniently() -> None:
    deep = "[" * 100_000 + "]" * 100_000
    text = (
        f"<think><area>{deep}</area><text>t</text><area>[10, 20, 30, 40]</area><text>u</text></think><answer>A</answer>"
    )
    chain = lenient(text, width=100, height=100)
    assert chain.issues == [
        "not strict: area nested too deeply",
        "area without a readable box",
        "box given in pixels, normalized by the image size",
    ]
    assert chain.steps == [Text(text="t"), Focus(boxes=[(0.1, 0.2, 0.3, 0.4)], depths=[None]), Text(text="u")]
    assert chain.answer == "A"


# ----------------------------------------------------------------------------- formatting


def test_format_area_needs_a_depth_for_every_box() -> None:
    with pytest.raises(ValueError):
        format_area([(0.1, 0.1, 0.5, 0.5), (0.2, 0.2, 0.6, 0.6)], [0.4])
    assert format_area([(0.1, 0.1, 0.5, 0.5)], [None]) == '<area>[{"bbox_2d":[0.100,0.100,0.500,0.500]}]</area>'


def test_format_chain_writes_a_missing_answer_as_empty() -> None:
    chain = Chain(
        steps=[Focus(boxes=[(0.1, 0.1, 0.5, 0.5)], depths=[0.4]), Text(text="t")], answer=None, issues=["no <answer>"]
    )
    assert format_chain(chain) == (
        '<think>\n<area>[{"bbox_2d":[0.100,0.100,0.500,0.500],"depth":0.400}]</area>\n<text>t</text>\n</think>\n'
        "<answer>\n\n</answer>"
    )


def test_the_last_character_of_a_reply_without_an_answer_is_read() -> None:
    """A reply cut off right after its box (no ``</area>``, no answer): the box is still read."""
    assert lenient("<think><area>[0.1, 0.2, 0.3, 0.4]").focus_steps == [
        Focus(boxes=[(0.1, 0.2, 0.3, 0.4)], depths=[None])
    ]


# ----------------------------------------------------------------------------- as written


def test_read_areas_reads_each_area_as_written() -> None:
    text = (
        "<think><area>[-0.1, 0.2, 1.2, 0.4]</area><text>a</text>"
        '<area>[{"bbox_2d":[1,2]},{"bbox_2d":[0.1,0.2,0.3]},{"bbox_2d":[0.5,0.1,0.2,0.9],"depth":"deep"}]</area>'
        "<text>b</text><area>nothing here</area></think><answer>A</answer>"
    )
    assert read_areas(text) == [
        WrittenArea([(0.0, 0.2, 1.0, 0.4)], [math.nan], 0),
        WrittenArea([(0.5, 0.1, 0.2, 0.9)], [math.nan], 2),  # inverted: kept as written; two unreadable
        WrittenArea([], [], 0),
    ]
    assert read_areas(text, clip=False)[0].boxes == [(-0.1, 0.2, 1.2, 0.4)]


def test_read_areas_reads_only_the_thinking_before_the_last_answer() -> None:
    box = "<area>[0.1, 0.2, 0.3, 0.4]</area>"
    assert read_areas(f"<answer>A</answer>{box}") == []  # an answer first: no thinking at all
    two = read_areas(f"<answer>A</answer>{box}<ANSWER>B</ANSWER><area>[0.5, 0.5, 0.6, 0.6]</area>")
    assert [area.boxes for area in two] == [[(0.1, 0.2, 0.3, 0.4)]]
    assert [area.boxes for area in read_areas("<think><area>[0.1, 0.2, 0.3, 0.4]")] == [[(0.1, 0.2, 0.3, 0.4)]]
