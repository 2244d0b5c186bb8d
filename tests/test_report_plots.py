"""The HTML report's bar charts: one inlined SVG per benchmark table, a bar per metric a row has."""

from __future__ import annotations

import html
import json
import math
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import matplotlib as mpl
from typer.testing import CliRunner

from sifeval.cli import app
from sifeval.plots import bar_chart_svg, chart_series
from sifeval.report import load_results, report_rows, to_html, to_markdown
from sifeval.viscot import SCORED_SUBSETS

runner = CliRunner()

# "bar-<row>-<column>": the gid plots.py gives each bar, indices into the table's rows and columns.
BAR = re.compile(r'<g id="[^"]*\bbar-(\d+)-(\d+)">')
# "missing-<row>-<column>": the grey marker at the slot of a metric a row lacks.
MISSING = re.compile(r'<g id="[^"]*\bmissing-(\d+)-(\d+)">')
# Table columns that are not per-category scores, which the chart leaves out (the table keeps them):
# the runner's score_answered_only, CV-Bench's micro_accuracy, SAT's all_orders_right, VisCoT's
# detection (mean of the detection/* subsets) and anything named defective... (VisCoT's counter).
NOT_CHARTED = {"score_answered_only", "micro_accuracy", "all_orders_right", "detection"}


def _charted(column: str) -> bool:
    return column not in NOT_CHARTED and not column.startswith("defective")


def _result(benchmark: str, spec: str, metrics: dict[str, float | None], mode: str = "sif") -> dict[str, Any]:
    """A results.json as ``load_results`` returns it (the fields ``report_rows`` reads)."""
    return {
        "benchmark": benchmark,
        "model": {"spec": spec},
        "mode": mode,
        "protocol": "official",
        "metrics": metrics,
        "n": 20,
        "parse_failure_rate": 0.05,
        "request_error_rate": 0.0,
        "complete": True,
        "request_errors": 0,
        "judge_failures": 0,
    }


def _results() -> list[dict[str, Any]]:
    return [
        _result("cvbench", "hf:org/model-a", {"score": 70.0, "acc_2D": 65.0, "acc_3D": None, "task/Count": 50.0}),
        _result("cvbench", "hf:org/model-b", {"score": 60.0, "acc_2D": 55.0, "acc_3D": 66.0, "task/Count": math.nan}),
        # SpatialBench's counting is 100 - MAPE, uncapped: it can be negative, and still gets a bar.
        _result("spatialbench", "hf:org/model-a", {"score": 40.0, "category/counting": -20.0}, mode="plain"),
    ]


def _figures(page: str) -> list[str]:
    return re.findall(r"<figure>.*?</figure>", page, flags=re.S)


def _expected_bars(table: dict[str, Any]) -> set[tuple[int, int]]:
    """(row, column) of every charted metric a row has as a finite number: those, and only those, get a bar."""
    return {
        (row_index, column_index)
        for row_index, row in enumerate(table["rows"])
        for column_index, column in enumerate(table["columns"])
        if _charted(column) and isinstance(value := row["metrics"].get(column), int | float) and math.isfinite(value)
    }


def _expected_missing(table: dict[str, Any]) -> set[tuple[int, int]]:
    """(row, column) of every charted metric a row lacks (absent, null, NaN): a missing marker each."""
    every = {
        (row_index, column_index)
        for row_index in range(len(table["rows"]))
        for column_index, column in enumerate(table["columns"])
        if _charted(column)
    }
    return every - _expected_bars(table)


def _drawn_bars(figure: str) -> list[tuple[int, int]]:
    return [(int(row), int(column)) for row, column in BAR.findall(figure)]


def _missing_markers(figure: str) -> list[tuple[int, int]]:
    return [(int(row), int(column)) for row, column in MISSING.findall(figure)]


def _bar_style(figure: str, row: int, column: int) -> dict[str, str]:
    """The style of the path drawn for bar (row, column)."""
    found = re.search(
        rf'<g id="[^"]*\bbar-{row}-{column}"><title>[^<]*</title>\s*<path d="[^"]*" style="([^"]*)"', figure
    )
    assert found is not None, f"no bar-{row}-{column}"
    style = {}
    for item in found[1].split(";"):
        key, _, value = item.partition(":")
        style[key.strip()] = value.strip()
    return style


