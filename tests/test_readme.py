"""The README is executed (issue 19): every command in its ``bash`` blocks is either run here,
offline, on the tiny models, the mirrors and a scripted server on loopback (its placeholder
paths replaced by real ones, each replacement written below), or listed with the reason it cannot
run here and the test that covers its path. A command added to or changed in the README without
a line here fails the test, so the README cannot drift from the code."""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path

import pytest
from chat_server import ScriptedChatServer
from conftest import VISCOT
from typer.testing import CliRunner

README = Path(__file__).parent.parent / "README.md"


def readme_commands() -> list[str]:
    """Each command line of the README's bash blocks (continuations joined, comments cut)."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", README.read_text(encoding="utf-8"), re.S):
        for line in re.sub(r"\\\n\s*", " ", block).splitlines():
            line = re.sub(r"\s+#\s.*$", "", line).strip()
            if line and not line.startswith("#"):
                commands.append(" ".join(line.split()))
    return commands


TRAINING = "run with the README's overrides by tests/test_training.py::test_readme_cli_path_sft_merge_grpo"
SKIPPED = {
    "scripts/demo": "the demo: tests/test_eval.py::test_whole_loop_demo runs `sifeval demo`, which it calls",
    "scripts/test": "this very suite",
    'pip install -e ".[train,serve,dev]" -c constraints.txt': "an install: scripts/env.sh makes CI's environment so",
    "export SIF_WRITER_BASE_URL=https://api.openai.com/v1 SIF_WRITER_MODEL=gpt-4o SIF_WRITER_API_KEY=...": (
        "sets the next command's environment"
    ),
    "sifdata build --source viscot --source-path viscot_363k.json --image-root viscot_images -o per_subset_cap=10000 "
    "--n 50000 --writer openai --concurrency 16 --depth-model depth-anything/Depth-Anything-V2-Small-hf "
    "--num-shards 64 --out sif-50k": (
        "needs Visual-CoT's training file, its images and a writer endpoint: tests/test_build.py builds from the "
        "real Visual-CoT files with a loopback writer"
    ),
    "sifdata build ... --shard ${SLURM_ARRAY_TASK_ID}/64 --out parts/${SLURM_ARRAY_TASK_ID}": (
        "one line of a job array: tests/test_build.py builds and merges shards"
    ),
    "HF_TOKEN=... sifdata push sif-50k --repo ORG/SIF-50K": "an upload to the Hub (unreachable here); --dry-run runs",
    "scripts/demo --out demo-out": "the demo: tests/test_eval.py::test_whole_loop_demo",
    "sifmodel sft --config configs/sft.yaml model=models/tiny-vlm data=demo-out/sif-demo output_dir=runs/sft "
    "max_steps=2 image_max_pixels=null": TRAINING,
    "sifmodel merge runs/sft --out runs/sft-merged": TRAINING,
    "sifmodel grpo --config configs/grpo.yaml model=runs/sft-merged data=demo-out/sif-demo max_steps=2 "
    "num_generations=2 max_completion_length=32 per_device_train_batch_size=2 judge.kind=match "
    "image_max_pixels=null": TRAINING,
    "sifmodel merge runs/grpo --out runs/sif-model --name ORG/SIFThinker-7B": TRAINING,
    "sifmodel serve runs/sif-model --port 8000": (
        "a server that runs until stopped: tests/test_eval.py::test_openai_backend_against_transformers_serve"
    ),
    "sifeval run --bench viscot --model vllm:runs/sif-model?tensor_parallel_size=4 --data /data/viscot_benchmark "
    "--out runs/viscot --judge llm": "vLLM and a GPU (tests/test_streaming.py reaches the path with a stand-in engine)",
    "sifeval run ... --resume": "a flag of the run above: tests/test_eval.py resumes killed and failed runs",
    "sifeval run ... --shard 3/8": "a flag of the run above: tests/test_eval.py::test_shards_merge_rescore_and_report",
    "sifeval run ... --choice-judge llm": "a flag of the run above: tests/test_reply_shapes.py runs it end to end",
    "pip install 'sifthinker[lmms-eval]'": "an install: scripts/test-lmms-eval makes lmms-eval's environment",
    "lmms-eval --model openai --model_args model_version=ORG/MODEL,base_url=http://127.0.0.1:8000/v1 "
    '--tasks sif_cvbench,sif_vstar,sif_sat --include_path "$(sifeval lmms-eval-tasks)" --log_samples '
    "--output_path lmms-out/": "lmms-eval itself, in its own environment: scripts/test-lmms-eval (run by CI)",
    'pip install -e ".[vllm]"': "an install for GPU machines",
    'sifeval run --bench cvbench --out runs/cvbench --model "vllm:runs/sif-model?tensor_parallel_size=1&'
    'gpu_memory_utilization=0.9&max_model_len=8192&chunk_size=512"': "vLLM and a GPU",
    'sifeval run --bench cvbench --out runs/cvbench --model "vllm:runs/sif-model?data_parallel_size=4"': (
        "vLLM and four GPUs"
    ),
    "vllm serve runs/sif-model --max-num-seqs 256 --limit-mm-per-prompt '{\"image\": 4}' --port 8000 &": (
        "vLLM's own server"
    ),
}

# Commands run here, in order, each with the replacements that make it runnable offline
# (placeholders -> the workspace's real files; a Hub download -> the local mirror).
SCRIPTED = "http://127.0.0.1:8000/v1"
OFFLINE_EVAL = " --data mirrors/{bench} --depth-model models/tiny-depth --limit 3 --max-new-tokens 16"
RUN: list[tuple[str, dict[str, str]]] = [
    ("sifeval list", {}),
    ("sifeval mirror all --out mirrors/", {}),
    ("sifmodel tiny-model models/tiny-vlm", {}),
    ("sifdata import SIF-50K.json --out sif-50k", {}),
    ("sifdata import SIF-50K.json --out sif-50k --image-root /data/sif", {"/data/sif": "images", "--out sif-50k": "--out sif-50k-b"}),
    ("sifdata import SIF-50K.json --out sif-50k-as-published --keep-published-frame", {}),
    ("sifdata export sif-50k --format sif50k --out release/", {}),
    ("sifdata validate sif-50k", {}),
    ("sifdata stats sif-50k", {}),
    ("sifdata show sif-50k sif50k/000001 --out record.png", {}),
    ("sifdata push sif-50k --repo ORG/SIF-50K --dry-run", {}),
    ("sifdata export sif-50k --format llamafactory --out lf/", {}),
    ("sifdata export sif-50k --format trl-sft --out sft/", {}),
    ("sifdata export sif-50k --format trl-grpo --out grpo/", {}),
    ('sifmodel infer --model hf:runs/sif-model --image photo.jpg --question "Which is closer, the cup or the chair?" '
     "--depth-model demo-out/models/tiny-random-depth-anything --out runs/infer", {}),
    ("sifeval run --bench cvbench --model openai:ORG/MODEL@http://127.0.0.1:8000/v1 --out runs/cvbench",
     {"--out runs/cvbench": "--out runs/cvbench" + OFFLINE_EVAL.format(bench="cvbench")}),
    ("sifeval run --bench vstar --model hf:runs/sif-model --data /data/vstar_bench --out runs/vstar --mode sif",
     {"--data /data/vstar_bench": "", "--out runs/vstar": "--out runs/vstar" + OFFLINE_EVAL.format(bench="vstar")}),
    ('sifeval run --bench cvbench --out runs/cvbench --model "openai:runs/sif-model@http://127.0.0.1:8000/v1'
     '?concurrency=128"', {"runs/cvbench": "runs/cvbench-served" + OFFLINE_EVAL.format(bench="cvbench")}),
    ("sifeval rescore runs/cvbench", {}),
    ("sifeval rescore --from-lmms-eval lmms-out/ --data cv_bench=/data/CV-Bench --out runs/lmms-official",
     {"lmms-out/": "lmms-out-cv/"}),  # a log of cv_bench alone: the other tasks' rows would come from the Hub
    ("sifeval rescore --from-lmms-eval lmms-out/ --out runs/lmms-official --data cv_bench=/data/CV-Bench "
     "--data vstar_bench=/data/vstar-bench", {"runs/lmms-official": "runs/lmms-official-2"}),
    ("sifeval report runs/* [--format html --out report.html]", {"[--format html --out report.html]": "--format html --out report.html"}),
    ("sifeval compare runs/model-a runs/model-b [--json]", {"runs/model-a runs/model-b [--json]": "runs/cvbench runs/cvbench-b --json"}),
    ("sifeval view runs/viscot --out sites/viscot [--depth-model M] [--serve]",
     {"runs/viscot": "runs/vstar", " [--depth-model M] [--serve]": ""}),
    ("sifeval view runs/model-a runs/model-b --out sites/a-vs-b", {"runs/model-a runs/model-b": "runs/cvbench runs/cvbench-b"}),
    ("sifdata view sif-50k --out sites/build [--limit N]", {" [--limit N]": " --limit 3"}),
    ("sifeval run --bench vstar --agent zoom --model openai:deepeyes@http://127.0.0.1:8000/v1 --out runs/vstar-zoom",
     {"--out runs/vstar-zoom": "--out runs/vstar-zoom" + OFFLINE_EVAL.format(bench="vstar")}),
    ("sifeval view runs/vstar-zoom --out sites/vstar-zoom", {}),
]  # fmt: skip


def test_every_readme_command_is_run_here_or_says_why_not() -> None:
    ran = {command for command, _ in RUN}
    for command in readme_commands():
        assert command in ran or command in SKIPPED, (
            f"a README command neither run nor skipped with a reason: {command}"
        )
    listed = set(readme_commands())
    stale = [command for command in (*ran, *SKIPPED) if command not in listed]
    assert not stale, f"commands here that the README no longer has: {stale}"


def _workspace(root: Path, tiny_vlm: Path, tiny_depth_model: Path) -> None:
    from lmms_eval_layouts import build_local_copies
    from published_sif50k import write_release

    from sifdata.sources import viscot

    rows = json.loads((VISCOT / "benchmark" / "gqa.json").read_text())[:4]
    sizes = {e.img_path: (e.width, e.height) for e in viscot.read_detection(VISCOT / "benchmark_det" / "gqa.jsonl").values()}  # fmt: skip
    write_release(root, rows, sizes)
    (root / "runs").mkdir()
    (root / "runs" / "sif-model").symlink_to(tiny_vlm)
    (root / "models").mkdir()
    (root / "models" / "tiny-depth").symlink_to(tiny_depth_model)
    (root / "demo-out" / "models").mkdir(parents=True)
    (root / "demo-out" / "models" / "tiny-random-depth-anything").symlink_to(tiny_depth_model)
    from sifdata.sources.synthetic import photos_dir

    shutil.copy(next(photos_dir().glob("*.jpg")), root / "photo.jpg")
    copies = build_local_copies(root / "data-copies")
    logs = Path(__file__).parent / "data" / "lmms_eval" / "default" / "scripted__sif-writer"
    for folder, tasks in (("lmms-out", ("cv_bench", "vstar_bench")), ("lmms-out-cv", ("cv_bench",))):
        (root / folder).mkdir()
        for task in tasks:
            for log in logs.glob(f"*_samples_{task}.jsonl"):
                shutil.copy(log, root / folder)
                shutil.copy(log.with_name(log.name.split("_samples_")[0] + "_results.json"), root / folder)
    for name, hub_id in (("CV-Bench", "nyu-visionx/CV-Bench"), ("vstar-bench", "lmms-lab-encoder/vstar-bench")):
        (root / "data").mkdir(exist_ok=True)
        (root / "data" / name).symlink_to(copies[hub_id])


def test_the_readme_commands_run(
    tmp_path: Path, tiny_vlm: Path, tiny_depth_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sifdata.cli import app as sifdata_app
    from sifeval.cli import app as sifeval_app
    from sifmodel.cli import app as sifmodel_app

    apps = {"sifdata": sifdata_app, "sifeval": sifeval_app, "sifmodel": sifmodel_app}
    _workspace(tmp_path, tiny_vlm, tiny_depth_model)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    with ScriptedChatServer(default="text:<answer>A</answer>") as server:
        for command, replacements in RUN:
            line = command
            for old, new in replacements.items():
                line = line.replace(old, new)
            line = line.replace(SCRIPTED, server.base_url).replace("/data/", f"{tmp_path}/data/")
            if (
                command.startswith(("sifeval view runs/model-a", "sifeval compare"))
                and not (tmp_path / "runs" / "cvbench-b").exists()
            ):
                shutil.copytree(tmp_path / "runs" / "cvbench", tmp_path / "runs" / "cvbench-b")
            words = shlex.split(line)
            if "runs/*" in words:  # the shell's glob
                index = words.index("runs/*")
                words[index : index + 1] = sorted(str(p) for p in (tmp_path / "runs").iterdir())
            result = runner.invoke(apps[words[0]], words[1:])
            assert result.exit_code == 0, f"{command}\n-> {line}\n{result.output[-3000:]}"
    # What the README says of them holds:
    assert (tmp_path / "release" / "SIF-50K.json").read_bytes() == (tmp_path / "SIF-50K.json").read_bytes()
    assert (tmp_path / "report.html").read_text().startswith("<!doctype html>")
    assert (tmp_path / "sites" / "a-vs-b" / "index.html").is_file()
