"""CV-Bench (``nyu-visionx/CV-Bench``): 2,638 multiple-choice questions, 2D (ADE20K, COCO) and
3D (Omni3D).

Official score: acc_2D = (acc_ADE20K + acc_COCO) / 2, acc_3D = acc_Omni3D, CV-Bench =
(acc_2D + acc_3D) / 2; also per task and per source. Micro accuracy is reported beside it under
its own name, never as the score. The reply's answer part (:func:`sifdata.answers.answer_part`:
the last ``<answer>``, else after ``</think>``, else ``\\boxed{}``, else the whole reply, in every
prompt mode) is read for an option by the shared reader (``"The answer is (B)"`` is B, not "T";
an option's text, or its distinguishing words, when no letter is given); a letter contradicted by
the words is scored by the letter and counted. ``--choice-judge llm`` (not the official protocol)
maps the replies the rules cannot read with a judge model.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sifdata.hub import load_local
from sifeval.adapters import (
    ANSWER_WITH_LETTER,
    LETTERS,
    MultipleChoiceBenchmark,
    accuracy,
    accuracy_term,
    by,
    mean_of_groups,
    mean_over,
    options_block,
)
from sifeval.intervals import Term
from sifeval.types import ImageRef, Sample, ScoredSample, Source

# What scoring and prompting read; the provenance columns are left out (their types differ
# between the two files).
COLUMNS = ("idx", "type", "task", "image", "question", "choices", "answer", "prompt", "source")

CARD = """---
license: apache-2.0
configs:
- config_name: default
  data_files:
  - split: test
    path:
    - test_2d.parquet
    - test_3d.parquet
- config_name: 2D
  data_files:
  - split: test
    path: test_2d.parquet
- config_name: 3D
  data_files:
  - split: test
    path: test_3d.parquet
---
"""


def sample_from_row(row: dict[str, Any]) -> Sample:
    choices = tuple(row["choices"])
    target = row["answer"].strip().strip("()").upper()
    question = f"{row['question']}\n{options_block(choices)}"
    return Sample(
        id=str(row["idx"]),
        question=f"{row['prompt']}\n{ANSWER_WITH_LETTER}",
        target=target,
        category=row["task"],
        # The loader casts the column to undecoded images ({"bytes", "path"}); lmms-eval's documents have none.
        images=(ImageRef(data=row["image"]["bytes"]),) if row.get("image") is not None else (),
        choices=choices,
        sif_question=question,
        metadata={"type": row["type"], "source": row["source"], "task": row["task"], "question_core": row["question"]},
    )


class CVBench(MultipleChoiceBenchmark):
    name = "cvbench"
    title = "CV-Bench"
    source = Source(hub_id="nyu-visionx/CV-Bench", split="test", license="apache-2.0", config="default")
    protocols = ("official",)
    default_protocol = "official"
    categories = ("ADE20K", "COCO", "Omni3D")
    layout = (
        "test_2d.parquet and test_3d.parquet with idx, type, task, image, question, choices, answer, prompt, source"
    )

    def load(self, data_dir: str | Path | None = None) -> list[Sample]:
        """Both halves, each from its own config (``2D``: ``test_2d.parquet``, ``3D``:
        ``test_3d.parquet``), joined here: the ``default`` config reads the two files as one
        table, which fails where their provenance columns (``target_size``, ``bbox``, ...) have
        different types in the two files. A copy without the two configs is read as ``default``."""
        return [sample_from_row(row) for row in self._both_halves(data_dir, COLUMNS)]

    def rows_without_images(self, data_dir: str | Path | None = None) -> list[dict[str, Any]]:
        """The rows in the ``default`` config's order (2D, then 3D), without the image: the
        docs lmms-eval's ``cv_bench`` task numbers by ``doc_id``."""
        return self._both_halves(data_dir, tuple(column for column in COLUMNS if column != "image"))

    def _both_halves(self, data_dir: str | Path | None, columns: Sequence[str]) -> list[dict[str, Any]]:
        if data_dir is not None and not any(Path(data_dir).rglob("test*.parquet")):
            raise FileNotFoundError(f"{data_dir} has no test*.parquet: CV-Bench's layout is {self.layout}")
        rows: list[dict[str, Any]] = []
        try:
            for config in ("2D", "3D"):
                rows.extend(self._rows(data_dir, config, columns))
        except ValueError as error:  # no such config: an older layout with one table
            if "2D" not in str(error) and "3D" not in str(error):
                raise
            rows = self._rows(data_dir, "default", columns)
        return rows

    def _rows(self, data_dir: str | Path | None, config: str, columns: Sequence[str]) -> list[dict[str, Any]]:
        import datasets

        if data_dir:
            table = load_local(data_dir, config, split=self.source.split)
        else:  # pragma: no mutate block
            table = datasets.load_dataset(
                self.source.hub_id, config, split=self.source.split, revision=self.source.revision
            )
        table = table.select_columns([c for c in columns if c in table.column_names])
        if "image" in table.column_names:
            table = table.cast_column("image", datasets.Image(decode=False))
        return list(table)

    @classmethod
    def build_mirror(cls, out: str | Path, seed: int = 0) -> Path:  # pragma: no mutate block
        return build_mirror(out, seed=seed)

    def samples_from_lmms_eval(self, doc: dict[str, Any], doc_id: int) -> list[Sample]:
        return [sample_from_row({**doc, "image": None})]

    def aggregate(self, scored: Sequence[ScoredSample]) -> dict[str, float]:
        """The card's formula: ((ADE20K + COCO) / 2 + Omni3D) / 2; a missing source makes it NaN."""
        sources = {name: accuracy(group) for name, group in by(scored, lambda s: s.sample.metadata["source"]).items()}
        acc_2d = mean_over(sources, ("ADE20K", "COCO"))
        acc_3d = sources.get("Omni3D", float("nan"))
        metrics = {
            "score": (acc_2d + acc_3d) / 2,
            "acc_2D": acc_2d,
            "acc_3D": acc_3d,
            "micro_accuracy": accuracy(scored),
        }
        metrics.update({f"source/{name}": sources.get(name, float("nan")) for name in self.categories})
        tasks = by(scored, lambda s: s.sample.metadata["task"])
        metrics.update({f"task/{name}": accuracy(group) for name, group in sorted(tasks.items())})
        return metrics

    def figure_terms(self, scored: Sequence[ScoredSample]) -> dict[str, list[Term]]:
        by_source = by(scored, lambda s: s.sample.metadata["source"])
        sources = {name: accuracy_term(group) for name, group in by_source.items()}
        acc_2d = mean_of_groups(sources, ("ADE20K", "COCO"))
        acc_3d = sources.get("Omni3D", [])
        terms = {
            "score": mean_of_groups({"2D": acc_2d, "3D": acc_3d}, ("2D", "3D")),
            "acc_2D": acc_2d,
            "acc_3D": acc_3d,
            "micro_accuracy": accuracy_term(scored),
        }
        terms.update({f"source/{name}": sources.get(name, []) for name in self.categories})
        tasks = by(scored, lambda s: s.sample.metadata["task"])
        terms.update({f"task/{name}": accuracy_term(group) for name, group in tasks.items()})
        return terms


