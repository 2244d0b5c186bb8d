"""SpatialBench (SpatialBot; ``RussRobin/SpatialBench``, gated, CC-BY-4.0): ``positional.json``,
``existence.json``, ``counting.json``, ``reach.json`` and ``size.json`` (records ``image``, a path
or a list, ``question``, ``answer``, and ``id`` where present: the position in the file otherwise).
Each image folder has a ``<folder>_d`` twin of 16-bit depth PNGs, the SIF prompt's depth input.

Official scoring (BAAI-DCAI/SpatialBot at 2d84503, ``bunny/eval/eval_spatialbench.py``):

- right when the ground-truth string occurs in the answer, **case-sensitive** (``gt in response``,
  L159-207): "yes" does not contain "Yes", and "I don't know." does not contain "No";
- pairs are the consecutive records of the file, positions (0, 1), (2, 3), ... (L159-200):
  existence counts a pair only if both are right; reach and size give a pair 1 point per right
  answer and 1 more when both are right, out of 3; positional is plain accuracy;
- counting is 100 - the mean absolute percentage error, **not capped** (L201-207): answering 7
  for 2 is a 250% error, and the category can go below 0;
- the depth twin is ``<first folder>_d/<file name up to its first '.'>.png``, whatever the RGB
  image's extension (L116-118); a missing twin is a request error for that sample in ``sif``
  mode, never replaced by an estimated map.

Answer reader: the answer part of the reply (:func:`sifdata.answers.answer_part`: the last
``<answer>``, else what follows ``</think>``, else ``\\boxed{...}``, else the whole reply), in
every prompt mode. Upstream matches the whole reply (its models answer in a word or two, and
for such a reply the two are the same); a reasoning model's thinking is left out here, because
``gt in response`` over the thinking credits a "Yes" that the model only considered, and a
count would be read from the first number thought.

Deliberate differences: upstream crashes on a counting answer that is not an integer
(``int(response)``) and on a ground truth of 0; here the first number written is read ("There
are 3 cups." is 3), an answer with no number is a parse failure scored with the error of
answering 0 (100%), and a ground truth of 0 scores 0% error for 0 and 100% otherwise.
Upstream prints one score per category and no overall figure; ``score`` here is the mean of
the five categories (NaN when one is missing). A paired category is NaN when a pair of it is
incomplete in the run (a shard or ``--limit`` that keeps one of the two): pairs are never
re-formed from the samples present.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sifdata.answers import first_number
from sifdata.depth import DepthEncoding, decode_depth_image, depth_to_image
from sifdata.files import DataFileError, read_json
from sifeval.adapters import Benchmark, accuracy, accuracy_term, answer_text, by, mean_of_groups, mean_over
from sifeval.intervals import Term
from sifeval.types import ImageRef, Sample, ScoredSample, Source
from sifmodel.backends import GenerationError, GenerationRequest, GenerationSettings
from sifmodel.prompts import PromptMode

CATEGORIES = ("positional", "existence", "counting", "reach", "size")
PAIRED = ("existence", "reach", "size")


def depth_twin(root: Path, image: str) -> Path:
    """``existence/0001.jpg`` -> ``existence_d/0001.png`` (the name up to its first '.')."""
    parts = Path(image).parts
    folder = f"{parts[0]}_d" if len(parts) > 1 else "_d"
    return root / folder / f"{Path(image).name.split('.', 1)[0]}.png"


class SpatialBench(Benchmark):
    name = "spatialbench"
    title = "SpatialBench"
    source = Source(hub_id="RussRobin/SpatialBench", split="test", license="cc-by-4.0", gated=True)
    protocols = ("official",)
    default_protocol = "official"
    categories = CATEGORIES
    provides_depth = True  # the *_d twins
    layout = (
        "positional.json, existence.json, counting.json, reach.json, size.json with image, "
        "question, answer, and the image folders with their *_d depth twins"
    )

    def load(self, data_dir: str | Path | None = None) -> list[Sample]:
        if data_dir is None:  # pragma: no mutate block
            from huggingface_hub import snapshot_download

            # Gated: accept the licence on the Hub and set HF_TOKEN (or `hf auth login`) first.
            data_dir = snapshot_download(self.source.hub_id, repo_type="dataset", revision=self.source.revision)
        root = Path(data_dir)
        samples = []
        for category in CATEGORIES:
            path = root / f"{category}.json"
            if not path.is_file():
                raise FileNotFoundError(f"SpatialBench folder {root} has no {category}.json")
            for position, row in enumerate(read_json(path)):
                try:
                    images = row["image"] if isinstance(row["image"], list) else [row["image"]]
                    twin = depth_twin(root, images[0])
                    sample = Sample(
                        id=f"{category}/{row.get('id', position)}",
                        question=row["question"],
                        target=str(row["answer"]),
                        category=category,
                        images=tuple(ImageRef.inside(root, image) for image in images),
                        depth_image=ImageRef.inside(root, str(twin.relative_to(root))),
                        metadata={"position": position, "pair": position // 2, "depth_twin": str(twin)},
                    )
                except (KeyError, IndexError, TypeError, AttributeError) as error:
                    raise DataFileError(f"{path}: record {position}: missing or malformed {error}") from None
                samples.append(sample)
        return samples

    def request(self, sample: Sample, mode: PromptMode, settings: GenerationSettings) -> GenerationRequest:
        if mode != "sif":
            return super().request(sample, mode, settings)
        twin = Path(sample.metadata["depth_twin"])
        if sample.depth_image is None or (sample.depth_image.refused is None and not twin.is_file()):
            raise FileNotFoundError(f"the depth twin of {sample.id} is missing: {twin}")
        request = super().request(sample, mode, settings)
        # Metric depth (larger = farther) -> SIF depth -> the 8-bit picture models see.
        values, _ = decode_depth_image(sample.depth_image.load(), DepthEncoding.METRIC16)
        return GenerationRequest(
            request.id, request.question, request.images, depth_to_image(values), mode, settings, request.system
        )

    @classmethod
    def build_mirror(cls, out: str | Path, seed: int = 0) -> Path:  # pragma: no mutate block
        return build_mirror(out, seed=seed)

    def unanswered(self, sample: Sample, error: GenerationError) -> ScoredSample:
        details = {"ape": 100.0} if sample.category == "counting" else {}
        return ScoredSample(sample, None, None, False, 0.0, request_error=error, details=details)

    def score(self, sample: Sample, response_text: str, mode: PromptMode = "sif") -> ScoredSample:
        # The answer part in every mode (the module docstring says why it is not the whole reply).
        answer = answer_text(response_text)
        if sample.category == "counting":
            return _score_count(sample, response_text, answer)
        right = answer is not None and sample.target in answer  # case-sensitive, as upstream
        return ScoredSample(sample, response_text, answer, answer is not None, float(right))

    def aggregate(self, scored: Sequence[ScoredSample]) -> dict[str, float]:
        groups = by(scored, lambda s: s.sample.category)
        metrics: dict[str, float] = {}
        for category in CATEGORIES:
            items = groups.get(category, [])
            if not items:
                metrics[category] = float("nan")
            elif category == "counting":  # every counting score has its error, unanswered ones too
                apes = [s.details["ape"] for s in items]
                metrics[category] = 100.0 - sum(apes) / len(apes)
            elif category in PAIRED:
                metrics[category] = _pairs(items, category)
            else:
                metrics[category] = accuracy(items)
        return {"score": mean_over(metrics, CATEGORIES), **{f"category/{k}": v for k, v in metrics.items()}}

    def figure_terms(self, scored: Sequence[ScoredSample]) -> dict[str, list[Term]]:
        """Counting: the samples' 100 - APE; the paired categories: one value per pair (the pair
        is the unit); the others: accuracy."""
        groups = by(scored, lambda s: s.sample.category)
        categories: dict[str, list[Term]] = {}
        for category in CATEGORIES:
            items = groups.get(category, [])
            if category == "counting":
                apes = [s for s in items if "ape" in s.details]
                values = [100.0 - s.details["ape"] for s in apes]
                categories[category] = [Term(1.0, values, [s.sample.id for s in apes])] if apes else []
            elif category in PAIRED:
                categories[category] = _pair_terms(items, category)
            else:
                categories[category] = accuracy_term(items)
        return {
            "score": mean_of_groups(categories, CATEGORIES),
            **{f"category/{name}": terms for name, terms in categories.items()},
        }


def _score_count(sample: Sample, response_text: str, answer: str | None) -> ScoredSample:
    truth = float(sample.target)
    number = first_number(answer) if answer else None
    if number is None:  # upstream's int() would stop the run; here: the error of answering 0
        return ScoredSample(sample, response_text, None, False, 0.0, details={"ape": 100.0})
    # Not capped; a ground truth of 0 (upstream: a division by zero) is 0% for 0, else 100%.
    ape = abs(number - truth) / truth * 100.0 if truth else (0.0 if number == 0 else 100.0)
    return ScoredSample(sample, response_text, str(number), True, max(0.0, 1.0 - ape / 100.0), details={"ape": ape})


def _pairs(items: list[ScoredSample], category: str) -> float:
    """The official pair score over the file's pairs (positions 2k, 2k + 1); NaN when a pair of
    the run lacks its partner."""
    pairs = by(items, lambda s: str(s.sample.metadata["pair"]))
    if any(len(members) != 2 for members in pairs.values()):
        return float("nan")
    complete = [sorted(members, key=lambda s: s.sample.metadata["position"]) for members in pairs.values()]
    if any(s.score is None for members in complete for s in members):
        return float("nan")
    if category == "existence":
        return 100.0 * sum(a.score == 1.0 and b.score == 1.0 for a, b in complete) / len(complete)
    points = sum((a.score or 0.0) + (b.score or 0.0) + float(a.score == 1.0 and b.score == 1.0) for a, b in complete)
    return 100.0 * points / (3 * len(complete))


def _pair_terms(items: list[ScoredSample], category: str) -> list[Term]:
    """:func:`_pairs` as one value per pair (0-100), each pair its own cluster; [] where it is NaN."""
    pairs = by(items, lambda s: str(s.sample.metadata["pair"]))
    if not pairs or any(len(members) != 2 or any(s.score is None for s in members) for members in pairs.values()):
        return []
    values = []
    for members in pairs.values():
        a, b = members
        both = float(a.score == 1.0 and b.score == 1.0)
        values.append(
            100.0 * both if category == "existence" else 100.0 * ((a.score or 0.0) + (b.score or 0.0) + both) / 3
        )
    return [Term(1.0, values, list(pairs))]


def build_mirror(out: str | Path, per_category: int = 4, seed: int = 0) -> Path:  # pragma: no mutate block
    """A tiny SpatialBench in the upstream layout (five JSON files, images with ``*_d`` metric
    depth twins), from synthetic scenes with known answers."""
    import numpy as np
    from PIL import Image

    from sifeval.mirror_scenes import centre, pick, scene

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
            # As upstream: RGB in any format, the depth twin always a PNG named up to the first '.'.
            name = f"{number:04d}.jpg" if category in ("positional", "counting") else f"{number:04d}.png"
            image.save(folder / name, quality=95)  # (PNG ignores quality)
            depth_mm = np.round(depth * 10000).astype(np.uint16)  # millimetres, farther = larger
            Image.fromarray(depth_mm).save(twin / f"{number:04d}.png")
            a, b = pick(rng, objects, 2)
            if category == "positional":
                question, answer = (
                    f"Is the {a.name} to the left or to the right of the {b.name}?",
                    ("left" if centre(a)[0] < centre(b)[0] else "right"),
                )
            elif category == "existence":
                present = item % 2 == 0  # consecutive (positive, negative) pairs
                absent = "pink star"  # synthetic scenes have no stars
                question = f"Is there a {a.name if present else absent} in the image?"
                answer = "Yes" if present else "No"
            elif category == "counting":
                question, answer = f"How many {a.shape}s are there?", str(sum(o.shape == a.shape for o in objects))
            elif category == "reach":
                near = abs(a.depth - b.depth) < 0.15 and abs(centre(a)[0] - centre(b)[0]) < image.width / 3
                question, answer = f"Can the {a.name} reach the {b.name}?", "Yes" if near else "No"
            else:
                area_a = (a.box[2] - a.box[0]) * (a.box[3] - a.box[1])
                area_b = (b.box[2] - b.box[0]) * (b.box[3] - b.box[1])
                question, answer = (
                    f"Is the {a.name} bigger than the {b.name} in the image?",
                    "Yes" if area_a > area_b else "No",
                )
            record = {"id": number, "image": f"{category}/{name}", "question": question, "answer": answer}
            if category == "size":
                del record["id"]  # records may lack an id: the position in the file is the id then
            records[category].append(record)
            number += 1
    for category, rows in records.items():
        (out / f"{category}.json").write_text(json.dumps(rows, indent=1))
    return out
