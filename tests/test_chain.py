from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sifdata import ChainError, format_chain, parse_chain
from sifdata.schema import Chain, Focus, Text

PAPER_EXAMPLE = """<think>
<area>[{"bbox_2d":[0.000,0.000,1.000,1.000],"depth":0.583}]</area>
<text>The question asks which is closer ... First I look at the whole image ...</text>
<area>[{"bbox_2d":[0.656,0.138,0.938,0.521],"depth":0.829}]</area>
<text>Next, the vehicle ...</text>
<area>[{"bbox_2d":[0.147,0.581,0.168,0.659],"depth":0.787}]</area>
<text>Focusing on the water bottle ...</text>
</think>
<answer>
The water bottle is closer to the camera than the vehicle.
</answer>"""


def test_paper_example_parses_and_round_trips() -> None:
    chain = parse_chain(PAPER_EXAMPLE)
    assert [type(s) for s in chain.steps] == [Focus, Text] * 3
    assert chain.focus_steps[1].boxes == [(0.656, 0.138, 0.938, 0.521)]
    assert chain.focus_steps[2].depths == [0.787]
    assert chain.answer == "The water bottle is closer to the camera than the vehicle."
    assert format_chain(chain) == PAPER_EXAMPLE
    assert chain.issues == []


def test_multi_box_step_and_free_whitespace() -> None:
    text = (
        '  <think><area> [ {"bbox_2d": [0.1, 0.2, 0.3, 0.4], "depth": 0.5},'
        ' {"bbox_2d": [0.5, 0.5, 1, 1], "depth": 1} ] </area>\n\n<text>two boxes</text></think>'
        "<answer>yes</answer>\n"
    )
    chain = parse_chain(text)
    assert chain.focus_steps[0].boxes == [(0.1, 0.2, 0.3, 0.4), (0.5, 0.5, 1.0, 1.0)]
    assert chain.focus_steps[0].depths == [0.5, 1.0]
    assert chain.last_boxes == [(0.1, 0.2, 0.3, 0.4), (0.5, 0.5, 1.0, 1.0)]


AREA = '<area>[{"bbox_2d":[0.1,0.1,0.5,0.5],"depth":0.4}]</area>'


@pytest.mark.parametrize(
    ("text", "position", "reason"),
    [
        ("", 0, "expected <think>, found end of text"),
        ("hello <think>", 0, "found text outside tags"),
        (f"<think>{AREA}</think><answer>a</answer>", len("<think>") + len(AREA), "expected <text>, found </think>"),
        ("<think></think><answer>a</answer>", 7, "think needs at least one area/text pair"),
        (f"<think><text>x</text>{AREA}<text>t</text></think><answer>a</answer>", 7, "expected <area>, found <text>"),
        (f"<think>{AREA}<text>  </text></think><answer>a</answer>", 7 + len(AREA) + 6, "text step is empty"),
        (f"<think>{AREA}<text>t</text></think><answer> </answer>", None, "answer is empty"),
        (f"<think>{AREA}<text>t</text></think>", None, "expected <answer>, found end of text"),
        (f"<think>{AREA}<text>t</text></think><answer>a</answer> trailing", None, "content after </answer>"),
        (f"<think>{AREA}<text>t</text></think><answer>a</answer><answer>b</answer>", None, "content after </answer>"),
        (f"<think>{AREA}<text>a <area> b</text></think><answer>a</answer>", None, "expected </text>, found <area>"),
    ],
)
def test_strict_errors_name_position_and_reason(text: str, position: int | None, reason: str) -> None:
    with pytest.raises(ChainError) as caught:
        parse_chain(text)
    assert reason in caught.value.reason
    if position is not None:
        assert caught.value.position == position
    assert "line" in str(caught.value)


@pytest.mark.parametrize(
    ("area", "reason"),
    [
        ("[{'bbox_2d':[0.1,0.1,0.5,0.5],'depth':0.4}]", "not valid JSON"),
        ('[{"bbox_2d":[0.1234,0.1,0.5,0.5],"depth":0.4}]', "4 decimals"),
        ('[{"bbox_2d":[0.1,0.1,0.5,0.5],"depth":4e-1}]', "exponent"),
        ('[{"bbox_2d":[10,10,50,50],"depth":0.4}]', "must lie in [0, 1]"),
        ('[{"bbox_2d":[0.5,0.1,0.1,0.5],"depth":0.4}]', "x1 < x2"),
        ('[{"bbox_2d":[0.1,0.1,0.5],"depth":0.4}]', "4 numbers"),
        ('[{"bbox_2d":[0.1,0.1,0.5,0.5],"depth":1.2}]', "depth must be a number in [0, 1]"),
        ('[{"bbox_2d":[0.1,0.1,0.5,0.5]}]', "missing depth"),
        ('[{"bbox_2d":[0.1,0.1,0.5,0.5],"depth":0.4,"label":"cup"}]', "unknown label"),
        ("[]", "non-empty JSON list"),
        ('{"bbox_2d":[0.1,0.1,0.5,0.5],"depth":0.4}', "non-empty JSON list"),
        ('[{"bbox_2d":[true,0.1,0.5,0.5],"depth":0.4}]', "list of 4 numbers"),
        ('[{"bbox_2d":[0.1,0.1,0.5,0.5],"depth":NaN}]', "not a number the grammar allows"),
    ],
)
def test_strict_area_violations(area: str, reason: str) -> None:
    with pytest.raises(ChainError) as caught:
        parse_chain(f"<think><area>{area}</area><text>t</text></think><answer>a</answer>")
    assert reason in caught.value.reason
    assert caught.value.position >= len("<think><area>")


