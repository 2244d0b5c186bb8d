"""Bar charts of a report table's per-category metrics, as SVG to inline in the HTML report.

One chart per benchmark table: the table's metric columns on x (headline ``score`` first), one bar
series per row (our runs, then published rows), values on the table's 0-100 scale.

What is charted: the headline ``score`` and the per-category / per-subset metrics, i.e. every
table column except those :func:`is_charted` rejects: the names in :data:`NOT_CHARTED` and any
name starting with ``defective``. Those are the adapters' other keys, which are not per-category
scores: ``score_answered_only`` (the runner's, over answered samples only: our runs have it,
published rows never), ``micro_accuracy`` (CV-Bench, pooled over every sample), ``all_orders_right``
(SAT, a consistency rate over each question's option orders), ``detection`` (VisCoT, a second
headline over the ``detection/*`` subsets charted beside it) and VisCoT's ``defective_ground_truth``,
a count of samples. The tables keep them all; the caption names what the chart leaves out.

How values read: a value of 0 is a bar of height 0 drawn as a thick line in its series' colour on
the baseline; a metric a row lacks (absent, null or NaN) is a grey "×" at its slot on the baseline,
never a bar, and the caption names it. Every bar has the gid ``bar-<row>-<column>`` and every
missing marker ``missing-<row>-<column>`` (indices into the table's rows and columns), each with a
``<title>`` tooltip giving the row's model and kind in full; a run's value with a 95% interval
(:mod:`sifeval.intervals`) carries it as a whisker, ``interval-<row>-<column>``.

Rendering uses ``matplotlib.figure.Figure`` directly, never ``pyplot``, so no backend is selected
and no global figure registry is touched; the rcParams the SVG writer reads at save time are set
inside ``rc_context`` (on matplotlib's default style) and restored afterwards.
"""

from __future__ import annotations

import html
import io
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib as mpl
import matplotlib.style
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

# Text stays <text> elements, not glyph outlines: the report is read in a browser, where legend
# and tick labels then stay selectable and searchable (Ctrl-F finds a model in its chart), the SVG
# is several times smaller, and there are no per-glyph <defs> to collide across inlined charts.
# The cost: the browser draws the text in its own sans-serif if DejaVu Sans is not installed.
SVG_FONTTYPE = "none"
# A fixed salt makes the hashed ids (clip paths, tick markers, hatches) the same on every run.
SVG_HASHSALT = "sifeval-report"
# Our runs are drawn solid and published rows hatched, in this (tab10) order of colours.
COLOURS = tuple(mpl.colormaps["tab10"](index) for index in range(10))
MISSING_COLOUR = "#888888"
ZERO_LINEWIDTH = 2.5  # points: the stroke a 0 bar shows on the baseline

# Table columns the chart leaves out (see the module docstring); and any name starting "defective".
NOT_CHARTED = frozenset({"score_answered_only", "micro_accuracy", "all_orders_right", "detection"})

# Legibility: the HTML page shows each chart at its natural size (its SVG's own width, no
# ``max-width:100%`` scaling) inside a horizontally scrollable <div>, so text is never drawn
# smaller than FONT_SIZE points (12 px). To keep that size from needing a scroll bar on an
# ordinary page, a table with more than PANEL_COLUMNS charted columns is split into several charts
# of at most that many columns (headline score in the first only: VisCoT's 23 charted columns give
# score + answer/* and detection/*), and a chart's plot area is at most MAX_WIDTH inches wide
# (about 1000 px; bars get thinner rather than the text smaller).
FONT_SIZE = 9.0
PANEL_COLUMNS = 12
MAX_WIDTH = 10.5
LABEL_WIDTH = 44  # characters per legend line; longer labels wrap instead of being cut

_ID = re.compile(r'(\bid="|url\(#|href="#)([^")]+)')


def is_charted(column: str) -> bool:
    """The headline and per-category metrics: not in :data:`NOT_CHARTED`, not ``defective...``."""
    return column not in NOT_CHARTED and not column.startswith("defective")


def panels(table: dict[str, Any]) -> list[list[int]]:
    """The charted columns' indices, split into as few charts of about equal width as fit ``PANEL_COLUMNS``."""
    charted = [index for index, column in enumerate(table["columns"]) if is_charted(column)]
    size = math.ceil(len(charted) / max(1, math.ceil(len(charted) / PANEL_COLUMNS))) or 1
    return [charted[start : start + size] for start in range(0, len(charted), size)]


