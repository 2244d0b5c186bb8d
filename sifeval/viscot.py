"""The Visual-CoT benchmark (deepcs233/Visual-CoT, ``viscot_benchmark/``; images from the
Visual-CoT archives on the Hub ``deepcs233/Visual-CoT``).

Files: ``benchmark/<subset>.json`` (questions) and ``benchmark_det/<subset>.jsonl`` (image size
and pixel box), one pair per subset, in the same order. The repository ships 13 subsets; 11 are
scored, 8,281 questions (``tools/cot_get_result.py`` L10): docvqa, textcap, textvqa, dude, sroie,
infographicsvqa, flickr30k, gqa, openimages, vsr, cub. emotic and visual7w are skipped.

Scoring, as the official scripts run it (deepcs233/Visual-CoT at 83212ae):

- detection (``playground/data/eval/REC/calculation.py`` L9-51): the ground truth is the
  ``benchmark_det`` pixel box moved onto the padded square (``+ (S - side) // 2`` on the shorter
  axis, S = max(W, H)), never the 3-decimal turn-2 string; the prediction is a box normalized on
  the padded square, times S; right when IoU > 0.5 (strictly); an unreadable prediction is wrong.
  Per subset, then the unweighted mean over subsets (``tools/cot_detection_get_result.py`` L42-44).
- answer (``llava/eval/eval_cot_score.py``): a judge model is sent the official prompt
  (:data:`JUDGE_SYSTEM`, :data:`JUDGE_USER`, L13-21; the question as the file has it, its
  ``<image>`` line included, L66-79) and replies "score: x", clamped to [0, 1] (L49-63).
  Per subset the mean; the headline ``score`` is the unweighted mean of the 11 subset means
  (``tools/cot_get_result.py`` L57-69), on a 0-100 scale here.

Loading keeps every scored question: a defective ground truth (8 inverted boxes in docvqa, boxes
far outside the image in dude, an empty answer in dude) is flagged on the sample
(``metadata["defects"]``), its detection unwinnable as upstream, the question kept. Questions and
detection records are paired per subset file by position, their ids checked; textcap and textvqa
share an image path and question id, which per-subset ids keep apart.

Protocols:

- ``sif-one-pass`` (SIFThinker): one request; the predicted box is the last ``<area>``'s box
  exactly as written (:meth:`VisCoT.predicted_box`: empty, zero-area, inverted or off the image,
  the detection is wrong; never an earlier area instead; the box enclosing its boxes when it
  holds several, where the original script blanked the answer and the box). Its boxes are read
  in the frame the model writes (``box_frame``: ``per-axis``, or ``padded-square`` for
  checkpoints trained on the published SIF-50K). The answer is the reply's answer part
  (:func:`sifdata.answers.answer_part`: the last ``<answer>``, else after ``</think>``, else
  ``\\boxed{}``, else the whole reply), the same in every prompt mode; SIFThinker's script takes
  the first closed ``<answer>`` (``model_cot_loader.py`` ``extract_answer``, L39-46), which is the
  same for a chain with one answer.
- ``two-pass`` (Visual-CoT's own, ``llava/eval/model_cot_det_loader.py`` and
  ``model_cot_loader.py``): first the lower-cased question with the box instruction (det loader
  L42-46), whose ``[x1, y1, x2, y2]`` on the padded square is the predicted box; then the image
  and a square crop around that box (half-size at least 112 px, ``cropwithbbox`` L150-181) with
  "Please answer the question based on the original image and local detail image." and the
  question (L96).

Deliberate differences from upstream: the judge's unreadable reply is a judge failure, counted
and graded again by ``sifeval rescore``, where upstream scores it 0 (or stops on "score: 0.8.");
a subset without results is NaN with a note, where upstream counts it 0 (an answer score) or
drops it (a detection accuracy, also dropping a subset whose accuracy is exactly 0); the two-pass
conversation is one user turn naming the first pass's box (our backends take single-turn
prompts), where upstream replays the first turn; an unreadable first-pass box crops nothing
(the whole image) where upstream stops the run.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from PIL import Image

from sifdata.chain import read_areas
from sifdata.files import DataFileError, read_json, read_jsonl
from sifdata.geometry import Box, iou, normalized_to_padded_square, padded_square_to_normalized, union_box
from sifeval.adapters import Benchmark, FocusBox, accuracy, accuracy_term, answer_text, by, mean_of_groups, mean_over
from sifeval.intervals import Term
from sifeval.solvers import Solver, TwoPass
from sifeval.types import ImageRef, Sample, ScoredSample, Source
from sifmodel.backends import GenerationError
from sifmodel.judge import Judge, JudgeItem, JudgePrompt
from sifmodel.prompts import PromptMode

SCORED_SUBSETS = (
    "docvqa",
    "textcap",
    "textvqa",
    "dude",
    "sroie",
    "infographicsvqa",
    "flickr30k",
    "gqa",
    "openimages",
    "vsr",
    "cub",
)
UNSCORED_SUBSETS = ("emotic", "visual7w")
BOX_INSTRUCTION = (
    " Please provide the bounding box coordinate of the region that can help you answer the question better."
)
SECOND_PASS = "Please answer the question based on the original image and local detail image."
BoxFrame = Literal["per-axis", "padded-square"]

JUDGE_SYSTEM = (
    "\nYou are responsible for proofreading the answers, you need to give a score to the model's answer by "
    "referring to the standard answer, based on the given question. The full score is 1 point and the minimum "
    'score is 0 points. Please output the score in the form "score: <score>". The evaluation criteria require '
    "that the closer the model's answer is to the standard answer, the higher the score.\n"
)
JUDGE_USER = "\nquestion: {question}\nstandard answer: {reference}\nmodel's answer: {prediction}\n"


def _judge_messages(item: JudgeItem) -> list[dict[str, Any]]:
    user = JUDGE_USER.format(question=item.question, reference=item.reference, prediction=item.prediction)
    return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": user}]


def parse_judge_score(reply: str) -> float:
    """The score of an official judge reply: exactly one "score: x" (any case), clamped to [0, 1]
    (eval_cot_score.py L49-63). Anything else raises ``ValueError``: a judge failure."""
    text = reply.lower()
    found = re.findall(r"score: ([\d\.]+)", text)
    if len(found) != 1:
        raise ValueError(f"the judge reply holds {len(found)} 'score: x' (one needed): {reply[:120]!r}")
    try:
        value = float(found[0])
    except ValueError:
        raise ValueError(f"the judge's score {found[0]!r} is not a number") from None
    return min(max(value, 0.0), 1.0)


OFFICIAL_JUDGE = JudgePrompt("viscot-official", _judge_messages, parse_judge_score)


# ----------------------------------------------------------------------------- the files


@dataclass(frozen=True)
class Record:
    """One question with its detection entry, as the two files have them."""

    subset: str
    position: int
    question_id: Any
    image: str
    question_line: str  # conversation turn 1 without the box instruction ("<image>\nWhat ...")
    answer: str
    width: int
    height: int
    box_pixels: tuple[float, float, float, float]

    @property
    def question(self) -> str:
        return self.question_line.replace("<image>", "").strip()


def read_subset(root: Path, subset: str) -> list[Record]:
    """The questions of one subset, each with its detection record (same position, same id)."""
    questions = read_json(root / "benchmark" / f"{subset}.json")
    detections = [row for _, row in read_jsonl(root / "benchmark_det" / f"{subset}.jsonl")]
    if len(questions) != len(detections):
        raise ValueError(
            f"Visual-CoT {subset}: {len(questions)} questions but {len(detections)} detection records "
            "(the two files must pair up line by line)"
        )
    records = []
    for position, (row, det) in enumerate(zip(questions, detections, strict=True)):
        where = f"Visual-CoT {subset} #{position} (question_id {row.get('question_id')})"
        if row.get("question_id") != det.get("question_id"):
            raise ValueError(f"{where}: the detection record there has question_id {det.get('question_id')}")
        try:
            turns = [turn["value"] for turn in row["conversations"]]
            record = Record(
                subset=subset,
                position=position,
                question_id=row["question_id"],
                image=row["image"][0],
                question_line=turns[0].split(BOX_INSTRUCTION.strip())[0].rstrip(),
                answer=str(turns[-1]),
                width=int(det["width"]),
                height=int(det["height"]),
                box_pixels=tuple(float(v) for v in det["bbox"]),  # type: ignore[arg-type]
            )
        except (KeyError, IndexError, TypeError, ValueError) as error:
            raise DataFileError(f"{where}: missing or malformed field ({type(error).__name__}: {error})") from None
        records.append(record)
    return records


def official_truth(record: Record) -> list[float]:
    """The ground truth in padded-square pixels (calculation.py L9-23): the pixel box moved by
    the padding on the shorter axis; never clipped, never re-ordered."""
    x1, y1, x2, y2 = record.box_pixels
    width, height = record.width, record.height
    if width > height:
        shift = (width - height) // 2
        return [x1, y1 + shift, x2, y2 + shift]
    shift = (height - width) // 2
    return [x1 + shift, y1, x2 + shift, y2]


def defects(record: Record) -> list[str]:
    """What is wrong with a record's ground truth, as the real files have it."""
    found = []
    x1, y1, x2, y2 = record.box_pixels
    if x2 <= x1 or y2 <= y1:
        found.append(f"inverted or empty box {list(record.box_pixels)}: its detection cannot be right")
    over = max(-x1, -y1, x2 - record.width, y2 - record.height, 0.0)
    if over > 0:
        found.append(
            f"box {list(record.box_pixels)} reaches {over:.0f} px outside the {record.width}x{record.height} image"
        )
    if not record.answer.strip():
        found.append("empty reference answer")
    return found


