"""SAT (``array/SAT``), split ``test``: SAT-Real, 150 questions on one or two real images.

File: ``SAT_test.parquet`` at the repository root (88 MB), read alone: the other splits are
~7.5 GB together and are never downloaded. Columns: ``image_bytes`` (a list of images),
``question``, ``answers`` (the choices' texts), ``question_type``, ``correct_answer`` (text).

Protocols (arijitray1993/SAT at d5dcb10):

- ``official``: the question is asked for the option's *text*: ``<question> Answer the question
  using a single word or phrase. Choose between the following options: "x" or "y".``
  (``custom_datasets/dataloaders.py`` L156-175, ``format_prompts``; ego-movement questions get
  the prefix of ``RealSATDynamic.get_prefix``, L627-633), and the answer part of the reply
  (:func:`sifdata.answers.answer_part`) is read as ``QAAccuracy`` reads a reply
  (``models/eval_funcs.py`` L1797-1910: cut at ``###``, stripped and lower-cased, the rewrites
  for "is the camera moving", "which object is closer", "considering the relative positions",
  "1.", "is located", "answer:", then equal to the lower-cased answer without parentheses).
  Circular: every question is asked once per position of the correct answer (L618-621 make
  the two orders of SAT-Real's two choices; the dataset card asks for "all positions of the
  correct answer"), and accuracy is averaged over all the copies.
- ``letters``: the same circular copies asked with lettered options and read as option
  letters (``sifdata.answers``): a different protocol, named as one.

Answer reader: upstream's ``QAAccuracy`` reads the whole reply (its LLaVA models answer in a
word or phrase); here it reads the reply's answer part, the same in every prompt mode: the last
``<answer>``, else what follows ``</think>``, else ``\\boxed{...}``, else the whole reply. For a
reply without tags the two are the same (the conformance check over 10,560 reply/answer pairs);
a reasoning model's thinking, which can never equal an option, is left out. With
``--choice-judge llm`` (not the official protocol), a reading that equals no option's text is
mapped onto an option by a judge model (:mod:`sifeval.choice_judge`).

Deliberate differences from upstream: each copy's choices are in a fixed rotation, where
``format_prompts`` shuffles them again at random (L161-164, reproducible only through the
training script's global seed); the LLaVA chat wrapper of L172-175 ("###Human: ... Answer in
natural language.") is replaced by the model's own chat template; a rewrite that would fail
upstream (an index error in L1866, L1896 or L1902: "moving", "is located" or "answer:" with
nothing after it) leaves the reply as it is instead of stopping the run; L1830-1831 turn the
right answer "night stand" into "nnight stand", so upstream never credits it; here "night
stand" stays itself (upstream's ``QAAccuracyBatch``, L2001, does the same).
Reported: the micro accuracy over all copies, per question type, and the share of questions
right in every order.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sifdata.answers import LETTERS
from sifeval.adapters import (
    ANSWER_WITH_LETTER,
    MultipleChoiceBenchmark,
    accuracy,
    accuracy_term,
    answer_text,
    by,
    options_block,
)
from sifeval.intervals import Term
from sifeval.types import ImageRef, Sample, ScoredSample, Source

TEST_FILE = "SAT_test.parquet"
EGO_PREFIX = "The first image is from the beginning of the video and the second image is from the end. "
OFFICIAL_INSTRUCTION = "Answer the question using a single word or phrase."


def _bytes(cell: Any) -> bytes:
    if isinstance(cell, dict):
        return cell["bytes"]
    if isinstance(cell, bytes):
        return cell
    raise ValueError(f"SAT image_bytes holds a {type(cell).__name__}, not image bytes")


def official_prompt(question: str, choices: Sequence[str], question_type: str) -> str:
    """The question as ``format_prompts`` asks it, the choices in the given order."""
    prefix = EGO_PREFIX if question_type == "ego_movement" else ""
    quoted = " or ".join(f'"{choice}"' for choice in choices)
    return f"{prefix}{question.strip()} {OFFICIAL_INSTRUCTION} Choose between the following options: {quoted}."


def official_reading(reply: str, question: str, truth: str = "") -> str:
    """The words ``QAAccuracy.update`` compares with the answer (models/eval_funcs.py L1797-1904):
    the reply cut at ``###`` and lower-cased, its fallbacks and rewrites applied in upstream's
    order. ``truth`` is the raw answer (a yes/no answer has a fallback of its own, L1820-1825)."""
    raw = reply.strip()
    answer = raw.split("###")[0].strip().lower()
    if answer == "":  # L1806-1818: a reply that opens with its own chat markers
        if "###Assistant" in raw:
            answer = _after(raw, "###Assistant:") if "###Assistant:" in raw else answer
        elif "###Human" in raw:
            answer = _after(raw, "###Human:") if "###Human:" in raw else _after(raw, "###Assistant:")
        else:
            answer = answer.split(".")[0]
    if truth in ("yes", "no") and answer not in ("yes", "no"):  # L1820-1825
        answer = _after(raw, "###Assistant:") if "###Assistant:" in raw else raw.split("###")[0].strip().lower()
    if answer == "ight":  # L1827-1828
        answer = "right"
    if "ight stand" in answer and "night stand" not in answer:  # L1830-1831 (see the module docstring)
        answer = answer.replace("ight stand", "night stand")
    asked = question.lower()
    if "which object is closer" in asked:  # L1852-1862
        for phrase in (" is closer", " are closer", " is situated closer", " are situated closer"):
            if phrase.strip() in answer:
                answer = answer.split(phrase)[0].split(" ")[-1].strip()
                break
    if "is the camera moving" in asked and "moving" in answer:  # L1864-1875
        parts = answer.split("moving ")
        if len(parts) > 1:
            word = parts[1].split(" ")[0].strip()
            answer = {"clockwise": "left", "counter-clockwise": "right"}.get(word, word)
    if "considering the relative positions" in asked and "is located to" in answer:  # L1877-1884
        answer = "right" if "right" in answer else "left"
    if "(highlighted by" in answer:  # L1886-1887
        answer = answer.split("(highlighted by")[0].strip()
    if "1." in answer:  # L1892-1893
        answer = answer.split("1.")[1].strip()
    if "is located" in answer:  # L1895-1896 (the word after "is located ")
        tail = answer.split("is located ")
        answer = tail[1].split(" ")[0].strip() if len(tail) > 1 else answer
    # L1898-1899 ("is located on the") can never apply: the rule above has already cut any reply
    # holding "is located " down to one word (or left one ending in "is located" as it was).
    if "answer:" in answer:  # L1901-1902 (the first word after "answer: ")
        tail = answer.split("answer: ")
        answer = tail[1].split(" ")[0].strip() if len(tail) > 1 else answer
    return answer


def _after(reply: str, marker: str) -> str:
    """The text after ``marker`` up to the next ``###``, lower-cased ("" when absent)."""
    parts = reply.split(marker)
    return parts[1].split("###")[0].strip().lower() if len(parts) > 1 else ""