def _svgs(page: str) -> list[str]:
    return re.findall(r"<svg .*?</svg>", page, flags=re.S)


def _texts(svg: str) -> list[str]:
    """The SVG's text lines (legend entries, tick labels), unescaped."""
    return [html.unescape(text) for text in re.findall(r"<text [^>]*>([^<]*)</text>", svg)]


def test_html_report_inlines_one_svg_chart_per_benchmark_table() -> None:
    tables = report_rows(_results())
    page = to_html(tables)
    assert [t["benchmark"] for t in tables] == ["cvbench", "spatialbench"]
    assert page.count("<svg") == len(tables) == len(_figures(page))
    for table, figure in zip(tables, _figures(page), strict=True):
        assert table["benchmark"] in figure  # each chart sits after its own table
    # Self-contained: nothing fetched from elsewhere, no standalone-SVG prologue left in the page.
    assert "<img" not in page and "http" not in page and "src=" not in page
    assert "<?xml" not in page and "<!DOCTYPE svg" not in page
    assert all(ref.startswith("#") for ref in re.findall(r'href="([^"]*)"', page))
    assert "<svg" not in to_markdown(tables)  # the Markdown report is unchanged


def test_bars_are_exactly_the_metrics_a_row_has() -> None:
    tables = report_rows(_results())
    figures = _figures(to_html(tables))
    for table, figure in zip(tables, figures, strict=True):
        drawn = _drawn_bars(figure)
        assert len(drawn) == len(set(drawn)) == len(_expected_bars(table))
        assert set(drawn) == _expected_bars(table)
    cvbench, columns = tables[0], tables[0]["columns"]
    assert columns[0] == "score" and cvbench["rows"][2]["kind"].startswith("published:")
    # model-a's null acc_3D and model-b's NaN task/Count draw no bar (not a 0 bar) ...
    assert (0, columns.index("acc_3D")) not in _drawn_bars(figures[0])
    assert (1, columns.index("task/Count")) not in _drawn_bars(figures[0])
    # ... and published rows draw their headline and categories but nothing for what they lack.
    assert (2, columns.index("score")) in _drawn_bars(figures[0])
    assert (2, columns.index("task/Count")) not in _drawn_bars(figures[0])
    # A bar is the row's own value: its tooltip says which.
    assert re.search(r'bar-0-0"><title>hf:org/model-a — this run \(sif, official\): score = 70\.0</title>', figures[0])
    assert "category/counting = -20.0</title>" in figures[1]


def test_the_caption_names_each_rows_missing_metrics() -> None:
    figure = _figures(to_html(report_rows(_results())))[0]
    caption = re.search(r"<figcaption>(.*)</figcaption>", figure, flags=re.S)
    assert caption is not None
    items = re.findall(r"<li>(.*?)</li>", caption[1])
    assert "hf:org/model-a — this run (sif, official) (missing: acc_3D)" in items
    assert "hf:org/model-b — this run (sif, official) (missing: task/Count)" in items
    published_gpt = next(item for item in items if item.startswith("GPT-4o-0513"))
    assert "task/Count" in published_gpt and "acc_3D" not in published_gpt


def test_charts_do_not_share_ids_and_each_reference_stays_in_its_chart() -> None:
    figures = _figures(to_html(report_rows(_results())))
    id_sets = [re.findall(r'\bid="([^"]+)"', figure) for figure in figures]
    every = [i for ids in id_sets for i in ids]
    assert len(every) == len(set(every))
    # The same axes in two charts give matplotlib the same clip path; each chart must point at its own.
    for figure, ids in zip(figures, id_sets, strict=True):
        references = re.findall(r'(?:url\(#|href="#)([^")]+)', figure)
        assert references and set(references) <= set(ids)
    # matplotlib's style rule is scoped to its own chart, not to the whole page.
    assert all(re.search(r'<style type="text/css">#[^ ]+svg \*\{', figure) for figure in figures)


