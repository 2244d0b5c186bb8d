"""The Visual-CoT benchmark (questions from the Visual-CoT repository, ``viscot_benchmark``;
images from the Visual-CoT archives on the Hub ``deepcs233/Visual-CoT``). 11 scored subsets.

Two scores, both means over subsets:
- detection accuracy: the predicted box against the ground truth in padded-square
  coordinates, right if IoU > 0.5, unparsable = wrong;
- answer score: a judge model rates the answer's closeness to the reference in [0, 1].
  The headline ``score`` is the answer score (0-100).

Protocols:
- ``sif-one-pass`` (SIFThinker): one request; the predicted box is the last ``<area>`` (its
  boxes' enclosing box when it holds several, where the original script blanked the answer
  and the box);
- ``two-pass`` (the original VisCoT): first the question with VisCoT's box instruction, the
  reply's ``[x1, y1, x2, y2]`` (padded-square) is the predicted box; then the image and a square
  crop around that box (half-size at least 112 px) with the question, whose reply is the answer.
  Our backends take one user turn, so the second pass states the first pass's box in words
  beside the crop instead of replaying the conversation.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from sifdata.chain import parse_chain
from sifdata.geometry import iou, normalized_to_padded_square, padded_square_to_pixel, union_box
from sifeval.adapters import Benchmark, accuracy, answer_text, by, register
from sifeval.types import ImageRef, Sample, ScoredSample, Source
from sifmodel.judge import JudgeItem, LLMJudge, MatchJudge

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


@register
class VisCoT(Benchmark):
    name = "viscot"
    title = "Visual-CoT benchmark"
    source = Source(hub_id="deepcs233/Visual-CoT", split="benchmark", license="apache-2.0")
    protocols = ("sif-one-pass", "two-pass")
    default_protocol = "sif-one-pass"

    def __init__(self, protocol: str | None = None, judge: LLMJudge | MatchJudge | None = None) -> None:
        super().__init__(protocol)
        self.judge = judge

    def load(self, data_dir: str | Path | None = None) -> list[Sample]:
        from sifdata.sources import viscot

        if data_dir is None:
            raise FileNotFoundError(
                "the Visual-CoT benchmark needs a local folder: viscot_benchmark/benchmark/*.json, "
                "benchmark_det/*.jsonl, and the images extracted from deepcs233/Visual-CoT under it"
            )
        root = Path(data_dir)
        rejects: list[Any] = []
        records = viscot.read(
            root / "benchmark", sizes=root / "benchmark_det", image_root=root, on_reject=rejects.append
        )
        samples = []
        for record in records:
            if record.source not in SCORED_SUBSETS:
                continue
            samples.append(
                Sample(
                    id=record.key,
                    question=record.question,
                    target=record.answer,
                    category=record.source,
                    images=(ImageRef(path=str(record.image_path)),),
                    metadata={
                        "gt_box_padded": list(record.gt_boxes_padded[0]),
                        "width": record.width,
                        "height": record.height,
                    },
                )
            )
        if rejects:
            raise ValueError(
                f"{len(rejects)} benchmark records could not be read; first: {rejects[0].key}: {rejects[0].reason}"
            )
        return samples

    def _detection(self, sample: Sample, response_text: str) -> tuple[bool, list[float] | None]:
        width, height = sample.metadata["width"], sample.metadata["height"]
        boxes = parse_chain(response_text, strict=False, width=width, height=height).last_boxes
        if not boxes:
            return False, None
        predicted = list(normalized_to_padded_square(union_box(boxes), width, height))
        return iou(predicted, sample.metadata["gt_box_padded"]) > 0.5, predicted

    def score(self, sample: Sample, response_text: str, mode: str = "sif") -> ScoredSample:
        return self.score_many([sample], [response_text], mode)[0]

    def score_many(self, samples: Sequence[Sample], responses: Sequence[str], mode: str = "sif") -> list[ScoredSample]:
        """Judge all answers together (the judge runs them concurrently)."""
        answers = [answer_text(text, mode) for text in responses]
        pending = [i for i, answer in enumerate(answers) if answer]
        judged: dict[int, Any] = {}
        if pending:
            if self.judge is None:
                raise ValueError(
                    "the Visual-CoT answer score needs a judge: --judge llm (SIF_JUDGE_*) or --judge match"
                )
            items = [JudgeItem(samples[i].question, samples[i].target, answers[i] or "") for i in pending]
            judged = dict(zip(pending, self.judge.score_many(items), strict=True))
        scored = []
        for index, (sample, text) in enumerate(zip(samples, responses, strict=True)):
            hit, box = self._detection(sample, text)
            result = judged.get(index)
            details = {"detection": float(hit), "predicted_box_padded": box}
            if result is not None and result.score is None:  # the judge failed: not a 0, an error
                scored.append(ScoredSample(sample, text, answers[index], True, None, f"judge: {result.error}", details))
                continue
            score = result.score if result is not None else 0.0
            scored.append(ScoredSample(sample, text, answers[index], answers[index] is not None, score, None, details))
        return scored

    # ----------------------------------------------------------------- the two-pass protocol

    def first_pass(self, sample: Sample, settings: Any) -> Any:
        from sifmodel.backends import GenerationRequest

        images = tuple(ref.load() for ref in sample.images)
        return GenerationRequest(
            f"{sample.id}#box", sample.question + BOX_INSTRUCTION, images, mode="plain", settings=settings
        )

    def second_pass(self, sample: Sample, box: list[float] | None, settings: Any) -> Any:
        from sifmodel.backends import GenerationRequest

        image = sample.images[0].load().convert("RGB")
        crop = crop_around(image, box) if box is not None else image
        where = f"the region {[round(v, 3) for v in box]} (shown enlarged in the second image)" if box else "the image"
        question = f"Look at {where}. {sample.question} Answer the question briefly."
        return GenerationRequest(sample.id, question, (image, crop), mode="plain", settings=settings)

    def score_two_pass(
        self, samples: Sequence[Sample], first: Sequence[str], second: Sequence[str]
    ) -> list[ScoredSample]:
        boxes = [parse_padded_box(text) for text in first]
        scored = self.score_many(samples, second, "plain")
        for item, box, text in zip(scored, boxes, first, strict=True):
            hit = box is not None and iou(box, item.sample.metadata["gt_box_padded"]) > 0.5
            item.details.update({"detection": float(hit), "predicted_box_padded": box, "first_pass": text})
        return scored

    def aggregate(self, scored: Sequence[ScoredSample]) -> dict[str, float]:
        subsets = by(scored, lambda s: s.sample.category)
        answer = {name: accuracy(group) for name, group in subsets.items()}
        detection = {
            name: 100.0 * sum(s.details.get("detection", 0.0) for s in group) / len(group)
            for name, group in subsets.items()
        }
        metrics = {
            "score": sum(answer.values()) / len(answer) if answer else float("nan"),
            "detection": sum(detection.values()) / len(detection) if detection else float("nan"),
        }
        metrics.update({f"answer/{k}": v for k, v in sorted(answer.items())})
        metrics.update({f"detection/{k}": v for k, v in sorted(detection.items())})
        return metrics


BOX_INSTRUCTION = (
    " Please provide the bounding box coordinate of the region that can help you answer the question better."
)
_BOX = re.compile(r"\[\s*(-?\d*\.?\d+)\s*,\s*(-?\d*\.?\d+)\s*,\s*(-?\d*\.?\d+)\s*,\s*(-?\d*\.?\d+)\s*\]")


def parse_padded_box(text: str) -> list[float] | None:
    """The first ``[x1, y1, x2, y2]`` of a reply, in VisCoT's padded-square coordinates."""
    match = _BOX.search(text)
    if not match:
        return None
    x1, y1, x2, y2 = (float(v) for v in match.groups())
    if not (0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1):
        return None
    return [x1, y1, x2, y2]


