"""SpatialBench (SpatialBot; ``RussRobin/SpatialBench``, gated, CC-BY-4.0): 174 questions in
``positional.json``, ``existence.json``, ``counting.json``, ``reach.json`` and ``size.json``
(``id``, ``image``, ``question``, ``answer``); each image folder has a ``*_d`` twin holding
16-bit metric depth PNGs (larger = farther), the depth input of the SIF prompt.

Official scoring: a response is right when the ground-truth string occurs in the extracted
answer (case-insensitive). positional: accuracy. existence: consecutive (positive, negative)
pairs, a pair counts only if both are right. reach and size: consecutive pairs worth 3 points
(1 per right answer, 1 more if both are right). counting: 100 - mean absolute percentage error,
each error capped at 100%; a non-numeric answer is a parse failure scored as that worst case.
Overall: the mean of the five category scores.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sifdata.answers import first_number
from sifdata.depth import DepthEncoding, decode_depth_image, depth_to_image
from sifeval.adapters import Benchmark, accuracy, answer_text, by, register
from sifeval.types import ImageRef, Sample, ScoredSample, Source
from sifmodel.backends import GenerationRequest, GenerationSettings
from sifmodel.prompts import PromptMode

CATEGORIES = ("positional", "existence", "counting", "reach", "size")


def depth_twin(root: Path, image: str) -> Path:
    """``positional/0001.png`` -> ``positional_d/0001.png``."""
    path = Path(image)
    return root / path.parent.with_name(path.parent.name + "_d") / path.name


@register
class SpatialBench(Benchmark):
    name = "spatialbench"
    title = "SpatialBench"
    source = Source(hub_id="RussRobin/SpatialBench", split="test", license="cc-by-4.0", gated=True)
    protocols = ("official",)
    default_protocol = "official"

    def load(self, data_dir: str | Path | None = None) -> list[Sample]:
        if data_dir is None:
            from huggingface_hub import snapshot_download

            # Gated: accept the licence on the Hub and set HF_TOKEN (or `hf auth login`) first.
            data_dir = snapshot_download(self.source.hub_id, repo_type="dataset", revision=self.source.revision)
        root = Path(data_dir)
        samples = []
        for category in CATEGORIES:
            path = root / f"{category}.json"
            if not path.is_file():
                raise FileNotFoundError(f"SpatialBench folder {root} has no {category}.json")
            for position, row in enumerate(json.loads(path.read_text(encoding="utf-8"))):
                images = row["image"] if isinstance(row["image"], list) else [row["image"]]
                twin = depth_twin(root, images[0])
                samples.append(
                    Sample(
                        id=f"{category}/{row['id']}",
                        question=row["question"],
                        target=str(row["answer"]),
                        category=category,
                        images=tuple(ImageRef(path=str(root / image)) for image in images),
                        depth_image=ImageRef(path=str(twin)) if twin.is_file() else None,
                        metadata={"position": position},
                    )
                )
        return samples

    def request(self, sample: Sample, mode: PromptMode, settings: GenerationSettings) -> GenerationRequest:
        request = super().request(sample, mode, settings)
        if mode == "sif" and sample.depth_image is not None:
            # Metric depth (larger = farther) -> SIF depth -> the 8-bit picture models see.
            values, _ = decode_depth_image(sample.depth_image.load(), DepthEncoding.METRIC16)
            request = GenerationRequest(
                request.id, request.question, request.images, depth_to_image(values), mode, settings, request.system
            )
        return request

    def score(self, sample: Sample, response_text: str, mode: str = "sif") -> ScoredSample:
        answer = answer_text(response_text, mode)
        if sample.category == "counting":
            number = first_number(answer) if answer else None
            truth = float(sample.target)
            if number is None:
                return ScoredSample(sample, response_text, None, False, 0.0, details={"ape": 100.0})
            ape = min(100.0, abs(number - truth) / truth * 100.0) if truth else (0.0 if number == 0 else 100.0)
            return ScoredSample(sample, response_text, str(number), True, 1.0 - ape / 100.0, details={"ape": ape})
        right = answer is not None and sample.target.strip().lower() in answer.lower()
        return ScoredSample(sample, response_text, answer, answer is not None, float(right))

    def aggregate(self, scored: Sequence[ScoredSample]) -> dict[str, float]:
        groups = by(scored, lambda s: s.sample.category)
        metrics: dict[str, float] = {}
        for category, items in groups.items():
            items = sorted(items, key=lambda s: s.sample.metadata["position"])
            if category == "counting":
                apes = [s.details["ape"] for s in items if s.score is not None]
                metrics[category] = 100.0 - sum(apes) / len(apes) if apes else float("nan")
            elif category in ("existence", "reach", "size"):
                metrics[category] = _pairs(items, category)
            else:
                metrics[category] = accuracy(items)
        present = [metrics[c] for c in CATEGORIES if c in metrics]
        return {
            "score": sum(present) / len(present) if present else float("nan"),
            **{f"category/{k}": v for k, v in metrics.items()},
        }


def _pairs(items: list[ScoredSample], category: str) -> float:
    pairs = [(items[i], items[i + 1]) for i in range(0, len(items) - 1, 2)]
    pairs = [(a, b) for a, b in pairs if a.score is not None and b.score is not None]
    if not pairs:
        return float("nan")
    if category == "existence":
        return 100.0 * sum(a.score == 1.0 and b.score == 1.0 for a, b in pairs) / len(pairs)
    points = sum((a.score or 0.0) + (b.score or 0.0) + float(a.score == 1.0 and b.score == 1.0) for a, b in pairs)
    return 100.0 * points / (3 * len(pairs))


def build_mirror(out: str | Path, per_category: int = 4, seed: int = 0) -> Path:
    """A tiny SpatialBench in the upstream layout (five JSON files, images with ``*_d`` metric
    depth twins), from synthetic scenes with known answers."""
    import numpy as np
    from PIL import Image

    from sifeval.mirror_scenes import _centre, _pick, scene

    out = Path(out)
    records: dict[str, list[dict[str, Any]]] = {c: [] for c in CATEGORIES}
    number = 0
    for category in CATEGORIES:
        folder, twin = out / category, out / f"{category}_d"
        folder.mkdir(parents=True, exist_ok=True)
        twin.mkdir(parents=True, exist_ok=True)
        for item in range(per_category):
            image, depth, objects = scene(900 + number, seed)
            rng = np.random.default_rng([seed, 53, number])
            name = f"{number:04d}.png"
            image.save(folder / name)
            Image.fromarray(np.round(depth * 10000).astype(np.uint16)).save(
                twin / name
            )  # millimetres, farther = larger
            a, b = _pick(rng, objects, 2)
            if category == "positional":
                question, answer = (
                    f"Is the {a.name} to the left or to the right of the {b.name}?",
                    ("left" if _centre(a)[0] < _centre(b)[0] else "right"),
                )
            elif category == "existence":
                present = item % 2 == 0  # consecutive (positive, negative) pairs
                absent = "pink star"  # synthetic scenes have no stars
                question = f"Is there a {a.name if present else absent} in the image?"
                answer = "Yes" if present else "No"
            elif category == "counting":
                question, answer = f"How many {a.shape}s are there?", str(sum(o.shape == a.shape for o in objects))
            elif category == "reach":
                near = abs(a.depth - b.depth) < 0.15 and abs(_centre(a)[0] - _centre(b)[0]) < image.width / 3
                question, answer = f"Can the {a.name} reach the {b.name}?", "Yes" if near else "No"
            else:
                area_a = (a.box[2] - a.box[0]) * (a.box[3] - a.box[1])
                area_b = (b.box[2] - b.box[0]) * (b.box[3] - b.box[1])
                question, answer = (
                    f"Is the {a.name} bigger than the {b.name} in the image?",
                    "Yes" if area_a > area_b else "No",
                )
            records[category].append(
                {"id": number, "image": f"{category}/{name}", "question": question, "answer": answer}
            )
            number += 1
    for category, rows in records.items():
        (out / f"{category}.json").write_text(json.dumps(rows, indent=1))
    return out