@dataclass(frozen=True)
class Series:
    """One table row as a bar series: ``values`` follows the table's columns, None where missing."""

    label: str  # for the legend: unique within the table, wrapped onto lines
    name: str  # model and kind in full, for tooltips and the caption
    published: bool
    values: tuple[float | None, ...]
    # Each value's 95% interval (sifeval.intervals), drawn as an error bar; None where it has none.
    intervals: tuple[tuple[float, float] | None, ...] = ()

    def missing(self, columns: Sequence[str], indices: Sequence[int]) -> list[str]:
        return [columns[index] for index in indices if self.values[index] is None]


def chart_series(table: dict[str, Any]) -> list[Series]:
    """The rows of a ``report_rows`` table as series, with legend labels that tell them apart."""
    rows = table["rows"]
    ours = Counter(str(row["model"]) for row in rows if not _published(row))
    labels = [series_label(row, with_kind=ours[str(row["model"])] > 1) for row in rows]
    repeated = Counter(labels)
    series = []
    for index, (row, label) in enumerate(zip(rows, labels, strict=True)):
        if repeated[label] > 1:  # same model and kind: nothing but the position tells them apart
            label = f"{label} (table row {index + 1})"
        values = tuple(_finite(row["metrics"].get(column)) for column in table["columns"])
        found = row.get("intervals") or {}
        intervals = tuple(
            tuple(found[column]["ci95"]) if (found.get(column) or {}).get("ci95") else None
            for column in table["columns"]
        )
        name = f"{row['model']} — {row['kind']}"
        series.append(Series(label, name, _published(row), values, intervals))  # type: ignore[arg-type]
    return series


def series_label(row: dict[str, Any], *, with_kind: bool = False) -> str:
    """Our run: its model spec, and its kind's ``(mode, protocol)`` when ``with_kind`` (another of
    our runs has the same spec). A published row: ``model — published: <source name>``. Never cut:
    a label longer than ``LABEL_WIDTH`` wraps, the model on its own line(s) and the rest below."""
    model, kind = str(row["model"]), str(row["kind"])
    if kind.startswith("published:"):
        source = re.split(r"[,;(]", kind.removeprefix("published:"))[0].strip()
        model, detail = f"{model} —", f"published: {_cut_end(source, 28)}"
    elif with_kind:
        detail = kind.removeprefix("this run ")
    else:
        return _wrap(model)
    return f"{model} {detail}" if len(model) + 1 + len(detail) <= LABEL_WIDTH else f"{_wrap(model)}\n{detail}"


def bar_chart_svg(table: dict[str, Any], *, id_prefix: str, columns: Sequence[int] | None = None) -> str:
    """The grouped bar chart of the table's ``columns`` (indices; all charted ones by default) as
    an ``<svg>`` element to inline in HTML.

    Each bar's group carries the id ``{id_prefix}bar-{row}-{column}`` and each missing marker's
    ``{id_prefix}missing-{row}-{column}`` (indices into the table's rows and columns), with a
    ``<title>``; every id in the SVG starts with ``id_prefix`` so that several charts in one page
    never share one. No XML prologue, DOCTYPE, metadata or namespace declarations: the HTML parser
    puts ``<svg>`` in the SVG namespace itself, and the page keeps no reference to anything outside it.
    """
    names: list[str] = list(table["columns"])
    indices = list(columns) if columns is not None else [i for i, c in enumerate(names) if is_charted(c)]
    series = chart_series(table)
    # One y range for every chart of the table: 0-100, widened only where a figure lies outside
    # (SpatialBench's uncapped 100 - MAPE can be < 0).
    drawn = [v for s in series for i, v in enumerate(s.values) if v is not None and is_charted(names[i])]
    ylim = (min(0.0, min(drawn, default=0.0) * 1.05), max(100.0, max(drawn, default=0.0) * 1.05))
    buffer = io.StringIO()
    # Matplotlib's default style, not the user's matplotlibrc, so that one input gives one output.
    # text.parse_math off: a model or category name is text, never mathtext ("$\\badmacro{x}$" crashed)
    with (
        mpl.style.context("default"),
        mpl.rc_context({"svg.fonttype": SVG_FONTTYPE, "svg.hashsalt": SVG_HASHSALT, "text.parse_math": False}),
    ):
        figure = _draw([names[i] for i in indices], indices, series, ylim)
        figure.savefig(
            buffer,
            format="svg",
            bbox_inches="tight",  # the legend sits outside the axes
            metadata={"Date": None, "Creator": None, "Format": None, "Type": None},
        )
    titles = {}
    for row, s in enumerate(series):
        for column in indices:
            value = s.values[column]
            if value is None:
                titles[f"missing-{row}-{column}"] = f"{s.name}: {names[column]} missing"
            else:
                titles[f"bar-{row}-{column}"] = f"{s.name}: {names[column]} = {value:.1f}"
    return _inline(buffer.getvalue(), id_prefix, titles)