def sample_from_record(record: Record, root: Path) -> Sample:
    return Sample(
        id=f"{record.subset}/{record.question_id}",
        question=record.question,
        target=record.answer,
        category=record.subset,
        images=(ImageRef.inside(root, record.image),),
        metadata={
            "question_line": record.question_line,
            "question_id": record.question_id,
            "position": record.position,
            "width": record.width,
            "height": record.height,
            "truth_padded_px": official_truth(record),
            "defects": defects(record),
        },
    )


# ----------------------------------------------------------------------------- boxes


def padded_side(sample: Sample) -> int:
    return max(sample.metadata["width"], sample.metadata["height"])


def detection_right(sample: Sample, box_padded: Sequence[float] | None) -> bool:
    """A padded-square normalized box against the official ground truth: IoU > 0.5."""
    if box_padded is None:
        return False
    side = padded_side(sample)
    return iou([v * side for v in box_padded], sample.metadata["truth_padded_px"]) > 0.5


def parse_padded_box(text: str) -> list[float] | None:
    """A first-pass box as calculation.py L37-43 reads it: the first four comma-separated
    numbers after removing brackets; None when there are not four numbers (upstream: wrong)."""
    pieces = text.replace(" .", "").replace("[", "").replace("]", "").split(", ")
    try:
        return [float(v) for v in pieces[:4]] if len(pieces) >= 4 else None
    except ValueError:
        return None


