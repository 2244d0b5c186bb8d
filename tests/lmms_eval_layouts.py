"""Local copies of the datasets lmms-eval's tasks read, built from sifeval's embedded mirrors, and
a way to run lmms-eval's own CLI on them against a loopback server.

The Hub is the one boundary no test reaches: :data:`DRIVER` runs ``lmms_eval``'s real CLI with
``datasets.load_dataset`` sending each Hub id to its local copy (nothing else is changed).

Layouts (what lmms-eval 0.7.3's task code reads):
- ``nyu-visionx/CV-Bench``: the mirror's two files with ``target_size`` a string in both: in the
  Hub layout it is an integer in ``test_2d.parquet`` and a string in ``test_3d.parquet``, so the
  ``default`` config ``tasks/cv_bench/cv_bench.yaml`` loads fails there ("Failed to parse string:
  'large' as a scalar of type int64"); the rows, their order and every column it reads are the
  mirror's.
- ``lmms-lab-encoder/vstar-bench``: one ``test.parquet`` with ``image``, ``text``, ``label``,
  ``category``, ``question_id`` (``tasks/vstar_bench/utils.py`` L7-108 read these).
- ``nv-njb/SAT``: one ``test.parquet`` with ``image_bytes`` (a list of images), ``question``,
  ``answers``, ``question_type``, ``correct_answer_idx`` (``tasks/sat/utils.py`` L9-34).
- ``array/SAT``: the mirror itself (``SAT_test.parquet``; sifthinker's ``sif_sat``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

DRIVER = """
import json, os, sys
import datasets
redirects = json.loads(os.environ["SIF_LMMS_REDIRECTS"])
real = datasets.load_dataset
def load_dataset(path=None, *args, **kwargs):
    return real(redirects.get(path, path), *args, **kwargs)
datasets.load_dataset = load_dataset
from lmms_eval.__main__ import cli_evaluate
sys.argv = ["lmms-eval", *sys.argv[1:]]
cli_evaluate()
"""


def build_local_copies(root: Path) -> dict[str, Path]:
    """Hub id -> a local copy in the layout lmms-eval's task reads."""
    import datasets
    import pyarrow.parquet as pq

    from sifeval.mirrors import build_mirror

    cvbench = build_mirror("cvbench", root / "cvbench")
    vstar = build_mirror("vstar", root / "vstar")
    sat = build_mirror("sat", root / "sat")

    cvbench_copy = root / "CV-Bench"
    cvbench_copy.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(cvbench / "README.md", cvbench_copy / "README.md")
    for config in ("2D", "3D"):
        half = datasets.load_dataset(str(cvbench), config, split="test", cache_dir=str(root / "cache"))
        half = half.cast_column("target_size", datasets.Value("string"))
        half.to_parquet(str(cvbench_copy / f"test_{config.lower()}.parquet"))

    rows = [json.loads(line) for line in (vstar / "test_questions.jsonl").read_text().splitlines() if line.strip()]
    vstar_rehost = root / "vstar-bench"
    vstar_rehost.mkdir(parents=True, exist_ok=True)
    features = datasets.Features(
        {
            "image": datasets.Image(),
            "text": datasets.Value("string"),
            "label": datasets.Value("string"),
            "category": datasets.Value("string"),
            "question_id": datasets.Value("int64"),
        }
    )
    table = {
        "image": [{"bytes": (vstar / row["image"]).read_bytes(), "path": row["image"]} for row in rows],
        "text": [row["text"] for row in rows],
        "label": [row["label"] for row in rows],
        "category": [row["category"] for row in rows],
        "question_id": [int(row["question_id"]) for row in rows],
    }
    datasets.Dataset.from_dict(table, features=features).to_parquet(str(vstar_rehost / "test.parquet"))

    sat_rows: list[dict[str, Any]] = pq.read_table(sat / "SAT_test.parquet").to_pylist()
    sat_rehost = root / "nv-njb-SAT"
    sat_rehost.mkdir(parents=True, exist_ok=True)
    sat_features = datasets.Features(
        {
            "image_bytes": datasets.List(datasets.Image()),
            "question": datasets.Value("string"),
            "answers": datasets.List(datasets.Value("string")),
            "question_type": datasets.Value("string"),
            "correct_answer_idx": datasets.Value("int64"),
        }
    )
    sat_table = {
        "image_bytes": [row["image_bytes"] for row in sat_rows],
        "question": [row["question"] for row in sat_rows],
        "answers": [row["answers"] for row in sat_rows],
        "question_type": [row["question_type"] for row in sat_rows],
        "correct_answer_idx": [row["answers"].index(row["correct_answer"]) for row in sat_rows],
    }
    datasets.Dataset.from_dict(sat_table, features=sat_features).to_parquet(str(sat_rehost / "test.parquet"))
    return {
        "nyu-visionx/CV-Bench": cvbench_copy,
        "lmms-lab-encoder/vstar-bench": vstar_rehost,
        "nv-njb/SAT": sat_rehost,
        "array/SAT": sat,
    }


def run_lmms_eval(
    python: str,
    redirects: dict[str, Path],
    base_url: str,
    tasks: str,
    output: Path,
    *extra: str,
    model_args: str = "model_version=scripted/sif-writer,num_concurrent=2,max_retries=1",
    timeout: float = 600,
) -> subprocess.CompletedProcess[str]:
    """lmms-eval's CLI (``--model openai``, its chat backend) on ``tasks`` against ``base_url``,
    logging samples under ``output``."""
    env = {
        **os.environ,
        "SIF_LMMS_REDIRECTS": json.dumps({key: str(value) for key, value in redirects.items()}),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "HF_DATASETS_CACHE": str(output / "datasets-cache"),
        "OPENAI_API_KEY": "not-a-secret",
        "OPENAI_API_BASE": base_url,
        "WANDB_MODE": "disabled",
    }
    command = [
        python,
        "-c",
        DRIVER,
        "--model",
        "openai",
        "--model_args",
        model_args,
        "--tasks",
        tasks,
        "--log_samples",
        "--output_path",
        str(output),
        *extra,
    ]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, check=False)


if __name__ == "__main__":  # python tests/lmms_eval_layouts.py OUT: build the copies, print them
    print(json.dumps({key: str(value) for key, value in build_local_copies(Path(sys.argv[1])).items()}, indent=2))
