"""The ``vllm:`` backend against a stand-in engine module (``tests/fakes/vllm``: vLLM's
``LLM``/``SamplingParams`` surface, each ``LLM.chat`` call costing a fixed overhead plus a small
cost per prompt, as a GPU engine's does), put on ``sys.path`` here. Not vLLM: what is measured
is how the backend feeds an engine.

- baseline (same run): one engine call per request, what the backend did before
  (``chunk_size=1``);
- ours: 512 requests through ``sifeval``'s runner; targets: at most 4 engine calls, wall time at
  most a tenth of one call per request.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "tests" / "fakes"))

import vllm

from sifeval import get_benchmark
from sifeval.cvbench import build_mirror
from sifeval.runner import run
from sifmodel.backends import GenerationSettings, load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=512)
    parser.add_argument("--call-overhead", type=float, default=0.05, help="seconds per engine call")
    parser.add_argument("--per-prompt", type=float, default=0.0005, help="seconds per prompt in a call")
    args = parser.parse_args()
    vllm.CALL_OVERHEAD_S, vllm.PER_PROMPT_S = args.call_overhead, args.per_prompt
    assert "fakes" in vllm.__file__, vllm.__file__
    with tempfile.TemporaryDirectory() as tmp:
        data = build_mirror(Path(tmp) / "cvbench", per_task=args.requests // 4)
        bench = get_benchmark("cvbench")
        settings = GenerationSettings(max_new_tokens=8)
        timings = {}
        for label, chunk in (("one call per request", 1), ("chunked (ours)", 256)):
            vllm.LLM.calls.clear()
            backend = load(f"vllm:stand-in?chunk_size={chunk}")
            started = time.perf_counter()
            result = run(bench, backend, "vllm", Path(tmp) / label, data_dir=data, mode="plain", settings=settings,
                         progress=False)  # fmt: skip
            timings[label] = (time.perf_counter() - started, len(vllm.LLM.calls), max(vllm.LLM.calls))
            assert result.n == args.requests and result.request_errors == 0
    per_request_call = args.call_overhead + args.per_prompt
    for label, (elapsed, calls, largest) in timings.items():
        print(f"{label:22s} {elapsed:7.2f} s  {calls:4d} engine calls (largest {largest} prompts)")
    ours, calls, _ = timings["chunked (ours)"]
    baseline = timings["one call per request"][0]
    print(
        f"{args.requests} requests in {calls} engine calls (target <= 4); {ours / args.requests * 1000:.2f} ms per "
        f"request = {ours / args.requests / per_request_call:.3f} of one call (target <= 0.1); "
        f"{baseline / ours:.1f}x faster than one call per request"
    )


if __name__ == "__main__":
    main()
