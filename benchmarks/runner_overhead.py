"""The evaluation runner's own cost per sample, with an instant model (a fake backend, named so,
that answers at once), and re-scoring throughput from saved responses.

Target: at most 1 ms of runner overhead per sample (requests built, response cache keys,
scoring, the per-sample JSONL line). Data: the CV-Bench mirror at --per-task questions per task.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from sifeval.adapters import get_benchmark
from sifeval.cvbench import build_mirror
from sifeval.rescore import rescore_run
from sifeval.runner import run
from sifmodel.backends import GenerationRequest, GenerationResponse

REPLY = (
    '<think>\n<area>[{"bbox_2d":[0.000,0.000,1.000,1.000],"depth":0.500}]</area>\n<text>x</text>\n</think>\n'
    "<answer>(A)</answer>"
)


class InstantFakeBackend:
    """Not a model: answers every request at once, so that only the runner is measured."""

    name = "instant-fake"

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResponse]:
        return [GenerationResponse(r.id, REPLY, None, 1, 1, 0.0) for r in requests]

    def identity(self) -> dict[str, str]:
        return {"kind": "fake", "fingerprint": "instant-fake"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--per-task", type=int, default=250, help="questions per CV-Bench task (4 tasks)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = build_mirror(Path(tmp) / "cvbench", per_task=args.per_task)
        bench = get_benchmark("cvbench")
        samples = bench.load(data)
        start = time.perf_counter()
        bench.load(data)
        load_time = time.perf_counter() - start
        start = time.perf_counter()
        result = run(
            bench,
            InstantFakeBackend(),
            "instant-fake",
            Path(tmp) / "run",
            data_dir=data,
            mode="sif-rgb",
            cache=None,
            progress=False,
        )
        elapsed = time.perf_counter() - start - load_time  # the runner, without reading the dataset
        assert result.n == len(samples)
        start = time.perf_counter()
        rescore_run(bench, Path(tmp) / "run")
        rescore = time.perf_counter() - start
    per_sample = elapsed / len(samples) * 1000
    print(f"{len(samples)} samples; dataset load {load_time:.2f} s (not counted)")
    print(
        f"runner overhead: {per_sample:.3f} ms per sample (target <= 1 ms: {'met' if per_sample <= 1 else 'NOT met'})"
    )
    print(f"re-scoring saved responses: {len(samples) / rescore:,.0f} samples/s")


if __name__ == "__main__":
    main()
