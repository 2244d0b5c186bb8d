"""sifthinker's lmms-eval tasks (sifeval/lmms_eval_tasks) ask and score as ``sifeval run`` does:
their functions, called here the way lmms-eval 0.7.3 calls them (docs without images for
doc_to_text and process_results, each metric's aggregation on the list of per-doc values), on the
rows of local copies of the datasets their YAML files read. lmms-eval itself loads and runs them
in tests/test_lmms_eval_harness.py (scripts/test-lmms-eval)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from lmms_eval_layouts import build_local_copies

from sifdata.hub import load_local
from sifeval import lmms_tasks
from sifeval.adapters import get_benchmark
from sifeval.types import Sample
from sifmodel.backends import GenerationSettings
from sifmodel.prompts import build_messages

TASKS = Path(lmms_tasks.__file__).parent / "lmms_eval_tasks"


@pytest.fixture(scope="module")
def copies(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_local_copies(tmp_path_factory.mktemp("lmms-data"))


def _docs(folder: Path, config: dict[str, Any]) -> Any:
    """The split a task YAML reads, from a local copy (as lmms-eval's download does)."""
    kwargs = dict(config.get("dataset_kwargs") or {})
    return load_local(folder, config.get("dataset_name"), split=config["test_split"], **kwargs)


def _config(name: str) -> dict[str, Any]:
    """A task's YAML with its ``include`` merged under it (shallow, as lmms-eval's utils.py
    L1031-1056 merges), ``!function utils.f`` read as ``utils.f``."""

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!function", lambda loader, node: loader.construct_scalar(node))  # type: ignore[arg-type]
    config = yaml.load((TASKS / f"{name}.yaml").read_text(), Loader=Loader)
    if "include" in config:
        config = {**_config(config.pop("include").removesuffix(".yaml")), **config}
    return config


def _reply(sample: Sample, mode: str) -> str:
    """A varied scripted model: right, wrong, or unreadable, by the question's id; in a SIF chain
    for the SIF prompt."""
    number = sum(map(ord, sample.id))
    answer = sample.target if number % 3 == 0 else "(B)" if number % 3 == 1 else "I am not sure."
    if mode == "plain":
        return answer
    area = '<area>[{"bbox_2d":[0.1,0.1,0.6,0.6],"depth":0.4}]</area><text>The region.</text>'
    return f"<think>{area}</think><answer>{answer}</answer>" if number % 5 else f"<think>{area}</think>{answer}"


def _without_images(doc: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in doc.items() if key not in ("image", "image_bytes")}


@pytest.mark.parametrize("mode", ["plain", "sif-rgb"])
@pytest.mark.parametrize(
    ("name", "bench", "copy", "metrics"),
    [
        ("sif_cvbench", "cvbench", "nyu-visionx/CV-Bench", lmms_tasks.CVBENCH_METRICS),
        ("sif_vstar", "vstar", "lmms-lab-encoder/vstar-bench", lmms_tasks.VSTAR_METRICS),
        ("sif_sat", "sat", "array/SAT", lmms_tasks.SAT_METRICS),
    ],
)
def test_tasks_ask_and_score_as_sifeval_run(
    copies: dict[str, Path], name: str, bench: str, copy: str, metrics: dict[str, str], mode: str
) -> None:
    task = name if mode == "plain" else f"{name}_sif_rgb"
    config = _config(task)
    assert config["task"] == task and config["reasoning_tags"] == "none"
    assert [entry["metric"] for entry in config["metric_list"]] == list(metrics)
    docs = _docs(copies[copy], config)
    if config.get("process_docs"):
        docs = getattr(lmms_tasks, config["process_docs"].removeprefix("utils."))(docs)
    function = {
        key: getattr(lmms_tasks, config[key].removeprefix("utils."))
        for key in ("doc_to_visual", "doc_to_text", "doc_to_target", "process_results")
    }
    runner_bench = get_benchmark(bench)
    mirrors = {"cvbench": copies["nyu-visionx/CV-Bench"], "vstar": copies[copy].parent / "vstar", "sat": copies[copy]}
    samples = runner_bench.load(mirrors[bench])  # what `sifeval run --data MIRROR` asks
    values: dict[str, list[Any]] = {metric: [] for metric in metrics}
    expected = []
    for index, doc in enumerate(docs):
        bare = _without_images(doc)
        text = function["doc_to_text"](bare, {"default": {}})
        target = function["doc_to_target"](bare)
        images = function["doc_to_visual"](doc)
        assert images and all(image.mode == "RGB" for image in images)
        sample = samples[index]
        assert target == sample.target
        request = runner_bench.request(sample, mode, GenerationSettings())  # type: ignore[arg-type]
        sent = build_messages(request.question, list(request.images), mode=request.mode)
        if mode == "plain":
            assert text == sample.question  # what sifeval run asks, in order
        else:  # the chat models' user turn: sifeval's own, texts and images in its order
            messages = getattr(lmms_tasks, config["doc_to_messages"].removeprefix("utils."))(doc)
            content = messages[0]["content"]
            assert [(part["type"], part.get("text")) for part in content] == [
                (kind, value if kind == "text" else None) for kind, value in sent.parts
            ]
            assert text == "".join(value for kind, value in sent.parts if kind == "text")
        reply = _reply(sample, mode)
        per_doc = function["process_results"](bare, [reply])
        for metric in metrics:
            values[metric].append(per_doc[metric])
        expected.append(runner_bench.score(sample, reply, mode))
    assert len(expected) == len(samples)  # SAT: one doc per copy of the circular protocol
    official = runner_bench.aggregate(expected)
    for metric, figure in metrics.items():
        entry = next(e for e in config["metric_list"] if e["metric"] == metric)
        aggregate = getattr(lmms_tasks, entry["aggregation"].removeprefix("utils."))
        assert aggregate(values[metric]) == pytest.approx(official[figure])
    assert 0 < official["score"] < 100  # the scripted model is neither always right nor always wrong
    if bench == "vstar":  # a plain accuracy: by hand from the script, not from the scorer
        right = [(number := sum(map(ord, s.id))) % 3 == 0 or (number % 3 == 1 and s.target == "B") for s in samples]
        assert official["score"] == pytest.approx(100 * sum(right) / len(right))


def test_the_tasks_folder_is_shipped_and_printed() -> None:
    from typer.testing import CliRunner

    from sifeval.cli import app

    result = CliRunner().invoke(app, ["lmms-eval-tasks"])
    assert result.exit_code == 0
    folder = Path(result.output.strip())
    names = sorted(path.stem for path in folder.glob("*.yaml"))
    assert names == sorted(
        f"sif_{bench}{suffix}" for bench in ("cvbench", "vstar", "sat") for suffix in ("", "_sif_rgb")
    )
    assert (folder / "utils.py").is_file()