def bar_chart_html(table: dict[str, Any], *, id_prefix: str) -> str:
    """The table's charts in a ``<figure>``, each in a horizontally scrollable ``<div>`` (see
    ``FONT_SIZE``), whose caption says what is drawn, what is left out and, per row, what is missing."""
    columns: list[str] = list(table["columns"])
    parts = panels(table)
    charted = [index for part in parts for index in part]
    missing = [(s.name, s.missing(columns, charted)) for s in chart_series(table)]
    items = "".join(
        f"<li>{html.escape(name)} (missing: {html.escape(', '.join(names))})</li>" for name, names in missing if names
    )
    caption = (
        f"{html.escape(str(table['benchmark']))}: the headline score and each per-category metric on the 0-100 "
        "scale, our runs solid, published rows hatched; a 0 is a coloured line on the baseline, a metric a row "
        "lacks a grey × there."
    )
    left_out = [column for column in columns if not is_charted(column)]
    if left_out:
        caption += f" Not charted (not per-category scores; see the table): {html.escape(', '.join(left_out))}."
    listing = f"<ul>{items}</ul>" if items else ""
    charts = "".join(
        f'<div style="overflow-x:auto">{bar_chart_svg(table, id_prefix=f"{id_prefix}p{k}-", columns=part)}</div>'
        for k, part in enumerate(parts)
    )
    return f"<figure>{charts}<figcaption>{caption}{listing}</figcaption></figure>"