def crop_around(image: Image.Image, box_padded: Sequence[float], min_half: int = 112) -> Image.Image:
    """The second pass's detail image (model_cot_loader.py ``cropwithbbox`` L150-181): the box
    on the padded square, back on the image, a square of half-size max(half the box's longer
    side, ``min_half``) around its centre, moved inside the image, then cut to it."""
    width, height = image.size
    side = max(width, height)
    # L152-154: coordinates summing to less than 5 are normalized; larger ones are pixels already.
    scale = side if sum(box_padded) < 5 else 1
    x1, y1, x2, y2 = (v * scale for v in box_padded)
    if width > height:
        y1, y2 = max(y1 - (width - height) // 2, 0), max(y2 - (width - height) // 2, 0)
    else:
        x1, x2 = max(x1 - (height - width) // 2, 0), max(x2 - (height - width) // 2, 0)
    cx, cy = int(x1 + x2) // 2, int(y1 + y2) // 2
    half = max(int(x2 - x1) // 2, int(y2 - y1) // 2, min_half)
    left, top, right, bottom = cx - half, cy - half, cx + half, cy + half
    if left < 0:
        left, right = 0, right - left
    if top < 0:
        top, bottom = 0, bottom - top
    if right > width:
        left, right = left - (right - width), width
    if bottom > height:
        top, bottom = top - (bottom - height), height
    left, top = max(left, 0), max(top, 0)
    return image.crop((left, top, max(right, left + 1), max(bottom, top + 1)))


# ----------------------------------------------------------------------------- the benchmark


class VisCoT(Benchmark):
    name = "viscot"
    title = "Visual-CoT benchmark"
    source = Source(hub_id="deepcs233/Visual-CoT", split="benchmark", license="apache-2.0")
    protocols = ("sif-one-pass", "two-pass")
    default_protocol = "sif-one-pass"
    categories = SCORED_SUBSETS
    layout = "benchmark/<subset>.json and benchmark_det/<subset>.jsonl, and the cot/ images"

    def __init__(
        self,
        protocol: str | None = None,
        judge: Judge | None = None,
        box_frame: BoxFrame = "per-axis",
    ) -> None:
        super().__init__(protocol)
        self.judge = judge
        self.box_frame = box_frame

    def load(self, data_dir: str | Path | None = None) -> list[Sample]:
        if data_dir is None:
            raise FileNotFoundError(
                "the Visual-CoT benchmark needs a local folder: viscot_benchmark/benchmark/*.json, "
                "benchmark_det/*.jsonl, and the images extracted from deepcs233/Visual-CoT under it (cot/...)"
            )
        root = Path(data_dir)
        subsets = [s for s in SCORED_SUBSETS if (root / "benchmark" / f"{s}.json").is_file()]
        if not subsets:
            raise FileNotFoundError(f"{root}/benchmark holds none of the scored subsets ({', '.join(SCORED_SUBSETS)})")
        return [sample_from_record(record, root) for subset in subsets for record in read_subset(root, subset)]

    def options(self) -> dict[str, Any]:
        judge = getattr(self.judge, "model", None)
        return {"box_frame": self.box_frame, "judge": judge, "judge_prompt": OFFICIAL_JUDGE.name}

    @classmethod
    def from_options(cls, protocol: str | None, options: Mapping[str, Any]) -> VisCoT:
        return cls(protocol, box_frame=options.get("box_frame", "per-axis"))

    def truth_boxes(self, sample: Sample, width: int, height: int) -> list[Box]:
        """The official ground truth (``benchmark_det``'s box, moved onto the padded square)
        brought back to the image frame."""
        side = padded_side(sample)
        padded = [v / side for v in sample.metadata["truth_padded_px"]]
        return [padded_square_to_normalized(padded, sample.metadata["width"], sample.metadata["height"])]

    def focus_steps(self, sample: Sample, response: str, width: int, height: int) -> list[list[FocusBox]]:
        """Boxes in the frame the run read them (``box_frame``), brought to the image frame."""
        width, height = sample.metadata["width"], sample.metadata["height"]
        steps = super().focus_steps(sample, response, width, height)
        if self.box_frame != "padded-square":
            return steps
        return [[(padded_square_to_normalized(box, width, height), depth) for box, depth in step] for step in steps]

    def predicted_box(self, sample: Sample, response_text: str) -> list[float] | None:
        """The last area's box exactly as written, on the padded square (normalized), read in
        ``box_frame``; None when the last area has no readable box (detection wrong).

        As upstream (SIFThinker ``evaluation/viscot/model_cot_loader.py`` L455-477 takes
        ``str(bbox_result[-1][0])``, the last area's box as written; Visual-CoT ``calculation.py``
        L37-47 multiplies it by the square's side): never an earlier area in place of a broken last
        one, never a repaired box. An inverted or zero-area box stays so and has IoU 0 (torchvision's
        ``box_iou`` clamps the intersection to 0 there); coordinates past the edge, or pixel numbers
        (upstream multiplies them by the side too), are taken as written and miss. A last area with
        several boxes is read as the box enclosing them (upstream's exception handler blanks both
        the box and the answer there), unless one of them is degenerate: then that box."""
        width, height = sample.metadata["width"], sample.metadata["height"]
        areas = read_areas(response_text, clip=False)
        boxes = areas[-1].boxes if areas else []
        if not boxes:
            return None
        degenerate = [b for b in boxes if not (b[0] < b[2] and b[1] < b[3])]
        box = degenerate[0] if degenerate else (boxes[0] if len(boxes) == 1 else union_box(boxes))
        if self.box_frame == "padded-square":
            return list(box)
        return list(normalized_to_padded_square(box, width, height))

    def unanswered(self, sample: Sample, error: GenerationError) -> ScoredSample:
        return ScoredSample(sample, None, None, False, 0.0, request_error=error, details={"detection": 0.0})

    def solver(self) -> Solver:
        return TwoPass(self.first_pass, self.second_pass) if self.protocol == "two-pass" else super().solver()

    def scoring_workers(self) -> int:
        """A judge model answers slowly: judge as many samples at once as it takes."""
        return max(1, int(getattr(self.judge, "concurrency", 1)))

    @classmethod
    def build_mirror(cls, out: str | Path, seed: int = 0) -> Path:  # pragma: no mutate block
        return build_mirror(out, seed=seed)

    def score(self, sample: Sample, response_text: str, mode: PromptMode = "sif") -> ScoredSample:
        return self.score_many([sample], [response_text], mode)[0]

    def score_many(
        self, samples: Sequence[Sample], responses: Sequence[str], mode: PromptMode = "sif"
    ) -> list[ScoredSample]:
        """Judge all answers together (the judge runs them concurrently). A two-pass response is
        the JSON of both passes: the first's box, the second's answer."""
        if len(samples) != len(responses):
            raise ValueError(f"{len(samples)} samples but {len(responses)} responses to score")
        if self.protocol == "two-pass":
            passes = [json.loads(text) for text in responses]
            boxes = [parse_padded_box(item["first_pass"]) for item in passes]
            answers = [item["answer"].strip() or None for item in passes]
            scored = self._graded(samples, responses, answers, boxes)
            for item, both in zip(scored, passes, strict=True):
                item.details["first_pass"] = both["first_pass"]
            return scored
        boxes = [self.predicted_box(sample, text) for sample, text in zip(samples, responses, strict=True)]
        return self._graded(samples, responses, [answer_text(text) for text in responses], boxes)

    def _graded(
        self,
        samples: Sequence[Sample],
        responses: Sequence[str],
        answers: Sequence[str | None],
        boxes: Sequence[list[float] | None],
    ) -> list[ScoredSample]:
        pending = [i for i, answer in enumerate(answers) if answer]
        judged: dict[int, Any] = {}
        if pending:
            if self.judge is None:
                raise ValueError(
                    "the Visual-CoT answer score needs a judge: --judge llm (SIF_JUDGE_*) or --judge match"
                )
            items = [
                JudgeItem(
                    samples[i].metadata.get("question_line", samples[i].question), samples[i].target, answers[i] or ""
                )
                for i in pending
            ]
            judged = dict(zip(pending, self.judge.score_many(items, OFFICIAL_JUDGE), strict=True))
        scored = []
        for index, sample in enumerate(samples):
            details = {
                "detection": float(detection_right(sample, boxes[index])),
                "predicted_box_padded": boxes[index],
            }
            answer = answers[index]
            result = judged.get(index)
            item = ScoredSample(sample, responses[index], answer, answer is not None, 0.0, None, details)
            if result is not None and result.score is None:  # the judge failed: graded later, never a 0
                item.score, item.judge_error = None, result.error or "judge failure"
            elif result is not None:
                item.score = result.score
            scored.append(item)
        return scored

    # ----------------------------------------------------------------- the two-pass protocol

    def first_pass(self, sample: Sample, settings: Any) -> Any:
        """det loader L42-46: the question, lower-cased, "." and the box instruction."""
        from sifmodel.backends import GenerationRequest

        images = tuple(ref.load() for ref in sample.images)
        question = f"{sample.question.lower()}.{BOX_INSTRUCTION}"
        return GenerationRequest(f"{sample.id}#box", question, images, mode="plain", settings=settings)

    def second_pass(self, sample: Sample, first_reply: str, settings: Any) -> Any:
        """model_cot_loader.py L86-97: the image and a crop around the first pass's box, with the
        second-turn instruction and the question."""
        from sifmodel.backends import GenerationRequest

        box = parse_padded_box(first_reply)
        image = sample.images[0].load().convert("RGB")
        crop = crop_around(image, box) if box is not None else image
        where = f"The region {[round(v, 3) for v in box]} is shown in the second image. " if box else ""
        question = f"{where}{SECOND_PASS} {sample.question}"
        return GenerationRequest(sample.id, question, (image, crop), mode="plain", settings=settings)

    def aggregate(self, scored: Sequence[ScoredSample]) -> dict[str, float]:
        subsets = by(scored, lambda s: s.sample.category)
        answer = {name: accuracy(group) for name, group in subsets.items()}
        detection = {
            name: 100.0 * sum(s.details.get("detection", 0.0) for s in group) / len(group)
            for name, group in subsets.items()
        }
        metrics = {"score": mean_over(answer, SCORED_SUBSETS), "detection": mean_over(detection, SCORED_SUBSETS)}
        metrics.update({f"answer/{k}": answer.get(k, math.nan) for k in SCORED_SUBSETS})
        metrics.update({f"detection/{k}": detection.get(k, math.nan) for k in SCORED_SUBSETS})
        defective = sum(1 for s in scored if s.sample.metadata.get("defects"))
        metrics["defective_ground_truth"] = float(defective)
        return metrics

    def figure_terms(self, scored: Sequence[ScoredSample]) -> dict[str, list[Term]]:
        subsets = by(scored, lambda s: s.sample.category)
        answer = {name: accuracy_term(group) for name, group in subsets.items()}
        detection = {
            name: [Term(1.0, [100.0 * s.details.get("detection", 0.0) for s in group], [s.sample.id for s in group])]
            for name, group in subsets.items()
        }
        terms = {
            "score": mean_of_groups(answer, SCORED_SUBSETS),
            "detection": mean_of_groups(detection, SCORED_SUBSETS),
        }
        terms.update({f"answer/{k}": answer.get(k, []) for k in SCORED_SUBSETS})
        terms.update({f"detection/{k}": detection.get(k, []) for k in SCORED_SUBSETS})
        return terms


def build_mirror(out: str | Path, per_subset: int = 6, seed: int = 0) -> Path:  # pragma: no mutate block
    """A tiny Visual-CoT benchmark in the upstream layout (question JSON, ``benchmark_det`` JSONL
    and ``cot/<subset>/`` images), from synthetic scenes with single-object questions."""
    from sifdata.geometry import pixel_to_padded_square
    from sifeval.mirror_scenes import scene

    out = Path(out)
    (out / "benchmark").mkdir(parents=True, exist_ok=True)
    (out / "benchmark_det").mkdir(parents=True, exist_ok=True)
    number = 0
    for subset in ("gqa", "vsr"):
        (out / "cot" / subset).mkdir(parents=True, exist_ok=True)
        rows, det = [], []
        for qid in range(per_subset):
            image, _, objects = scene(1300 + number, seed)
            number += 1
            target = objects[0]
            name = f"cot/{subset}/{qid:06d}.jpg"
            image.save(out / name, quality=95)
            width, height = image.size
            padded = [round(v, 3) for v in pixel_to_padded_square(target.box, width, height)]
            question = f"What color is the {target.shape} on the floor?"
            rows.append(
                {
                    "dataset": subset,
                    "split": "val",
                    "question_id": qid,
                    "image": [name, f"{name}###{list(target.box)}"],
                    "conversations": [
                        {"from": "human", "value": f"<image>\n{question}{BOX_INSTRUCTION}"},
                        {"from": "gpt", "value": json.dumps(padded)},
                        {"from": "human", "value": "<image>"},
                        {"from": "gpt", "value": target.colour},
                    ],
                }
            )
            det.append(
                {
                    "img_path": name,
                    "expression": question,
                    "bbox": [float(v) for v in target.box],
                    "height": height,
                    "width": width,
                    "question_id": qid,
                    "split": "val",
                }
            )
        (out / "benchmark" / f"{subset}.json").write_text(json.dumps(rows, indent=4))
        (out / "benchmark_det" / f"{subset}.jsonl").write_text("".join(json.dumps(d) + "\n" for d in det))
    return out
