"""sifthinker's lmms-eval tasks inside lmms-eval itself: loaded by its ``TaskManager`` from the
folder ``sifeval lmms-eval-tasks`` prints, and run by its CLI (``--model openai``) against a
scripted loopback server, reporting the official scores ``sifeval run`` reports for the same
replies; their logs re-score to the same figures.

Needs lmms-eval, which the main environment must not carry: ``scripts/test-lmms-eval`` runs this
file in an environment of its own (``.venv-lmms``), with ``SIF_REQUIRE_LMMS_EVAL=1`` so that a
missing lmms-eval fails instead of skipping. The Hub is replaced by local copies of the
mirrors (tests/lmms_eval_layouts.py), nothing else.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from chat_server import ScriptedChatServer
from lmms_eval_layouts import build_local_copies, run_lmms_eval

if os.environ.get("SIF_REQUIRE_LMMS_EVAL") != "1":
    pytest.importorskip("lmms_eval", reason="lmms-eval runs in its own environment: scripts/test-lmms-eval")

TASKS = ("sif_cvbench", "sif_vstar", "sif_sat")
SIF_TASKS = tuple(f"{task}_sif_rgb" for task in TASKS)
SIFEVAL = str(Path(sys.executable).parent / "sifeval")
# Replies by what the question says (the first rule whose key is in the request wins), so both
# harnesses get the same reply for the same question whatever order they ask in.
RULES = [
    ("move to the left or", "left"),
    ("triangle", "The answer is (A)."),
    ("square", "B"),
    ("circle", "I cannot tell."),
]


def _tasks_folder() -> Path:
    done = subprocess.run([SIFEVAL, "lmms-eval-tasks"], capture_output=True, text=True, check=True)
    return Path(done.stdout.strip())


@pytest.fixture(scope="module")
def copies(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_local_copies(tmp_path_factory.mktemp("lmms-data"))


def _server(mode: str) -> ScriptedChatServer:
    server = ScriptedChatServer(default="text:(C)")
    for key, reply in RULES:
        if mode != "plain":  # a SIF chain around the same answer
            reply = f'<think><area>[{{"bbox_2d":[0.1,0.2,0.5,0.6],"depth":0.3}}]</area><text>x</text></think><answer>{reply}</answer>'
        server.script(key, [f"text:{reply}"] * 1000)
    return server


def _shape(request: dict[str, Any]) -> tuple[Any, ...]:
    """A request's messages without the image bytes: roles, part types and texts, in order."""
    return tuple(
        (message["role"], tuple((part["type"], part.get("text")) for part in message["content"]))
        for message in request["messages"]
    )


def test_task_manager_loads_the_tasks(copies: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets
    from lmms_eval.tasks import TaskManager, get_task_dict

    from sifeval.adapters import get_benchmark

    real = datasets.load_dataset

    def local(path: str | None = None, *args: Any, **kwargs: Any) -> Any:  # the Hub, replaced
        return real(str(copies.get(path or "", path)), *args, **kwargs)

    monkeypatch.setattr(datasets, "load_dataset", local)
    manager = TaskManager(include_path=str(_tasks_folder()), include_defaults=False)
    assert set(TASKS) <= set(manager.all_tasks)
    loaded = get_task_dict(list(TASKS), manager)
    sat = loaded["sif_sat"]
    samples = get_benchmark("sat").load(copies["array/SAT"])
    docs = sat.test_docs()
    assert len(docs) == len(samples)  # circular: one doc per position of the right answer
    assert [sat.doc_to_text(doc) for doc in docs] == [sample.question for sample in samples]
    cvbench = loaded["sif_cvbench"]
    first = get_benchmark("cvbench").load(copies["nyu-visionx/CV-Bench"])[0]
    assert cvbench.doc_to_text(cvbench.test_docs()[0]) == first.question
    assert cvbench.process_results(cvbench.test_docs()[0], [first.target])["score"]["score"] == 1.0


@pytest.mark.parametrize("mode", ["plain", "sif-rgb"])
def test_lmms_eval_reports_the_official_scores(copies: dict[str, Path], tmp_path: Path, mode: str) -> None:
    tasks = TASKS if mode == "plain" else SIF_TASKS
    with _server(mode) as server:
        done = run_lmms_eval(
            sys.executable,
            copies,
            server.base_url,
            ",".join(tasks),
            tmp_path / "lmms",
            "--include_path",
            str(_tasks_folder()),
        )
        logs = sorted((tmp_path / "lmms").rglob("*_samples_*.jsonl"))
        assert done.returncode == 0 and len(logs) == 3, done.stderr[-4000:]  # it exits 0 on errors
        record = json.loads(next((tmp_path / "lmms").rglob("*_results.json")).read_text())
        asked_by_lmms_eval = {_shape(request) for request in server.requests}
        ours: dict[str, dict[str, Any]] = {}
        for task, bench, data in zip(
            tasks,
            ("cvbench", "vstar", "sat"),
            (
                copies["nyu-visionx/CV-Bench"],
                copies["lmms-lab-encoder/vstar-bench"].parent / "vstar",
                copies["array/SAT"],
            ),
            strict=True,
        ):
            out = tmp_path / "sifeval" / task
            command = [SIFEVAL, "run", "--bench", bench, "--data", str(data)]
            command += ["--model", f"openai:m@{server.base_url}", "--mode", mode, "--out", str(out), "--no-cache"]
            run = subprocess.run(command, capture_output=True, text=True, check=False)
            assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
            ours[task] = json.loads((out / "results.json").read_text())["metrics"]
        asked_by_sifeval = {_shape(request) for request in server.requests} - asked_by_lmms_eval
    # the same user turns (texts and image places), so the same replies; then the same figures
    assert not asked_by_sifeval, sorted(asked_by_sifeval)[:2]
    for task in tasks:
        reported = record["results"][task]
        assert reported["score,none"] == pytest.approx(ours[task]["score"]), task
    cvbench, _vstar, sat = tasks
    assert record["results"][cvbench]["acc_3D,none"] == pytest.approx(ours[cvbench]["acc_3D"])
    assert record["results"][sat]["all_orders_right,none"] == pytest.approx(ours[sat]["all_orders_right"])
    assert 0 < ours[cvbench]["score"] < 100 and 0 < ours[sat]["score"] < 100

    rescored = subprocess.run(
        [SIFEVAL, "rescore", "--from-lmms-eval", str(tmp_path / "lmms"), "--out", str(tmp_path / "rescored")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert rescored.returncode == 0, rescored.stdout + rescored.stderr
    for log in logs:
        task = log.name.split("_samples_")[1].removesuffix(".jsonl")
        folder = tmp_path / "rescored" / f"{log.name.split('_samples_')[0]}_{task}"
        figures = json.loads((folder / "results.json").read_text())["metrics"]
        assert figures["score"] == pytest.approx(ours[task]["score"]), task
