"""SAT (``array/SAT``), split ``test`` (SAT-Real, 150 questions on 1-2 real images).

Columns: ``image_bytes`` (a list of images), ``question``, ``answers`` (choice strings),
``question_type``, ``correct_answer`` (text). Official protocol: circular evaluation, every
question asked with its choices in each rotation; accuracy averaged over all the copies.
Reported overall and per question type. The ``single`` protocol (one fixed order, as peer
harnesses do) is available for comparison and labelled as such.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sifdata.hub import load_local
from sifeval.adapters import ANSWER_WITH_LETTER, LETTERS, MultipleChoiceBenchmark, accuracy, by, options_block, register
from sifeval.types import ImageRef, Sample, ScoredSample, Source

CARD = """---
license: mit
configs:
- config_name: default
  data_files:
  - split: test
    path: data/test-*.parquet
---
"""


def _bytes(cell: Any) -> bytes:
    if isinstance(cell, dict):
        return cell["bytes"]
    if isinstance(cell, bytes):
        return cell
    buffer = io.BytesIO()
    cell.save(buffer, format="PNG")
    return buffer.getvalue()


def samples_from_row(index: int, row: dict[str, Any], circular: bool) -> list[Sample]:
    answers = list(row["answers"])
    if row["correct_answer"] not in answers:
        raise ValueError(f"SAT row {index}: correct_answer {row['correct_answer']!r} is not among the answers")
    images = tuple(ImageRef(data=_bytes(cell)) for cell in row["image_bytes"])
    rotations = range(len(answers)) if circular else range(1)
    samples = []
    for shift in rotations:
        choices = tuple(answers[shift:] + answers[:shift])
        body = f"{row['question']}\n{options_block(choices)}"
        samples.append(
            Sample(
                id=f"{index}#r{shift}",
                question=f"{body}\n{ANSWER_WITH_LETTER}",
                target=LETTERS[choices.index(row["correct_answer"])],
                category=row["question_type"],
                images=images,
                choices=choices,
                sif_question=body,
                metadata={"question_index": index, "rotation": shift},
            )
        )
    return samples


@register
class SAT(MultipleChoiceBenchmark):
    name = "sat"
    title = "SAT-Real"
    source = Source(hub_id="array/SAT", split="test", license="mit")
    protocols = ("circular", "single")
    default_protocol = "circular"

    def load(self, data_dir: str | Path | None = None) -> list[Sample]:
        import datasets

        if data_dir:
            rows = load_local(data_dir, split=self.source.split)
        else:
            rows = datasets.load_dataset(self.source.hub_id, split=self.source.split, revision=self.source.revision)
        if "image_bytes" in rows.features and hasattr(rows.features["image_bytes"], "feature"):
            # Decoding nested image lists is what newer datasets versions struggle with: keep bytes.
            rows = rows.cast_column("image_bytes", datasets.List(datasets.Image(decode=False)))
        samples: list[Sample] = []
        for index, row in enumerate(rows):
            samples.extend(samples_from_row(index, row, circular=self.protocol == "circular"))
        return samples

    def aggregate(self, scored: Sequence[ScoredSample]) -> dict[str, float]:
        metrics = {"score": accuracy(scored)}
        types = by(scored, lambda s: s.sample.category)
        metrics.update({f"question_type/{name}": accuracy(group) for name, group in sorted(types.items())})
        questions = by(scored, lambda s: str(s.sample.metadata["question_index"]))
        every = [
            all(s.score == 1.0 for s in group)
            for group in questions.values()
            if all(s.score is not None for s in group)
        ]
        if every:  # stricter companion figure: a question counts only if right in every rotation
            metrics["all_rotations_right"] = 100.0 * sum(every) / len(every)
        return metrics


def build_mirror(out: str | Path, per_type: int = 4, seed: int = 0) -> Path:
    """A tiny SAT ``test`` split in the upstream columns, from pairs of synthetic frames."""
    import datasets
    import numpy as np

    from sifdata.sources.synthetic import SceneObject, render_scene
    from sifeval.mirror_scenes import png, scene

    rows = []
    for number in range(per_type * 3):
        kind = ("obj_movement", "ego_movement", "goal_aim")[number % 3]
        image, _, objects = scene(500 + number, seed)
        rng = np.random.default_rng([seed, 31, number])
        width, height = image.size
        if kind == "goal_aim":
            closest = min(objects, key=lambda o: o.depth)
            others = [o.name for o in objects if o is not closest]
            answers = [closest.name, *others][:3]
            rng.shuffle(answers)
            rows.append(
                {
                    "image_bytes": [png(image)],
                    "question": "Which object is closest to the camera?",
                    "answers": list(answers),
                    "question_type": kind,
                    "correct_answer": closest.name,
                }
            )
            continue
        shift = int(rng.choice([-1, 1])) * max(8, width // 12)
        moved = objects[0]
        if _moved(moved.box, shift, width) == moved.box:
            shift = -shift  # at the frame's edge: move the way there is room
        if kind == "obj_movement":
            after = [
                SceneObject(o.shape, o.colour, _moved(o.box, shift, width), o.depth) if o is moved else o
                for o in objects
            ]
            question = f"Did the {moved.name} move to the left or to the right between the two frames?"
            correct = "right" if shift > 0 else "left"
        else:  # the camera moves one way, so everything in view shifts the other way
            after = [SceneObject(o.shape, o.colour, _moved(o.box, -shift, width), o.depth) for o in objects]
            question = "Did the camera move to the left or to the right between the two frames?"
            correct = "right" if shift > 0 else "left"
        second, _ = render_scene(width, height, after)
        rows.append(
            {
                "image_bytes": [png(image), png(second)],
                "question": question,
                "answers": ["left", "right"],
                "question_type": kind,
                "correct_answer": correct,
            }
        )
    features = datasets.Features(
        {
            "image_bytes": datasets.List(datasets.Image()),
            "question": datasets.Value("string"),
            "answers": datasets.List(datasets.Value("string")),
            "question_type": datasets.Value("string"),
            "correct_answer": datasets.Value("string"),
        }
    )
    out = Path(out)
    (out / "data").mkdir(parents=True, exist_ok=True)
    rows_encoded = [{**r, "image_bytes": [{"bytes": b, "path": None} for b in r["image_bytes"]]} for r in rows]
    datasets.Dataset.from_list(rows_encoded, features=features).to_parquet(
        str(out / "data" / "test-00000-of-00001.parquet")
    )
    (out / "README.md").write_text(CARD)
    return out


def _moved(box: tuple[int, int, int, int], shift: int, width: int) -> tuple[int, int, int, int]:
    x1, y1, x2, y2 = box
    shift = max(-x1, min(shift, width - x2))
    return (x1 + shift, y1, x2 + shift, y2)