class _TagBalance(HTMLParser):
    """Records every end tag that does not close the innermost open element."""

    VOID = frozenset({"meta", "br", "hr", "img", "input", "link", "col", "area", "base", "wbr", "source"})

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in self.VOID:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.open[-1] if self.open else 'nothing'}")
        else:
            self.open.pop()


def test_the_page_parses_with_balanced_tags() -> None:
    parser = _TagBalance()
    parser.feed(to_html(report_rows(_results())))
    parser.close()
    assert parser.errors == [] and parser.open == []


def test_charts_are_deterministic_and_leave_matplotlib_settings_alone() -> None:
    before = dict(mpl.rcParams)
    tables = report_rows(_results())
    assert to_html(tables) == to_html(tables)
    assert dict(mpl.rcParams) == before
    first = bar_chart_svg(tables[0], id_prefix="a-")
    assert bar_chart_svg(tables[0], id_prefix="b-") == first.replace('id="a-', 'id="b-').replace("#a-", "#b-")


def test_a_wide_table_widens_its_chart() -> None:
    many: dict[str, float | None] = {"score": 50.0, **{f"category/c{index:02d}": float(index) for index in range(12)}}
    narrow = bar_chart_svg(report_rows([_result("x", "m", {"score": 50.0})])[0], id_prefix="n-")
    wide = bar_chart_svg(report_rows([_result("x", "m", many)] * 8)[0], id_prefix="w-")
    assert _width_px(wide) > 2 * _width_px(narrow)
    assert len(_drawn_bars(wide)) == 8 * 13
    assert "category/c11</text>" in wide  # tick labels stay text (svg.fonttype "none")


def _width_px(svg: str) -> float:
    found = re.search(r'<svg [^>]*width="([\d.]+)pt"', svg)
    assert found is not None
    return float(found[1]) * 4 / 3


def _viscot_like(runs: int) -> list[dict[str, Any]]:
    """VisCoT's metric names (see ViscotAdapter.aggregate): 2 x 11 subsets and 4 non-category keys."""
    metrics: dict[str, float | None] = {"score": 40.0, "detection": 30.0, "defective_ground_truth": 3.0}
    metrics |= {"score_answered_only": 45.0}
    metrics |= {f"answer/{name}": 40.0 + index for index, name in enumerate(SCORED_SUBSETS)}
    metrics |= {f"detection/{name}": 30.0 + index for index, name in enumerate(SCORED_SUBSETS)}
    return [_result("viscot", f"hf:/runs/model-{index}", metrics) for index in range(runs)]


def test_a_zero_is_a_visible_bar_and_a_missing_metric_a_marked_slot() -> None:
    zeros = {"score": 0.0, "acc_2D": 0.0, "acc_3D": None, "task/Count": math.nan, "task/Depth": 12.5}
    tables = report_rows([_result("cvbench", "hf:org/zero", zeros)])
    table, figure = tables[0], _figures(to_html(tables))[0]
    columns = table["columns"]
    # A 0 is a bar, with its gid and tooltip, drawn with a thick stroke: a line on the baseline.
    for column in ("score", "acc_2D"):
        assert (0, columns.index(column)) in _drawn_bars(figure)
        style = _bar_style(figure, 0, columns.index(column))
        assert style["stroke"] != "none" and float(style["stroke-width"]) >= 2
    assert (
        f'bar-0-{columns.index("score")}"><title>hf:org/zero — this run (sif, official): score = 0.0</title>' in figure
    )
    # Every bar has a visible edge, not only the zero ones.
    depth = _bar_style(figure, 0, columns.index("task/Depth"))
    assert depth["stroke"] != "none" and float(depth["stroke-width"]) > 0
    # A null or NaN metric is no bar but a missing marker at its slot, with a tooltip saying so.
    missing = {(0, columns.index("acc_3D")), (0, columns.index("task/Count"))}
    assert set(_drawn_bars(figure)).isdisjoint(missing)
    assert _missing_markers(figure) and set(_missing_markers(figure)) >= missing
    assert (
        f'missing-0-{columns.index("acc_3D")}"><title>hf:org/zero — this run (sif, official): acc_3D missing' in figure
    )
    # Drawn in grey, unlike any bar (the tab10 colours), and named in the legend.
    marker = re.search(rf'missing-0-{columns.index("acc_3D")}">.*?</g>\s*</g>', figure, flags=re.S)
    assert marker is not None and "stroke: #888888" in marker[0] and "<use " in marker[0]
    assert "no value" in _texts(figure)
    # Across the published rows too: one marker per charted metric a row lacks, no bar there.
    assert set(_missing_markers(figure)) == _expected_missing(table)
    assert len(_missing_markers(figure)) == len(_expected_missing(table))
    assert set(_drawn_bars(figure)) == _expected_bars(table)
    assert "<li>hf:org/zero — this run (sif, official) (missing: acc_3D, task/Count)</li>" in figure