def crop_around(image: Image.Image, box_padded: list[float], min_half: int = 112) -> Image.Image:
    """A square crop centred on a padded-square box, half-size at least ``min_half`` pixels."""
    x1, y1, x2, y2 = padded_square_to_pixel(box_padded, image.width, image.height)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    half = max((x2 - x1) / 2, (y2 - y1) / 2, min_half)
    left, top = max(0, int(cx - half)), max(0, int(cy - half))
    right, bottom = min(image.width, int(cx + half)), min(image.height, int(cy + half))
    return image.crop((left, top, max(right, left + 1), max(bottom, top + 1)))


def build_mirror(out: str | Path, per_subset: int = 6, seed: int = 0) -> Path:
    """A tiny Visual-CoT benchmark in the upstream layout (question JSON, ``benchmark_det`` JSONL
    and ``cot/<subset>/`` images), from synthetic scenes with single-object questions."""
    from sifdata.geometry import pixel_to_padded_square
    from sifeval.mirror_scenes import scene

    out = Path(out)
    (out / "benchmark").mkdir(parents=True, exist_ok=True)
    (out / "benchmark_det").mkdir(parents=True, exist_ok=True)
    instruction = (
        " Please provide the bounding box coordinate of the region that can help you answer the question better."
    )
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
                        {"from": "human", "value": f"<image>\n{question}{instruction}"},
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
