"""What a zoom agent did over a run: how often it zoomed, how big its boxes were, whether its
last zoom held the benchmark's ground truth (where the benchmark has one: VisCoT, V*). Read
from the transcripts in ``samples.jsonl`` (``results.json``'s ``agent`` block, the report).
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Sequence
from typing import Any

from sifdata.geometry import area, intersection
from sifeval.adapters import Benchmark
from sifeval.transcripts import Transcript
from sifeval.types import Sample, ScoredSample

FULLY_HELD = 0.999  # a ground-truth box this much inside the last zoom counts as held


def with_truth_coverage(bench: Benchmark, sample: Sample, transcript: Transcript) -> Transcript:
    """``transcript`` with the share of ``sample``'s ground-truth area (the sum of its boxes')
    inside its last zoom on its own image; unchanged where there is no such zoom or no truth
    (the sample's image is needed: this runs when the sample is scored, with its images)."""
    last = [s for turn in transcript.turns for s in turn.steps if s.box is not None and s.image == 0 and s.size]
    if not last or last[-1].size is None or last[-1].box is None:
        return transcript
    (width, height), zoom = last[-1].size, last[-1].box
    try:
        normalized = bench.truth_boxes(sample, width, height)
    except (OSError, ValueError):
        return transcript
    truth = [(x1 * width, y1 * height, x2 * width, y2 * height) for x1, y1, x2, y2 in normalized]
    held = sum(area(box) for box in truth)
    if held <= 0:
        return transcript
    inside = sum((intersection(box, zoom) for box in truth), 0.0)
    return dataclasses.replace(transcript, truth_coverage=inside / held)


def agent_statistics(scored: Sequence[ScoredSample]) -> dict[str, Any]:
    """Counts over the samples with a transcript ({} when none has one). ``zoomed_share``: the
    share of samples with at least one executed zoom (a call answered with an error is not one,
    and is counted in ``tool_errors``). Box sizes are the share of the image's area each
    executed zoom covers (on the sample's own image). ``last_zoom_*``: over the samples whose
    last zoom could be set against the benchmark's ground truth (:func:`with_truth_coverage`)."""
    transcripts = [item.transcript for item in scored if item.transcript is not None]
    if not transcripts:
        return {}
    steps = [step for transcript in transcripts for turn in transcript.turns for step in turn.steps]
    executed = [step for step in steps if step.box is not None]
    shares = [
        area(step.box) / (step.size[0] * step.size[1])
        for step in executed
        if step.box is not None and step.image == 0 and step.size is not None
    ]
    coverage = [t.truth_coverage for t in transcripts if t.truth_coverage is not None]
    return {
        "samples": len(transcripts),
        "turns_mean": statistics.fmean(len(t.turns) for t in transcripts),
        "tool_calls_mean": statistics.fmean(t.tool_calls for t in transcripts),
        "zoomed_share": sum(1 for t in transcripts if t.zoom_boxes) / len(transcripts),
        "tool_calls": len(steps),
        "tool_errors": len(steps) - len(executed),
        "out_of_turns": sum(1 for t in transcripts if t.stopped == "max-turns"),
        "zoom_area_share_median": statistics.median(shares) if shares else None,
        "zoom_area_share_mean": statistics.fmean(shares) if shares else None,
        "last_zoom_with_truth": len(coverage),
        "last_zoom_truth_coverage_mean": statistics.fmean(coverage) if coverage else None,
        "last_zoom_holds_truth_share": (
            sum(1 for value in coverage if value >= FULLY_HELD) / len(coverage) if coverage else None
        ),
    }