def test_the_chart_leaves_out_metrics_that_are_not_per_category_scores() -> None:
    cvbench = {"score": 50.0, "acc_2D": 40.0, "acc_3D": 60.0, "micro_accuracy": 49.0, "score_answered_only": 55.0}
    sat = {"score": 50.0, "question_type/ego_movement": 40.0, "all_orders_right": 20.0}
    results = [_result("cvbench", "m", cvbench), _result("sat", "m", sat), *_viscot_like(1)]
    tables = report_rows(results)
    page = to_html(tables)
    left_out = {"micro_accuracy", "score_answered_only", "all_orders_right", "detection", "defective_ground_truth"}
    for table, figure in zip(tables, _figures(page), strict=True):
        columns = table["columns"]
        assert left_out & set(columns)  # the table keeps them ...
        assert all(f"<th>{column}</th>" in page for column in columns)
        drawn = {column for _, column in _drawn_bars(figure) + _missing_markers(figure)}
        assert {columns[index] for index in drawn} == {column for column in columns if column not in left_out}
        ticks = set(_texts(figure))
        assert not left_out & ticks and "score" in ticks  # ... the chart does not
        caption = re.search(r"Not charted[^:]*: ([^.<]*)\.", figure)
        assert caption is not None and set(caption[1].split(", ")) == left_out & set(columns)
    assert "micro_accuracy" in to_markdown(tables)


def test_legend_labels_tell_runs_of_one_model_apart_without_cutting_them() -> None:
    spec = "hf:/tmp/demo-out3/sft/sif-tiny?device=cpu"
    other = "hf:/tmp/demo-out3/grpo/sif-tiny?device=cpu"  # differs from spec only in the middle
    results = [
        _result("vstar", spec, {"score": 50.0}),
        _result("vstar", spec, {"score": 55.0}, mode="plain"),
        _result("vstar", other, {"score": 60.0}),
    ]
    table = report_rows(results, with_published=False)[0]
    labels = [series.label for series in chart_series(table)]
    assert labels == [f"{spec}\n(sif, official)", f"{spec}\n(plain, official)", other]  # two legend lines
    texts = _texts(bar_chart_svg(table, id_prefix="l-"))
    assert all(not re.search(r"…|\[\d\]", text) for text in texts)
    # A label too long for one legend line wraps, the model spec kept whole on its own line.
    long_spec = "hf:/work/runs/2025-06-01/experiment-with-a-long-name/grpo/checkpoint-4000?device=cuda"
    table = report_rows(
        [_result("vstar", long_spec, {"score": 1.0}), _result("vstar", long_spec, {"score": 2.0}, "plain")]
    )[0]
    svg = bar_chart_svg(table, id_prefix="w-")
    texts = _texts(svg)
    for series in chart_series(table)[:2]:
        *model, kind = series.label.split("\n")
        assert "".join(model) == long_spec and len(model) > 1 and kind in {"(sif, official)", "(plain, official)"}
        assert set(series.label.split("\n")) <= set(texts)
    assert "(plain, official)" in texts and not any("…" in text for text in texts)
    assert all(len(text) <= 44 for text in texts)
    # The tooltips keep the full model and kind.
    assert f"<title>{long_spec} — this run (plain, official): score = 2.0</title>" in svg
    # Runs alike in model and kind are told apart by their row in the table above the chart.
    twins = report_rows([_result("vstar", spec, {"score": 1.0})] * 2, with_published=False)[0]
    assert [s.label for s in chart_series(twins)] == [f"{spec}\n(sif, official) (table row {k})" for k in (1, 2)]