# ----------------------------------------------------------------------------- mirror


def build_mirror(out: str | Path, per_task: int = 4, seed: int = 0) -> Path:  # pragma: no mutate block
    """A tiny CV-Bench in the upstream layout (``test_2d.parquet``, ``test_3d.parquet``, card with
    the three configs), from synthetic scenes whose answers are known exactly."""
    import datasets

    from sifeval.mirror_scenes import questions_for_tasks

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows: dict[str, list[dict[str, Any]]] = {"2D": [], "3D": []}
    for index, (task, level, source, item) in enumerate(
        questions_for_tasks(("Count", "Relation", "Depth", "Distance"), per_task, seed)
    ):
        choices = item["choices"]
        rows[level].append(
            {
                "idx": index,
                "type": level,
                "task": task,
                "image": {"bytes": item["image_png"], "path": None},  # bytes only: never a path
                "question": item["question"],
                "choices": choices,
                "answer": f"({LETTERS[item['answer_index']]})",
                "prompt": f"{item['question']} Select from the following choices.\n{options_block(choices)}",
                "source": source,
                "filename": f"img/{level}/{task.lower()}/{index}.png",
                "source_dataset": source,
                "source_filename": f"{index}.png",
                "target_class": item.get("target_class"),
                # 2D: a pixel area; 3D: a size class. One column name, two types.
                "target_size": item.get("target_area", 1000 + index) if level == "2D" else "large",
                "bbox": None,
            }
        )
    features = datasets.Features(
        {
            "idx": datasets.Value("int32"),
            "type": datasets.Value("string"),
            "task": datasets.Value("string"),
            "image": datasets.Image(),
            "question": datasets.Value("string"),
            "choices": datasets.List(datasets.Value("string")),
            "answer": datasets.Value("string"),
            "prompt": datasets.Value("string"),
            "source": datasets.Value("string"),
            "filename": datasets.Value("string"),
            "source_dataset": datasets.Value("string"),
            "source_filename": datasets.Value("string"),
            "target_class": datasets.Value("string"),
            "target_size": datasets.Value("int64"),
            "bbox": datasets.List(datasets.Value("float64")),
        }
    )
    for level, name in (("2D", "test_2d"), ("3D", "test_3d")):
        level_features = features.copy()
        if level == "3D":
            # The halves' provenance columns differ in type (so the default config cannot read
            # both files as one table): here target_size is a string in 3D.
            level_features["target_size"] = datasets.Value("string")
        table = datasets.Dataset.from_list(rows[level], features=level_features)
        table.to_parquet(str(out / f"{name}.parquet"))
        (out / f"{name}.jsonl").write_text(
            "".join(json.dumps({k: v for k, v in r.items() if k != "image"}) + "\n" for r in rows[level])
        )
    (out / "README.md").write_text(CARD)
    return out