def official_truth(answer: str) -> str:
    """The answer as ``QAAccuracy`` compares it: lower-cased, stripped, no parentheses (L1836-1839)."""
    return answer.lower().strip().replace("(", "").replace(")", "")


def samples_from_row(
    index: int, row: dict[str, Any], protocol: str, rotations: Sequence[int] | None = None
) -> list[Sample]:
    """The copies of one SAT question: one per position of the correct answer (a rotation of the
    choices), or the given ``rotations``."""
    answers = [str(a) for a in row["answers"]]
    correct = row.get("correct_answer")
    if correct is None and row.get("correct_answer_idx") is not None:  # lmms-eval's re-host (nv-njb/SAT)
        correct = answers[int(row["correct_answer_idx"])]
    if correct not in answers:
        raise ValueError(f"SAT row {index}: correct_answer {correct!r} is not among the answers {answers}")
    images = tuple(ImageRef(data=_bytes(cell)) for cell in row.get("image_bytes") or [])
    question_type = str(row.get("question_type") or "unknown")
    samples = []
    for shift in range(len(answers)) if rotations is None else rotations:
        choices = tuple(answers[shift:] + answers[:shift])
        metadata = {"question_index": index, "rotation": shift, "raw_question": row["question"]}
        if protocol == "official":
            text = official_prompt(row["question"], choices, question_type)
            question, sif_question, target = text, text, str(correct)
        else:
            body = f"{row['question']}\n{options_block(choices)}"
            question, sif_question = f"{body}\n{ANSWER_WITH_LETTER}", body
            target = LETTERS[choices.index(correct)]
        samples.append(
            Sample(
                id=f"{index}#r{shift}",
                question=question,
                target=target,
                category=question_type,
                images=images,
                choices=choices,
                sif_question=sif_question,
                metadata=metadata,
            )
        )
    return samples


def read_test_rows(data_dir: str | Path | None, revision: str | None = None) -> list[dict[str, Any]]:
    """The rows of ``SAT_test.parquet``, from ``data_dir`` or the Hub (that file alone)."""
    import pyarrow.parquet as pq

    if data_dir is not None:
        path = Path(data_dir) / TEST_FILE
        if not path.is_file():
            raise FileNotFoundError(
                f"{data_dir} has no {TEST_FILE} (the Hub layout of array/SAT: one parquet per split)"
            )
    else:  # pragma: no mutate block
        from huggingface_hub import hf_hub_download

        path = Path(hf_hub_download(SAT.source.hub_id, TEST_FILE, repo_type="dataset", revision=revision))
    return pq.read_table(path).to_pylist()