def test_wide_tables_split_into_charts_shown_at_a_legible_natural_size() -> None:
    tables = report_rows(_viscot_like(10))
    table, page = tables[0], to_html(tables)
    figure = _figures(page)[0]
    svgs = _svgs(figure)
    assert len(svgs) == 2  # 23 charted columns: score + answer/* and detection/*
    panels = [{column for _, column in _drawn_bars(svg)} for svg in svgs]
    assert all(len(panel) <= 12 for panel in panels) and panels[0].isdisjoint(panels[1])
    assert {table["columns"][index] for index in panels[1]} == {f"detection/{name}" for name in SCORED_SUBSETS}
    assert "score" in _texts(svgs[0]) and "score" not in _texts(svgs[1])  # the headline in the first only
    assert set(_drawn_bars(figure)) == _expected_bars(table) and len(_drawn_bars(figure)) == 10 * 23
    for svg in svgs:
        # At most about a page wide, and text never under 9 pt (12 px) ...
        assert _width_px(svg) <= 1200
        sizes = [float(size) for size in re.findall(r"font-size: ([\d.]+)px", svg)]
        assert sizes and min(sizes) >= 9
    # ... since the page shows each chart at that natural size, scrolling in its box if need be.
    style = re.search(r"<style>(.*?)</style>", page, flags=re.S)
    assert style is not None and "max-width" not in style[1] and "svg{display:block}" in style[1]
    assert all(parent == ("div", "overflow-x:auto") for parent in _Parents.of(page, "svg"))


def test_tables_scroll_inside_their_own_box() -> None:
    page = to_html(report_rows([*_results(), *_viscot_like(2)]))
    parents = _Parents.of(page, "table")
    assert len(parents) == 3 and all(parent == ("div", "overflow-x:auto") for parent in parents)


class _Parents(HTMLParser):
    """The enclosing element (tag, style) of every ``tag`` element in a page."""

    def __init__(self, tag: str) -> None:
        super().__init__()
        self.tag = tag
        self.open: list[tuple[str, str]] = []
        self.parents: list[tuple[str, str]] = []

    @classmethod
    def of(cls, page: str, tag: str) -> list[tuple[str, str]]:
        parser = cls(tag)
        parser.feed(page)
        return parser.parents

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == self.tag:
            self.parents.append(self.open[-1] if self.open else ("", ""))
        if tag not in _TagBalance.VOID:
            self.open.append((tag, dict(attrs).get("style") or ""))

    def handle_endtag(self, tag: str) -> None:
        if self.open and self.open[-1][0] == tag:
            self.open.pop()


def test_report_command_writes_the_chart_into_the_html_file(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    metrics = {"score": 71.5, "acc_2D": 70.0, "acc_3D": None, "score_answered_only": 72.0}
    (run / "results.json").write_text(json.dumps(_result("cvbench", "hf:org/model-a", metrics), allow_nan=False))
    out = tmp_path / "report.html"
    result = runner.invoke(app, ["report", str(run), "--format", "html", "--out", str(out)])
    assert result.exit_code == 0, result.output
    page = out.read_text(encoding="utf-8")
    table = report_rows(load_results([run]))[0]
    assert page.count("<svg") == 1 and len(table["rows"]) > 1  # ours and the published CV-Bench rows
    assert set(_drawn_bars(page)) == _expected_bars(table) and len(_drawn_bars(page)) == len(_expected_bars(table))
    assert set(_missing_markers(page)) == _expected_missing(table)
    assert "<th>score_answered_only</th>" in page and "score_answered_only</text>" not in page  # table only
    assert "(missing: acc_3D)" in page
    alone = tmp_path / "ours.html"
    result = runner.invoke(app, ["report", str(run), "--format", "html", "--out", str(alone), "--no-published"])
    assert result.exit_code == 0, result.output
    assert {row for row, _ in _drawn_bars(alone.read_text(encoding="utf-8"))} == {0}
