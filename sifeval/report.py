"""Side-by-side reports of runs and published numbers, per category, in Markdown or HTML."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sifdata.secrets import redact
from sifeval.published import published
from sifeval.rundir import RESULTS


def _number(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    return str(value) if isinstance(value, int) else f"{value:.1f}"


def load_results(runs: Sequence[str | Path], skipped: list[str] | None = None) -> list[dict[str, Any]]:
    """The results of ``runs`` (run folders or ``results.json`` files). Given ``skipped``, a
    folder that holds no run (a training output beside the runs: ``sifeval report runs/*``) is
    named there and passed over; a run that cannot be read, or no run at all, is an error."""
    import json

    loaded = []
    for run in runs:
        path = Path(run) / RESULTS if Path(run).is_dir() else Path(run)
        if not path.is_file():
            if skipped is not None and Path(run).is_dir():
                skipped.append(str(run))
                continue
            raise FileNotFoundError(f"{run} has no {RESULTS}")
        try:
            loaded.append(json.loads(path.read_text(encoding="utf-8")))
        except (ValueError, UnicodeDecodeError) as error:
            raise ValueError(f"{path} is not a results file: {error}") from None
    if not loaded:
        raise FileNotFoundError(f"none of {', '.join(map(str, runs))} holds a run ({RESULTS})")
    return loaded


def report_rows(results: list[dict[str, Any]], with_published: bool = True) -> list[dict[str, Any]]:
    """One table per benchmark: our runs first, then published rows, protocol differences flagged."""
    tables = []
    reference = published() if with_published else {}
    for benchmark in sorted({r["benchmark"] for r in results}):
        ours = [r for r in results if r["benchmark"] == benchmark]
        columns = ["score", *sorted({k for r in ours for k in r["metrics"] if k != "score"})]
        rows = []
        for result in ours:
            differing = _differing_settings(result, ours)
            rows.append(
                {
                    "model": redact(str(result["model"].get("spec", "?"))),
                    "kind": f"this run ({', '.join([result['mode'], result['protocol'], *differing])})",
                    "metrics": result["metrics"],
                    "intervals": result.get("intervals") or {},
                    "n": result["n"],
                    "parse_failures": result["parse_failure_rate"],
                    "request_errors": result["request_error_rate"],
                    "flag": "; ".join(
                        part for part in (_run_flag(result), _power_note(result), agent_note(result)) if part
                    ),
                }
            )
        entry = reference.get(benchmark, {})
        tags = entry.get("protocols", {})
        ran = sorted({r["protocol"] for r in ours})
        for row in entry.get("rows", []):
            matching = [p for p in ran if row.get("protocol") in (p, tags.get(p))]
            if len(matching) == len(ran):
                flag = _verdict(row, ours)
            elif matching:
                flag = f"protocol is that of the {', '.join(matching)} run(s) only"
            else:
                flag = f"protocol differs: {row.get('protocol', 'unknown')} (these runs: {', '.join(ran)})"
            rows.append(
                {
                    "model": row["model"],
                    "kind": f"published: {row['source']}",
                    "metrics": row["metrics"],
                    "intervals": {},
                    "n": None,
                    "parse_failures": None,
                    "request_errors": None,
                    "flag": flag,
                }
            )
        tables.append({"benchmark": benchmark, "columns": columns, "rows": rows, "missing": entry.get("missing")})
    return tables


def _power_note(result: dict[str, Any]) -> str:
    smallest = (result.get("power") or {}).get("min_detectable_difference")
    return f"a comparison could detect {smallest:.1f} points (80% power)" if smallest is not None else ""


def _verdict(row: dict[str, Any], ours: Sequence[dict[str, Any]]) -> str:
    """Whether a published figure lies inside our run's 95% interval, per figure both have (only
    for a published row of our protocol: a protocol difference is flagged instead, since no
    interval can settle it)."""
    verdicts = []
    for result in ours:
        for metric, value in row.get("metrics", {}).items():
            found = (result.get("intervals") or {}).get(metric)
            if value is None or not found or found.get("ci95") is None:
                continue
            low, high = found["ci95"]
            where = "inside" if low <= float(value) <= high else "outside"
            verdicts.append(f"{metric} {_number(value)} {where} [{_number(low)}, {_number(high)}]")
        if verdicts:
            return "reproduction: " + "; ".join(verdicts) + f" ({redact(str(result['model'].get('spec', '?')))})"
    return ""


def agent_note(result: dict[str, Any]) -> str:
    """What a zoom agent did in this run, in one line ("" for a run of single replies)."""
    agent = result.get("agent") or {}
    if not agent.get("samples"):
        return ""
    parts = [
        f"zoom agent: {agent['turns_mean']:.2f} turns and {agent['tool_calls_mean']:.2f} tool calls per sample",
        f"{100 * agent['zoomed_share']:.0f}% of samples zoomed",
        f"{agent['tool_errors']} calls refused, {agent['out_of_turns']} samples out of turns",
    ]
    if agent.get("zoom_area_share_median") is not None:
        parts.append(f"median zoom {100 * agent['zoom_area_share_median']:.1f}% of the image")
    if agent.get("last_zoom_holds_truth_share") is not None:
        held, count = agent["last_zoom_holds_truth_share"], agent["last_zoom_with_truth"]
        parts.append(f"the last zoom holds the ground truth in {100 * held:.0f}% of {count}")
    return ", ".join(parts)


def _settings(result: dict[str, Any]) -> dict[str, Any]:
    agent = (result.get("agent") or {}).get("settings") or {}
    kind = {"agent": agent.get("agent")} if agent else {}
    return {**(result.get("generation") or {}), **(result.get("protocol_options") or {}), **kind}


def _differing_settings(result: dict[str, Any], runs: Sequence[dict[str, Any]]) -> list[str]:
    """``key=value`` for each generation setting or protocol option in which this run differs from
    another run of the table (so that two rows never look alike)."""
    own = _settings(result)
    others = [_settings(run) for run in runs if run is not result]
    keys = sorted({key for other in others for key in {*own, *other} if other.get(key) != own.get(key)})
    return [f"{key}={own.get(key)}" for key in keys]


def _run_flag(result: dict[str, Any]) -> str:
    """What a reader must know beside a run's figures: an incomplete run, a choice judge (not the
    official protocol)."""
    flags = [] if result.get("complete", True) else ["incomplete: " + _why_incomplete(result)]
    judge = (result.get("protocol_options") or {}).get("choice_judge")
    if judge:
        calls = result.get("choice_judge_calls", 0)
        flags.append(f"differs from the official protocol: choice judge {judge} ({calls} replies mapped by it)")
    return "; ".join(flags)


def _why_incomplete(result: dict[str, Any]) -> str:
    reasons = []
    if result.get("request_errors"):
        reasons.append(f"{result['request_errors']} request errors")
    if result.get("judge_failures"):
        reasons.append(f"{result['judge_failures']} judge failures")
    return ", ".join(reasons) or "a partial run"


def _header(columns: list[str]) -> list[str]:
    return ["model", "source", *columns, "n", "parse fail", "req. errors", "note"]


def _cells(row: dict[str, Any], columns: list[str]) -> list[str]:
    """One row's cells, in the order of :func:`_header`."""
    return [
        str(row["model"]),
        str(row["kind"]),
        *(_with_interval(row["metrics"].get(c), (row.get("intervals") or {}).get(c)) for c in columns),
        _number(row["n"]),
        _rate(row["parse_failures"]),
        _rate(row["request_errors"]),
        str(row["flag"]),
    ]


def to_markdown(tables: list[dict[str, Any]]) -> str:
    parts = []
    for table in tables:
        head = _header(table["columns"])
        lines = [f"## {table['benchmark']}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(_cells(row, table["columns"])) + " |" for row in table["rows"]]
        if table["missing"]:
            lines += ["", f"Published: {table['missing']}"]
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


def _with_interval(value: Any, found: dict[str, Any] | None) -> str:
    """``62.3 [58.1, 66.4]``: the figure and its 95% interval (:mod:`sifeval.intervals`), where
    it has one."""
    if not found or found.get("ci95") is None:
        return _number(value)
    low, high = found["ci95"]
    return f"{_number(value)} [{_number(low)}, {_number(high)}]"


def _rate(value: float | None) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.1f}%"


def to_html(tables: list[dict[str, Any]]) -> str:
    """One self-contained page: per benchmark, the table and a bar chart of its rows, inlined as SVG."""
    from sifeval.plots import bar_chart_html  # matplotlib: only the HTML report pays for its import

    body = []
    for index, table in enumerate(tables):
        head = "".join(f"<th>{html.escape(c)}</th>" for c in _header(table["columns"]))
        rows = [
            "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in _cells(row, table["columns"])) + "</tr>"
            for row in table["rows"]
        ]
        missing = f"<p>Published: {html.escape(table['missing'])}</p>" if table["missing"] else ""
        chart = bar_chart_html(table, id_prefix=f"chart{index}-")
        # A wide table (VisCoT's is ~3200 px) scrolls inside its own box; the page does not.
        grid = f'<div style="overflow-x:auto"><table><tr>{head}</tr>{"".join(rows)}</table></div>'
        body.append(f"<h2>{html.escape(table['benchmark'])}</h2>{grid}{missing}{chart}")
    # Charts are shown at their natural size (no max-width scaling, which shrank a wide chart's
    # text to 7-8 px), each in its own scrolling box: see sifeval.plots.FONT_SIZE.
    style = (
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;font:13px sans-serif}"
        "figure{margin:12px 0}figure svg{display:block}figcaption{font:12px sans-serif;color:#444}"
    )
    benchmarks = ", ".join(table["benchmark"] for table in tables)
    title = html.escape(f"sifeval report: {benchmarks}")
    head = f"<head><meta charset='utf-8'><title>{title}</title><style>{style}</style></head>"
    body.insert(0, f"<h1>{title}</h1>")
    return f"<!doctype html><html>{head}<body>{''.join(body)}</body></html>\n"
