"""V* Bench (``craigwu/vstar_bench``): 191 high-resolution questions, ``direct_attributes`` (115)
and ``relative_position`` (76).

Layout: ``test_questions.jsonl`` (``image``, ``text`` with shuffled "(A) ..." options and the
letter instruction, ``category``, ``question_id``, ``label``) and per-image JSON in each
category folder (``target_object``, ``bbox`` as x, y, w, h, ``question``, ``options`` with the
correct option first).

Protocols:

- ``likelihood``, the original (penghao-wu/vstar at 4ede664, ``vstar_bench_eval.py``): the
  question alone (``<image>\n{question}``, no options, no instruction, L119), each option scored
  as the assistant's reply by its mean token cross-entropy, the end of the turn included
  (L141-159); the lowest loss is the answer (L163). Needs a backend that scores text (``hf:``).
- ``generation``: the question with the shuffled options of ``test_questions.jsonl`` and its
  letter instruction, as harnesses run V* (Cambrian's ``eval/eval/vstar``); the unshuffled order
  inflates scores by ~5 points. The reply's answer part (:func:`sifdata.answers.answer_part`:
  the last ``<answer>``, else after ``</think>``, else ``\\boxed{}``, else the whole reply, in
  every prompt mode) is read for an option (:func:`sifdata.answers.read_option`): its letter,
  else the whole text of one option, else the one option whose distinguishing words it states
  (V*'s options are sentences: "Blue" answers "The color of the bag is blue."). A letter that
  the words contradict is scored by the letter and counted (``conflicting_replies``).
  ``--choice-judge llm`` sends the replies these rules cannot map to a judge model (not the
  official protocol; :mod:`sifeval.choice_judge`).

Reported: overall (micro over all questions, L277) and per category (L275).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sifdata.files import DataFileError, read_jsonl
from sifdata.geometry import Box, clip_box, pixel_to_normalized, xywh_to_xyxy
from sifeval.adapters import LETTERS, MultipleChoiceBenchmark, accuracy, accuracy_term, by, options_block
from sifeval.intervals import Term
from sifeval.solvers import Likelihood, Solver
from sifeval.types import ImageRef, Sample, ScoredSample, Source
from sifmodel.backends import GenerationRequest, GenerationSettings

ANSWER_LINE = "Answer with the option's letter from the given choices directly."
_OPTION = re.compile(r"^\(([A-Z])\)\s*(.*)$")


def _parse_options(text: str) -> tuple[str, tuple[str, ...]]:
    """The question and its options from a V* ``text`` field."""
    question_lines, options = [], []
    for line in text.splitlines():
        match = _OPTION.match(line.strip())
        if match:
            options.append(match.group(2).strip())
        elif line.strip() and line.strip() != ANSWER_LINE:
            question_lines.append(line.strip())
    return " ".join(question_lines), tuple(options)


def sample_from_question(row: dict[str, Any], images: tuple[ImageRef, ...]) -> Sample:
    """A row of ``test_questions.jsonl``: the question asked as written (its shuffled options and
    the letter instruction), the options read from it."""
    question, choices = _parse_options(row["text"])
    return Sample(
        id=str(row["question_id"]),
        question=row["text"],
        target=row["label"].strip().strip("()").upper(),
        category=row["category"],
        images=images,
        choices=choices,
        sif_question=f"{question}\n{options_block(choices)}",
        metadata={"question_core": question, **({"image": row["image"]} if isinstance(row.get("image"), str) else {})},
    )


def _download(source: Source) -> Path:  # pragma: no mutate block
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(source.hub_id, repo_type="dataset", revision=source.revision))


class VStar(MultipleChoiceBenchmark):
    name = "vstar"
    title = "V* Bench"
    source = Source(hub_id="craigwu/vstar_bench", split="test", license="mit")
    protocols = ("generation", "likelihood")
    default_protocol = "generation"
    categories = ("direct_attributes", "relative_position")
    layout = (
        "test_questions.jsonl with image, text, category, question_id, label, beside the category folders of images"
    )

    def load(self, data_dir: str | Path | None = None) -> list[Sample]:
        root = Path(data_dir) if data_dir else _download(self.source)  # pragma: no mutate (the Hub)
        samples = []
        for number, row in read_jsonl(root / "test_questions.jsonl"):
            try:
                samples.append(sample_from_question(row, (ImageRef.inside(root, row["image"]),)))
            except (KeyError, TypeError, AttributeError) as error:
                raise DataFileError(
                    f"{root / 'test_questions.jsonl'}: line {number}: missing or malformed {error}"
                ) from None
        return samples

    def truth_boxes(self, sample: Sample, width: int, height: int) -> list[Box]:
        """The target objects' boxes from the image's own JSON beside it (``bbox``: x, y, w, h in
        pixels); none when that file is absent or unreadable."""
        image = sample.images[0].path if sample.images else None
        if image is None:
            return []
        try:
            meta = json.loads(Path(image).with_suffix(".json").read_text(encoding="utf-8"))
            return [clip_box(pixel_to_normalized(xywh_to_xyxy(box), width, height)) for box in meta["bbox"]]
        except (OSError, ValueError, KeyError, TypeError):
            return []

    def solver(self) -> Solver:
        return Likelihood(self.likelihood_request) if self.protocol == "likelihood" else super().solver()

    @classmethod
    def build_mirror(cls, out: str | Path, seed: int = 0) -> Path:  # pragma: no mutate block
        return build_mirror(out, seed=seed)

    def samples_from_lmms_eval(self, doc: dict[str, Any], doc_id: int) -> list[Sample]:
        """lmms-eval's ``vstar_bench`` reads the re-host ``lmms-lab-encoder/vstar-bench``: the
        rows of ``test_questions.jsonl`` (``text``, ``label``, ``category``, ``question_id``) with
        the image in an ``image`` column."""
        return [sample_from_question(doc, images=())]

    def likelihood_request(self, sample: Sample, settings: GenerationSettings) -> tuple[GenerationRequest, list[str]]:
        """The question alone (no options, no letter line) and the option texts to score."""
        images = tuple(ref.load() for ref in sample.images)
        question = sample.metadata.get("question_core") or sample.question
        return GenerationRequest(sample.id, question, images, mode="plain", settings=settings), list(sample.choices)

    def score_losses(self, sample: Sample, losses: Sequence[float]) -> ScoredSample:
        """The option of lowest loss (L163; the first of exact ties, as ``argmin``), from losses at
        full precision: a re-score reads back exactly the losses the run chose from."""
        best = min(range(len(losses)), key=lambda i: losses[i])
        letter = LETTERS[best]
        response = json.dumps({"option_losses": [float(value) for value in losses]})
        return ScoredSample(sample, response, extracted=letter, parse_ok=True, score=float(letter == sample.target))

    def score_by_rules(self, sample: Sample, response_text: str) -> ScoredSample:
        if self.protocol == "likelihood":  # the losses are the response (a run, or its re-score)
            return self.score_losses(sample, json.loads(response_text)["option_losses"])
        return super().score_by_rules(sample, response_text)

    def aggregate(self, scored: Sequence[ScoredSample]) -> dict[str, float]:
        """Micro accuracy over all questions (vstar_bench_eval.py L277), and per category (L275)."""
        groups = by(scored, lambda s: s.sample.category)
        metrics = {"score": accuracy(scored)}
        metrics.update({f"category/{name}": accuracy(groups.get(name, [])) for name in self.categories})
        return metrics

    def figure_terms(self, scored: Sequence[ScoredSample]) -> dict[str, list[Term]]:
        groups = by(scored, lambda s: s.sample.category)
        terms = {"score": accuracy_term(scored)}
        terms.update({f"category/{name}": accuracy_term(groups.get(name, [])) for name in self.categories})
        return terms


def build_mirror(out: str | Path, per_category: int = 6, seed: int = 0) -> Path:  # pragma: no mutate block
    """A tiny V* in the upstream layout, from synthetic scenes with known answers."""
    import numpy as np

    from sifeval.mirror_scenes import centre, pick, scene

    out = Path(out)
    lines = []
    qid = 0
    for category in ("direct_attributes", "relative_position"):
        folder = out / category
        folder.mkdir(parents=True, exist_ok=True)
        for _ in range(per_category):
            image, _, objects = scene(qid, seed)
            rng = np.random.default_rng([seed, qid])
            if category == "direct_attributes":
                target = objects[0]
                question = f"What is the color of the {target.shape}?"
                others = sorted({o.colour for o in objects if o.shape != target.shape} - {target.colour})
                wrong = [*others, *[c for c in ("white", "black", "pink") if c not in others]][:3]
                options = [target.colour, *wrong]
                box = target.box
            else:
                a, b = pick(rng, objects, 2)
                question = f"Is the {a.name} on the left or right side of the {b.name}?"
                right = "left" if centre(a)[0] < centre(b)[0] else "right"
                options = [
                    f"The {a.name} is on the {right} side of the {b.name}.",
                    f"The {a.name} is on the {'right' if right == 'left' else 'left'} side of the {b.name}.",
                ]
                box = a.box
            name = f"sa_{qid:05d}.jpg"
            image.save(folder / name, quality=95)
            x1, y1, x2, y2 = box
            meta: dict[str, Any] = {
                "target_object": [question.split("the ")[-1].rstrip("?")],
                "bbox": [[x1, y1, x2 - x1, y2 - y1]],
                "question": question,
                "options": options,
            }
            (folder / name.replace(".jpg", ".json")).write_text(json.dumps(meta))
            order = list(rng.permutation(len(options)))
            shuffled = [options[i] for i in order]
            label = LETTERS[shuffled.index(options[0])]
            text = f"{question}\n{options_block(shuffled)}\n{ANSWER_LINE}"
            lines.append(
                {"image": f"{category}/{name}", "text": text, "category": category, "question_id": qid, "label": label}
            )
            qid += 1
    (out / "test_questions.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return out