def test_lenient_recovers_messy_model_output() -> None:
    messy = (
        "Sure! Here is my reasoning.\n<think>\n<area>[{'bbox_2d': [0.12345, 0.2, 0.5, 0.61], 'depth': 0.4444}]</area>\n"
        "<text>look</text>\n<area>[{'bbox_2d': [40, 50, 80, 100]}]</area><text>zoom</text></think>\n"
        "<answer>The red cup.</answer> Hope this helps!"
    )
    chain = parse_chain(messy, strict=False, width=200, height=200)
    assert chain.answer == "The red cup."
    assert chain.focus_steps[0].boxes == [(0.12345, 0.2, 0.5, 0.61)]
    assert chain.focus_steps[0].depths == [0.4444]
    assert chain.focus_steps[1].boxes == [(0.2, 0.25, 0.4, 0.5)]
    assert chain.focus_steps[1].depths == [None]
    assert chain.issues and chain.issues[0].startswith("not strict")


def test_lenient_without_tags_and_without_answer() -> None:
    chain = parse_chain('The box is {"bbox_2d": [0.1, 0.1, 0.3, 0.3], "depth": 0.2}. So, blue.', strict=False)
    assert chain.answer is None  # never invented
    assert chain.last_boxes == [(0.1, 0.1, 0.3, 0.3)]
    assert "no <answer>" in chain.issues


def test_lenient_pixel_boxes_without_size_are_dropped_with_reason() -> None:
    chain = parse_chain("<think><area>[10, 20, 30, 40]</area><text>x</text></think><answer>a</answer>", strict=False)
    assert chain.last_boxes == []
    assert any("pixels" in issue for issue in chain.issues)


def test_lenient_unclosed_answer_and_inverted_box() -> None:
    chain = parse_chain("<think><area>[0.5, 0.5, 0.1, 0.1]</area><text>x</text></think><answer>Two", strict=False)
    assert chain.answer == "Two"
    assert chain.last_boxes == [(0.1, 0.1, 0.5, 0.5)]


# ----------------------------------------------------------------------------- properties

coordinate = st.integers(min_value=0, max_value=1000)


@st.composite
def boxes(draw: st.DrawFn) -> tuple[float, float, float, float]:
    x1, x2 = sorted(draw(st.lists(coordinate, min_size=2, max_size=2, unique=True)))
    y1, y2 = sorted(draw(st.lists(coordinate, min_size=2, max_size=2, unique=True)))
    return (x1 / 1000, y1 / 1000, x2 / 1000, y2 / 1000)


safe_text = (
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="<>"), min_size=1, max_size=40)
    .map(str.strip)
    .filter(bool)
)


@st.composite
def chains(draw: st.DrawFn) -> Chain:
    steps: list[Focus | Text] = []
    for _ in range(draw(st.integers(1, 5))):
        step_boxes = draw(st.lists(boxes(), min_size=1, max_size=3))
        depths = [draw(coordinate) / 1000 for _ in step_boxes]
        steps.append(Focus(boxes=step_boxes, depths=depths))
        steps.append(Text(text=draw(safe_text)))
    return Chain(steps=steps, answer=draw(safe_text))


@settings(max_examples=200, deadline=None)
@given(chains())
def test_format_then_parse_is_identity(chain: Chain) -> None:
    text = format_chain(chain)
    parsed = parse_chain(text)
    assert parsed == chain
    assert parsed.model_dump() == chain.model_dump()  # the parser's fast construction is a real model
    assert format_chain(parsed) == text


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_lenient_never_crashes(text: str) -> None:
    chain = parse_chain(text, strict=False, width=640, height=480)
    for step in chain.focus_steps:
        for box in step.boxes:
            assert 0 <= box[0] < box[2] <= 1 and 0 <= box[1] < box[3] <= 1


tag_soup = st.lists(
    st.sampled_from(
        [
            "<think>",
            "</think>",
            "<area>",
            "</area>",
            "<text>",
            "</text>",
            "<answer>",
            "</answer>",
            "[",
            "]",
            "{",
            "}",
            '"bbox_2d":',
            "'bbox_2d':",
            "[0.1, 0.2, 0.3, 0.4]",
            "[10, 20, 300, 400]",
            '"depth": 0.5',
            ",",
            "x",
            "1e309",
        ]
    ),
    max_size=40,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(tag_soup)
def test_lenient_never_crashes_on_tag_soup(text: str) -> None:
    parse_chain(text, strict=False)
    with pytest.raises(ChainError):
        parse_chain(text + "<broken")


def test_a_grammar_error_says_where_by_line_and_column() -> None:
    """Position, line and column of the first violation, counted by hand (issue 23)."""
    text = (
        '<think>\n<area>[{"bbox_2d":[0.1,0.1,0.5,0.5],"depth":0.5}]</area>\n<text>ok</text>\n<area>[oops]</area>'
        "\n<text>after</text>\n</think>\n<answer>A</answer>"  # lines after the error count for nothing
    )
    with pytest.raises(ChainError) as raised:
        parse_chain(text, strict=True)
    position = text.index("[oops]") + 1  # the "o" where the JSON breaks
    line, column = 4, len("<area>[") + 1
    assert raised.value.position == position
    assert f"at character {position} (line {line}, column {column}): " in str(raised.value)
    first_line = ChainError(3, "bad", "abcdef\nghi")
    assert str(first_line) == "at character 3 (line 1, column 4): bad"
    assert str(ChainError(3, "bad", "\nabcdef\n")) == "at character 3 (line 2, column 3): bad"
    assert str(ChainError(3, "bad")) == "at character 3: bad"