def _draw(columns: list[str], indices: list[int], series: list[Series], ylim: tuple[float, float]) -> Figure:
    n_columns, n_rows = len(columns), max(len(series), 1)
    slot = max(0.55, 0.12 * n_rows)  # inches per column group: about 0.1 in. per bar
    plot_width = max(min(n_columns * slot, MAX_WIDTH), 3.5)
    # The axes fill the figure; the saved SVG's tight bounding box takes in its labels and legend.
    figure = Figure(figsize=(plot_width, 2.6))
    axes = figure.add_axes((0.0, 0.0, 1.0, 1.0))
    width = 0.8 / n_rows
    marker = min(6.0, max(3.0, 0.9 * width * 72 * plot_width / n_columns))  # points: no wider than a bar
    handles: list[Patch | Line2D] = []
    for row, s in enumerate(series):
        colour = COLOURS[row % len(COLOURS)]
        # A darker edge outlines every bar; hatching (published rows) stays white on the colour.
        edge = tuple(0.6 * channel for channel in colour[:3])
        look: dict[str, Any] = {"facecolor": colour, "edgecolor": edge, "linewidth": 0.6}
        if s.published:
            look |= {"hatch": "///", "hatchcolor": "white"}
        offset = (row - (n_rows - 1) / 2) * width
        for x, column in enumerate(indices):
            value = s.values[column]
            if value is None:
                axes.plot(
                    [x + offset],
                    [0.0],
                    "x",
                    color=MISSING_COLOUR,
                    markersize=marker,
                    markeredgewidth=1.4,
                    clip_on=False,
                    zorder=3,
                    gid=f"missing-{row}-{column}",
                )
                continue
            # Not clipped: a 0 bar's stroke straddles the axes' bottom edge when the range starts at 0.
            (bar,) = axes.bar([x + offset], [value], width, clip_on=False, zorder=2, **look).patches
            if value == 0.0:
                bar.set(edgecolor=colour, linewidth=ZERO_LINEWIDTH)
            bar.set_gid(f"bar-{row}-{column}")
            interval = s.intervals[column] if s.intervals else None
            if interval is not None:  # the 95% interval, as a whisker over the bar
                low, high = interval
                whisker = axes.errorbar(
                    [x + offset], [value], yerr=[[max(value - low, 0.0)], [max(high - value, 0.0)]],
                    fmt="none", ecolor="black", elinewidth=0.8, capsize=2, clip_on=False, zorder=4,
                )  # fmt: skip
                whisker.lines[2][0].set_gid(f"interval-{row}-{column}")
        handles.append(Patch(label=s.label, **look))
    if any(s.values[column] is None for s in series for column in indices):
        handles.append(
            Line2D([], [], marker="x", markeredgewidth=1.4, linestyle="none", color=MISSING_COLOUR, label="no value")
        )
    axes.set_ylim(*ylim)
    axes.set_xlim(-0.5, n_columns - 0.5)
    axes.set_ylabel("0-100", fontsize=FONT_SIZE)
    axes.tick_params(labelsize=FONT_SIZE)
    axes.set_xticks(range(n_columns))
    rotate = n_columns > 5 or max((len(c) for c in columns), default=0) > 8
    labels = axes.set_xticklabels(
        columns, rotation=35 if rotate else 0, ha="right" if rotate else "center", rotation_mode="anchor"
    )
    if indices[:1] == [0]:
        labels[0].set_fontweight("bold")  # the headline
    axes.axhline(0.0, color="black", linewidth=0.6, zorder=1)  # under the bars, so a 0 bar shows
    axes.grid(axis="y", color="#dddddd", linewidth=0.6)
    axes.set_axisbelow(True)
    axes.spines[["top", "right"]].set_visible(False)
    # Above the plot, not beside it: the chart gets no wider, and in a scrolled chart the legend
    # stays at its left edge. Columns as many as fit the width at about 0.6 em per character.
    longest = max(len(line) for handle in handles for line in str(handle.get_label()).splitlines())
    entry = 0.6 + longest * FONT_SIZE * 0.6 / 72
    ncols = max(1, min(len(handles), int(figure.get_figwidth() // entry)))
    axes.legend(
        handles=handles, loc="lower left", bbox_to_anchor=(0.0, 1.02), ncols=ncols, frameon=False, fontsize=FONT_SIZE
    )
    return figure


def _inline(svg: str, id_prefix: str, titles: dict[str, str]) -> str:
    svg = svg[svg.index("<svg") :]  # drop the XML prologue and DOCTYPE
    # Namespace declarations are implied for <svg> in HTML (xlink:href included), and are the only
    # "http" left once the metadata is gone.
    svg = svg.replace(' xmlns="http://www.w3.org/2000/svg"', "").replace(
        ' xmlns:xlink="http://www.w3.org/1999/xlink"', ""
    )
    # matplotlib numbers groups per figure (figure_1, patch_3, ...): every chart would reuse them.
    ids = set(re.findall(r'\bid="([^"]+)"', svg))
    svg = _ID.sub(lambda m: m[1] + (id_prefix + m[2] if m[2] in ids else m[2]), svg)
    for gid, title in titles.items():
        opening = f'<g id="{id_prefix}{gid}">'
        svg = svg.replace(opening, f"{opening}<title>{html.escape(title)}</title>", 1)
    # An inline <style> is not scoped to its <svg>: keep matplotlib's "*{...}" rule inside this chart.
    root = f"{id_prefix}svg"
    svg = svg.replace("<svg ", f'<svg id="{root}" ', 1).replace("*{", f"#{root} *{{", 1)
    return svg.strip()


def _published(row: dict[str, Any]) -> bool:
    return str(row["kind"]).startswith("published:")


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _cut_end(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _wrap(text: str, width: int = LABEL_WIDTH) -> str:
    """Lines of at most ``width`` characters, each broken after a separator in its second half
    where there is one (a path's "/", a query's "?" or "&", a space), else at ``width``."""
    lines = []
    while len(text) > width:
        at = max(text.rfind(separator, width // 2, width) for separator in "/?&, —") + 1
        at = at if at > 0 else width
        lines.append(text[:at].rstrip())
        text = text[at:].lstrip()
    return "\n".join([*lines, text])