class SAT(MultipleChoiceBenchmark):
    name = "sat"
    title = "SAT-Real"
    source = Source(hub_id="array/SAT", split="test", license="mit")
    protocols = ("official", "letters")
    default_protocol = "official"
    lmms_eval_protocol = "letters"  # lmms-eval's SAT task asks lettered options, in one order
    layout = "SAT_test.parquet with image_bytes, question, answers, question_type, correct_answer"

    def load(self, data_dir: str | Path | None = None) -> list[Sample]:
        samples: list[Sample] = []
        for index, row in enumerate(read_test_rows(data_dir, self.source.revision)):
            samples.extend(samples_from_row(index, row, self.protocol))
        return samples

    @classmethod
    def build_mirror(cls, out: str | Path, seed: int = 0) -> Path:  # pragma: no mutate block
        return build_mirror(out, seed=seed)

    def samples_from_lmms_eval(self, doc: dict[str, Any], doc_id: int) -> list[Sample]:
        """lmms-eval's SAT task (nv-njb/SAT: choices shuffled once, ``correct_answer_idx``) asks
        each question once, with lettered options in the doc's order: that order, one copy."""
        return samples_from_row(doc_id, {**doc, "image_bytes": []}, self.protocol, rotations=(0,))

    def score_by_rules(self, sample: Sample, response_text: str) -> ScoredSample:
        if self.protocol == "letters":
            return super().score_by_rules(sample, response_text)
        answer = answer_text(response_text)
        if answer is None:
            return ScoredSample(sample, response_text, None, False, 0.0)
        question = str(sample.metadata.get("raw_question", sample.question))
        reading = official_reading(answer, question, sample.target)
        return ScoredSample(sample, response_text, reading, True, float(reading == official_truth(sample.target)))

    def mapped(self, item: ScoredSample) -> bool:
        """The official reading maps a reply onto an option when it equals one option's text."""
        if self.protocol == "letters":
            return super().mapped(item)
        return item.extracted in {official_truth(choice) for choice in item.sample.choices}

    def option_verdict(self, sample: Sample, letter: str) -> tuple[str, float]:
        if self.protocol == "letters":
            return super().option_verdict(sample, letter)
        choice = sample.choices[LETTERS.index(letter)]
        return official_truth(choice), float(official_truth(choice) == official_truth(sample.target))

    def aggregate(self, scored: Sequence[ScoredSample]) -> dict[str, float]:
        metrics = {"score": accuracy(scored)}
        types = by(scored, lambda s: s.sample.category)
        metrics.update({f"question_type/{name}": accuracy(group) for name, group in sorted(types.items())})
        questions = by(scored, lambda s: str(s.sample.metadata["question_index"]))
        every = [all(s.score == 1.0 for s in group) for group in questions.values()]
        # stricter companion figure: a question counts only if right in every order
        metrics["all_orders_right"] = 100.0 * sum(every) / len(every) if every else float("nan")
        return metrics

    def figure_terms(self, scored: Sequence[ScoredSample]) -> dict[str, list[Term]]:
        """The unit is the question: its circular copies are one cluster, not independent draws."""

        def question(sample: Sample) -> str:
            return str(sample.metadata["question_index"])

        types = by(scored, lambda s: s.sample.category)
        terms = {"score": accuracy_term(scored, question)}
        terms.update({f"question_type/{name}": accuracy_term(group, question) for name, group in types.items()})
        questions = by(scored, lambda s: question(s.sample))
        every = [100.0 * all(s.score == 1.0 for s in group) for group in questions.values()]
        terms["all_orders_right"] = [Term(1.0, every, list(questions))] if every else []
        return terms


CARD = """---
license: mit
---
SAT in the Hub layout: one parquet file per split at the root.
"""


def build_mirror(out: str | Path, per_type: int = 4, seed: int = 0) -> Path:  # pragma: no mutate block
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
    out.mkdir(parents=True, exist_ok=True)
    rows_encoded = [{**r, "image_bytes": [{"bytes": b, "path": None} for b in r["image_bytes"]]} for r in rows]
    datasets.Dataset.from_list(rows_encoded, features=features).to_parquet(str(out / TEST_FILE))
    # Other splits sit beside it on the Hub; a stand-in proves the loader never reads them.
    (out / "SAT_train.parquet").write_bytes(b"not a parquet file: the loader must not open it")
    (out / "README.md").write_text(CARD)
    return out


def _moved(
    box: tuple[int, int, int, int], shift: int, width: int
) -> tuple[int, int, int, int]:  # pragma: no mutate block
    x1, y1, x2, y2 = box
    shift = max(-x1, min(shift, width - x2))
    return (x1 + shift, y1, x2 + shift, y2)
