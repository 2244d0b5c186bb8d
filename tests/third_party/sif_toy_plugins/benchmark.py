"""A benchmark from outside sifeval: one module, registered under the ``sifeval.benchmarks``
entry point group by this package's metadata, with its mirror beside it. Nothing in sifeval
names it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from sifeval import Benchmark, ImageRef, Sample, ScoredSample, Source
from sifeval.adapters import accuracy, answer_text


class ToyColours(Benchmark):
    name = "toy-colours"
    title = "Toy colours"
    source = Source(hub_id="example/toy-colours", split="test", license="cc0-1.0")
    protocols = ("exact",)
    default_protocol = "exact"

    def load(self, data_dir: str | Path | None = None) -> list[Sample]:
        root = Path(data_dir or ".")
        rows = json.loads((root / "questions.json").read_text())
        return [
            Sample(
                str(i),
                f"What colour is this square? ({row['image']})",
                row["colour"],
                "colour",
                (ImageRef(path=str(root / row["image"])),),
            )
            for i, row in enumerate(rows)
        ]

    def score(self, sample: Sample, response_text: str, mode: str = "sif") -> ScoredSample:
        answer = answer_text(response_text, mode)
        right = answer is not None and sample.target in answer.lower()
        return ScoredSample(sample, response_text, answer, answer is not None, float(right))

    def aggregate(self, scored: Sequence[ScoredSample]) -> dict[str, float]:
        return {"score": accuracy(scored)}

    @classmethod
    def build_mirror(cls, out: str | Path, seed: int = 0) -> Path:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        rows = []
        for index, colour in enumerate(("red", "green", "blue")):
            Image.new("RGB", (16, 16), colour).save(out / f"{index}.png")
            rows.append({"image": f"{index}.png", "colour": colour})
        (out / "questions.json").write_text(json.dumps(rows))
        return out
