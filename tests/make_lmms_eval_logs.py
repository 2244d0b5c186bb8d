"""Regenerates the real lmms-eval 0.7.3 logs in ``tests/data/lmms_eval`` (see its README).

Run in the lmms-eval environment: ``.venv-lmms/bin/python tests/make_lmms_eval_logs.py``
(``scripts/test-lmms-eval`` creates it). lmms-eval's own tasks ``cv_bench``, ``vstar_bench`` and
``sat`` run through its CLI (``--model openai``) against a scripted loopback server on local
copies of sifeval's mirrors (``tests/lmms_eval_layouts.py``), each task in its own run so its
replies come in order; SAT runs twice, with the default flags and with ``--reasoning_tags none``.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from chat_server import ScriptedChatServer
from lmms_eval_layouts import build_local_copies, run_lmms_eval

HERE = Path(__file__).parent / "data" / "lmms_eval"

# The replies, one per doc in order: shapes lmms-eval and the official protocols read differently.
REPLIES = {
    "cv_bench": [
        "(A)",
        "The answer is (B).",
        "B",
        "Answer: C",
        "<think>The left one is nearer.</think>(A)",
        "I cannot tell from this image.",
        "400",
        "(C) 1",
        "D",
        "The answer is (A).",
        "A",
        "(B)",
        "b",
        "Answer: D",
        "(A)",
        "The second option, (B).",
    ],
    "vstar_bench": [
        "Answer: C",
        "The answer is B",
        "(D)",
        "A",
        "<think>It looks blue.</think>B",
        "C.",
        "Based on the picture, I cannot tell.",
        "B",
        "(A)",
        "D",
        "The answer is (C).",
        "A",
    ],
    "sat": [
        "The answer is B.",
        "A",
        "(B)",
        "B. right",
        "The answer is A.",
        "B",
        "a",
        "(A)",
        "The answer is B.",
        "A",
        "B",
        "<think>hmm</think>A",
    ],
}


def main() -> None:
    python = sys.executable
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        redirects = build_local_copies(root / "data")
        runs = [("cv_bench", "default", ()), ("vstar_bench", "default", ()), ("sat", "default", ())]
        runs.append(("sat", "raw", ("--reasoning_tags", "none")))
        for task, flavour, extra in runs:
            output = root / f"out-{task}-{flavour}"
            with ScriptedChatServer(default="text:(Z)") as server:
                server.script("", [r if r == "400" else f"text:{r}" for r in REPLIES[task]])
                done = run_lmms_eval(
                    python,
                    redirects,
                    server.base_url,
                    task,
                    output,
                    *extra,
                    model_args="model_version=scripted/sif-writer,num_concurrent=1,max_retries=1",
                )
            if done.returncode != 0 or not list(output.rglob("*_samples_*.jsonl")):  # it exits 0 on errors
                raise SystemExit(f"lmms-eval failed on {task}:\n{done.stderr[-3000:]}")
            target = HERE / flavour
            for path in output.rglob("*.json*"):
                if "datasets-cache" in path.parts:
                    continue
                relative = path.relative_to(output)
                (target / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target / relative)
                print(target / relative)


if __name__ == "__main__":
    main()
