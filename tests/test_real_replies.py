"""Replies written by real models, published with their authors' verdicts, read by sifeval.

The data (tests/data/real_replies/, Apache-2.0, each folder's SOURCE.md says where it came from):

- ``deepeyes_vstar/``: three checkpoints of the DeepEyes authors' development runs (Qwen2.5-VL-7B
  trained with a zoom-in tool; github.com/Visual-Agent/DeepEyes at c95288a, ``eval_results/``),
  all 191 V* replies each. ``ds4_step48`` is the checkpoint on which ``--mode plain`` once read
  54.97 where the same replies read through ``<answer>`` gave 83.77.
- ``deepeyes7b_replication_vstar/``: the released DeepEyes-7B run on V* by a third party
  (github.com/TrerZy/Deepeyes_replication at e3b42c8), all 191 replies.

Each row holds the transcript (the last assistant message is the reply), the options as the
harness asked them (its prompt's "A. ..." lines: the correct option first, so the target is
always A there) and the authors' verdict ``acc``: their rules, then an LLM judge, where a reply's
option *text* wins over its letter. Every difference between our verdict and theirs is pinned
below with its cause:

- ``conflict``: the reply's letter names one option and its words another ("A. The white truck is
  on the left side ..." where A says "right"); the letter protocol scores the letter (as the
  issue asks) and counts the reply in ``conflicting_replies``; the authors scored the text.
- ``content``: the reply answers about another object ("The street lamp is on the left side of
  the trees." for "... left side of the blue van." / "... right side ..."); the distinguishing
  word "left" is stated, so the content rule reads option A; the authors' judge said wrong.
- ``no reply``: the published transcript has no assistant message (``status: error``): a request
  error here (counted as wrong in the headline, flagged), a 0 there.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import DATA
from typer.testing import CliRunner

from sifeval import get_benchmark
from sifeval.cli import app
from sifeval.runner import scored_to_json
from sifeval.types import Sample, ScoredSample
from sifmodel.backends import GenerationError

REPLIES = DATA / "real_replies"
CATEGORIES = ("direct_attributes", "relative_position")


def _options(prompt: str) -> tuple[str, ...]:
    block = prompt.split("Options:", 1)[1]
    return tuple(match.group(1).strip() for match in re.finditer(r"^[A-Z]\. (.*)$", block, re.M))


def deepeyes_rows(path: Path, category: str) -> Iterator[tuple[int, Sample, str | None, float]]:
    """(line, sample, reply, the authors' verdict) for each line of a DeepEyes V* result file."""
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            row: dict[str, Any] = json.loads(line)
            user = next(m for m in row["pred_output"] if m["role"] == "user")["content"]
            prompt = "".join(part.get("text", "") for part in user if part.get("type") == "text")
            choices = _options(prompt)
            sample = Sample(
                id=f"{category}/{number}",
                question=prompt,
                target="ABCD"[choices.index(row["answer"])],
                category=category,
                choices=choices,
                metadata={"question_core": row["question"]},
            )
            said = [m["content"] for m in row["pred_output"] if m["role"] == "assistant"]
            yield number, sample, (said[-1] if said else None), float(row["acc"])


# (file, category): (rows, right by our reading, right by the authors, {line: cause of a difference})
PINNED: dict[tuple[str, str], tuple[int, int, int, dict[int, str]]] = {
    ("deepeyes_vstar/ds4_step48", "direct_attributes"): (115, 101, 101, {}),
    ("deepeyes_vstar/ds4_step48", "relative_position"): (76, 64, 63, {23: "conflict"}),
    ("deepeyes_vstar/ds4_step72", "direct_attributes"): (115, 102, 102, {}),
    ("deepeyes_vstar/ds4_step72", "relative_position"): (76, 61, 61, {}),
    ("deepeyes_vstar/merge_ds1_step48_ds4_step40", "direct_attributes"): (115, 99, 98, {82: "conflict"}),
    ("deepeyes_vstar/merge_ds1_step48_ds4_step40", "relative_position"): (
        76,
        59,
        50,
        {
            11: "conflict",
            18: "conflict",
            22: "conflict",
            32: "conflict",  # the letter B with option A's text: the authors credit the text
            37: "conflict",
            45: "content",
            48: "content",
            52: "no reply",
            55: "conflict",
            64: "content",
            73: "conflict",
            75: "conflict",
        },
    ),
    ("deepeyes7b_replication_vstar", "direct_attributes"): (115, 103, 103, {}),
    ("deepeyes7b_replication_vstar", "relative_position"): (76, 68, 67, {44: "conflict"}),
}


def _file(folder: str, category: str) -> Path:
    (path,) = (REPLIES / folder).glob(f"result_{category}_*acc.jsonl.gz")
    return path


@pytest.mark.parametrize(("folder", "category"), sorted(PINNED))
@pytest.mark.parametrize("mode", ["plain", "sif"])
def test_real_replies_read_as_pinned_with_every_difference_explained(folder: str, category: str, mode: str) -> None:
    rows, ours_right, authors_right, differences = PINNED[(folder, category)]
    bench = get_benchmark("vstar")
    found: dict[int, str] = {}
    ours = authors = count = 0
    for line, sample, reply, verdict in deepeyes_rows(_file(folder, category), category):
        count += 1
        authors += int(verdict)
        if reply is None:
            found[line] = "no reply"
            continue
        scored = bench.score(sample, reply, mode)
        ours += int(scored.score or 0)
        if scored.score != verdict:
            found[line] = "conflict" if "conflicting_option" in scored.details else scored.details["read_by"]
    assert (count, ours, authors) == (rows, ours_right, authors_right)
    assert found == differences


def _run_folder(folder: Path, source: str, mode: str) -> Path:
    """A run folder holding a published checkpoint's replies, as `sifeval run` would have written it."""
    folder.mkdir(parents=True)
    lines = []
    for category in CATEGORIES:
        for _, sample, reply, _ in deepeyes_rows(_file(source, category), category):
            error = None if reply is not None else GenerationError("request", "no reply in the published transcript")
            lines.append(scored_to_json(ScoredSample(sample, reply, request_error=error)))
    (folder / "samples.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    results = {"benchmark": "vstar", "protocol": "generation", "mode": mode, "model": {"spec": source}}
    (folder / "results.json").write_text(json.dumps(results), encoding="utf-8")
    return folder


@pytest.mark.parametrize("mode", ["plain", "sif"])
def test_sifeval_rescore_of_the_checkpoint_that_lost_60_replies(tmp_path: Path, mode: str) -> None:
    """DeepEyes ds4 step 48 read 54.97 in plain mode and 83.77 in sif mode before the one answer
    reader; its authors report 85.86 (summary.txt). Now: 165 of 191 in both modes (86.39), the
    one difference a letter/text conflict."""
    run = _run_folder(tmp_path / mode, "deepeyes_vstar/ds4_step48", mode)
    result = CliRunner().invoke(app, ["rescore", str(run)])
    assert result.exit_code == 0, result.output
    results = json.loads((run / "results.json").read_text())
    assert results["metrics"]["score"] == pytest.approx(100 * 165 / 191)
    assert results["metrics"]["category/direct_attributes"] == pytest.approx(100 * 101 / 115)
    assert results["metrics"]["category/relative_position"] == pytest.approx(100 * 64 / 76)
    assert (results["parse_failures"], results["conflicting_replies"], results["choice_judge_calls"]) == (0, 1, 0)
    assert any("1 replies state one option's letter and another option's text" in note for note in results["notes"])
    summary = (REPLIES / "deepeyes_vstar/ds4_step48/summary.txt").read_text()
    assert "Overall Accuracy: 85.86%" in summary  # the authors' figure, 164 of 191: the conflict is the gap


def test_a_transcript_without_a_reply_is_a_request_error_never_dropped(tmp_path: Path) -> None:
    run = _run_folder(tmp_path / "merge", "deepeyes_vstar/merge_ds1_step48_ds4_step40", "plain")
    result = CliRunner().invoke(app, ["rescore", str(run)])
    assert result.exit_code == 0, result.output
    results = json.loads((run / "results.json").read_text())
    assert (results["n"], results["n_scored"], results["request_errors"]) == (191, 190, 1)
    assert results["metrics"]["score"] == pytest.approx(100 * (99 + 59) / 191)  # the missing reply counts as wrong
    assert results["metrics"]["score_answered_only"] == pytest.approx(100 * (99 + 59) / 190)
    assert not results["complete"] and results["conflicting_replies"] == 9
