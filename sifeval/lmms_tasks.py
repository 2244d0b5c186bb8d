"""The functions behind sifthinker's lmms-eval tasks (``sifeval/lmms_eval_tasks``): CV-Bench,
V* and SAT asked and scored by the official protocols, inside lmms-eval.

``lmms-eval --tasks sif_cvbench --include_path $(sifeval lmms-eval-tasks)`` loads the YAML files
there; each names these functions (``!function utils.<name>``, ``utils.py`` importing them from
here). What lmms-eval calls, and how (lmms-eval 0.7.3):

- ``doc_to_text(doc, kwargs)`` and ``doc_to_target(doc)`` on docs without their image columns
  (``api/task.py`` L481-487), ``doc_to_visual(doc)`` on the full doc; the chat models send the
  images first, then the text (``api/task.py`` L1762-1812).
- ``process_results(doc, [reply])`` per doc, in up to 4 threads at once (``evaluator.py``
  L249-312), on the reply as the model wrote it: the tasks set ``reasoning_tags: none`` (a task's
  setting wins over the CLI's, ``api/reasoning.py`` L38-51), so ``<think>`` blocks are neither
  cut from the reply nor from the log, as ``sifeval run`` scores them.
- each metric's aggregation on the list of the values ``process_results`` returned under its
  name, one per doc in doc order (``evaluator_utils.py`` L115-123).

Every metric's per-doc value is the same scored sample (:func:`sifeval.rundir.scored_to_json`),
so each aggregation is the benchmark's own :meth:`Benchmark.aggregate` over all of them: the
CV-Bench formula, not lmms-eval's micro average, and the reply's option read by the shared
extractor, not its first character. The prompt is the benchmark's ``plain`` one, as
``sifeval run --mode plain`` asks it; the ``sif_*_sif_rgb`` tasks ask the SIF prompt with the RGB
image, as ``--mode sif-rgb`` does, their user turn built by the same code (``doc_to_messages``:
its texts and images in the SIF order). Every task reads the reply's answer part as ``sifeval``
does in every mode (:func:`sifdata.answers.answer_part`: the last ``<answer>``, else after
``</think>``, else ``\\boxed{}``, else the whole reply).

SAT (``sif_sat``) is circular: :func:`sat_process_docs` turns each question into one doc per
position of the right answer, as the official protocol asks (``sifeval.sat``); its log has one
line per copy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import cache
from typing import Any

from sifeval.adapters import Benchmark, get_benchmark
from sifeval.types import Sample, ScoredSample
from sifmodel.prompts import PromptMode

#: The key every sif task's process_results returns its scored sample under, besides the
#: figures' own names (the rescorer reads logged samples from it).
SCORED_KEY = "sif_scored"
SAT_ORDER_COLUMNS = ("question_index", "rotation")


@cache
def _benchmark(name: str) -> Benchmark:
    return get_benchmark(name)


def _pil(cell: Any) -> Any:
    from sifdata.images import open_image

    if isinstance(cell, dict):  # an image left undecoded: {"bytes": ..., "path": ...}
        cell = open_image(cell["bytes"])
    return cell.convert("RGB")


# ----------------------------------------------------------------------------- samples from docs


def cvbench_sample(doc: dict[str, Any]) -> Sample:
    from sifeval.cvbench import sample_from_row

    return sample_from_row({**doc, "image": None})


def vstar_sample(doc: dict[str, Any]) -> Sample:
    from sifeval.vstar import sample_from_question

    return sample_from_question(doc, images=())


def sat_sample(doc: dict[str, Any]) -> Sample:
    """The copy of a SAT question a doc of :func:`sat_process_docs` asks (its rotation)."""
    from sifeval.sat import samples_from_row

    missing = [column for column in SAT_ORDER_COLUMNS if column not in doc]
    if missing:
        raise ValueError(f"a sif_sat doc lacks {', '.join(missing)}: its docs come from sat_process_docs")
    row = {**doc, "image_bytes": []}
    return samples_from_row(int(doc["question_index"]), row, "official", rotations=(int(doc["rotation"]),))[0]


def sat_process_docs(dataset: Any) -> Any:
    """One doc per (question, position of its right answer): the official circular protocol.

    The docs keep SAT's columns (the answers in their original order) and gain
    ``question_index`` and ``rotation``; a doc asks its answers rotated by ``rotation``."""

    def expand(batch: dict[str, list[Any]], indices: list[int]) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {key: [] for key in (*batch, *SAT_ORDER_COLUMNS)}
        for position, index in enumerate(indices):
            for shift in range(len(batch["answers"][position])):
                for key, values in batch.items():
                    out[key].append(values[position])
                out["question_index"].append(index)
                out["rotation"].append(shift)
        return out

    return dataset.map(expand, batched=True, with_indices=True)


# ----------------------------------------------------------------------------- task functions


def _doc_to_text(make: Callable[[dict[str, Any]], Sample], mode: PromptMode = "plain") -> Callable[..., str]:
    """The question as ``sifeval run --mode MODE`` asks it, as one text (what lmms-eval's
    non-chat models send after the images; chat models get :func:`_doc_to_messages`)."""

    def doc_to_text(doc: dict[str, Any], lmms_eval_specific_kwargs: dict[str, Any] | None = None) -> str:
        sample = make(doc)
        if mode == "plain":
            return sample.question
        from sifdata.prompt import sif_user_parts

        question = sample.sif_question or sample.question
        return "".join(text or "" for kind, text in sif_user_parts(question, with_depth=False) if kind == "text")

    return doc_to_text


def _doc_to_messages(
    make: Callable[[dict[str, Any]], Sample], images: Callable[[dict[str, Any]], list[Any]], mode: PromptMode
) -> Callable[..., list[dict[str, Any]]]:
    """The user turn exactly as ``sifeval run --mode MODE`` builds it (sifmodel.prompts), texts and
    images in its order, in lmms-eval's chat message shape (``api/task.py`` L1762-1840)."""

    def doc_to_messages(
        doc: dict[str, Any], lmms_eval_specific_kwargs: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        from sifmodel.prompts import build_messages

        sample = make(doc)
        question = sample.question if mode == "plain" else sample.sif_question or sample.question
        prompt = build_messages(question, images(doc), mode=mode)  # type: ignore[arg-type]
        content = [
            {"type": "image", "url": value} if kind == "image" else {"type": "text", "text": value}
            for kind, value in prompt.parts
        ]
        return [{"role": "user", "content": content}]

    return doc_to_messages


def _doc_to_target(make: Callable[[dict[str, Any]], Sample]) -> Callable[[dict[str, Any]], str]:
    def doc_to_target(doc: dict[str, Any]) -> str:
        return make(doc).target

    return doc_to_target


def _process_results(
    bench_name: str, make: Callable[[dict[str, Any]], Sample], metrics: Mapping[str, str], mode: PromptMode = "plain"
) -> Callable[[dict[str, Any], list[str]], dict[str, Any]]:
    def process_results(doc: dict[str, Any], results: list[str]) -> dict[str, Any]:
        from sifeval.rundir import scored_to_json

        reply = results[0] if results else ""
        scored = scored_to_json(_benchmark(bench_name).score(make(doc), reply, mode))
        return {SCORED_KEY: scored, **{metric: scored for metric in metrics}}

    return process_results


def _aggregate(bench_name: str, figure: str) -> Callable[[list[dict[str, Any]]], float]:
    def aggregate(items: list[dict[str, Any]]) -> float:
        from sifeval.rundir import scored_from_json

        scored: list[ScoredSample] = [scored_from_json(item) for item in items]
        return float(_benchmark(bench_name).aggregate(scored).get(figure, float("nan")))

    aggregate.__name__ = f"{bench_name}_{figure.replace('/', '_')}"
    return aggregate


def images_of(doc: dict[str, Any]) -> list[Any]:
    return [_pil(doc["image"])]


def sat_images_of(doc: dict[str, Any]) -> list[Any]:
    return [_pil(cell) for cell in doc["image_bytes"]]


#: Each task's lmms-eval metrics and the figure of :meth:`Benchmark.aggregate` each reports
#: (``score`` is the official headline).
CVBENCH_METRICS = {"score": "score", "acc_2D": "acc_2D", "acc_3D": "acc_3D", "micro_accuracy": "micro_accuracy"}
VSTAR_METRICS = {
    "score": "score",
    "direct_attributes": "category/direct_attributes",
    "relative_position": "category/relative_position",
}
SAT_METRICS = {"score": "score", "all_orders_right": "all_orders_right"}

cvbench_doc_to_text = _doc_to_text(cvbench_sample)
cvbench_doc_to_target = _doc_to_target(cvbench_sample)
cvbench_process_results = _process_results("cvbench", cvbench_sample, CVBENCH_METRICS)
cvbench_score = _aggregate("cvbench", "score")
cvbench_acc_2d = _aggregate("cvbench", "acc_2D")
cvbench_acc_3d = _aggregate("cvbench", "acc_3D")
cvbench_micro_accuracy = _aggregate("cvbench", "micro_accuracy")

vstar_doc_to_text = _doc_to_text(vstar_sample)
vstar_doc_to_target = _doc_to_target(vstar_sample)
vstar_process_results = _process_results("vstar", vstar_sample, VSTAR_METRICS)
vstar_score = _aggregate("vstar", "score")
vstar_direct_attributes = _aggregate("vstar", "category/direct_attributes")
vstar_relative_position = _aggregate("vstar", "category/relative_position")

sat_doc_to_text = _doc_to_text(sat_sample)
sat_doc_to_target = _doc_to_target(sat_sample)
sat_process_results = _process_results("sat", sat_sample, SAT_METRICS)
sat_score = _aggregate("sat", "score")
sat_all_orders_right = _aggregate("sat", "all_orders_right")

# The SIF prompt with the RGB image (``--mode sif-rgb``; lmms-eval has no depth estimator), the
# answer read from the chain's ``<answer>``: the sif_*_sif_rgb tasks, for SIF models.
cvbench_sif_doc_to_text = _doc_to_text(cvbench_sample, "sif-rgb")
cvbench_sif_doc_to_messages = _doc_to_messages(cvbench_sample, images_of, "sif-rgb")
cvbench_sif_process_results = _process_results("cvbench", cvbench_sample, CVBENCH_METRICS, "sif-rgb")
vstar_sif_doc_to_text = _doc_to_text(vstar_sample, "sif-rgb")
vstar_sif_doc_to_messages = _doc_to_messages(vstar_sample, images_of, "sif-rgb")
vstar_sif_process_results = _process_results("vstar", vstar_sample, VSTAR_METRICS, "sif-rgb")
sat_sif_doc_to_text = _doc_to_text(sat_sample, "sif-rgb")
sat_sif_doc_to_messages = _doc_to_messages(sat_sample, sat_images_of, "sif-rgb")
sat_sif_process_results = _process_results("sat", sat_sample, SAT_METRICS, "sif-rgb")
