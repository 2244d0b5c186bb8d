"""The runner against a plain sliding window, over a loopback server whose latencies vary as
generation lengths do (lognormal, median 0.3 s, sigma 0.8), same requests, same concurrency.

- baseline: the simplest thing that keeps ``concurrency`` requests in flight, a thread pool
  calling the OpenAI-compatible client directly (no benchmark, no scoring, no journal);
- ours: ``sifeval.runner.run`` on a CV-Bench mirror through the ``openai:`` backend, every
  response scored and journaled as it arrives.

The target is at most 1.1x the baseline; a runner that waits for the slowest reply of each
batch before sending the next took 3.5x in the same setting.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from loopback_server import LatencyServer

from sifdata.llm import ChatClient
from sifeval import get_benchmark
from sifeval.cvbench import build_mirror
from sifeval.runner import run
from sifmodel.backends import GenerationSettings, load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=256)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--median", type=float, default=0.3)
    parser.add_argument("--sigma", type=float, default=0.8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = build_mirror(Path(tmp) / "cvbench", per_task=args.requests // 4)
        bench = get_benchmark("cvbench")
        samples = bench.load(data)[: args.requests]
        spec = f"openai:m@{{url}}?concurrency={args.concurrency}"
        with LatencyServer(args.median, args.sigma) as server:
            backend = load(spec.format(url=server.base_url))
            requests = [bench.request(sample, "plain", GenerationSettings(max_new_tokens=8)) for sample in samples]
            expected = sum(server.latency({"messages": m}) for m in _messages(backend, requests))
            client = ChatClient("m", server.base_url)
            started = time.perf_counter()
            with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
                list(pool.map(lambda m: client.complete(m, max_tokens=8), _messages(backend, requests)))
            window = time.perf_counter() - started
            started = time.perf_counter()
            result = run(
                bench,
                backend,
                "openai:m",
                Path(tmp) / "run",
                data_dir=data,
                mode="plain",
                settings=GenerationSettings(max_new_tokens=8),
                limit=args.requests,
                progress=False,
            )
            ours = time.perf_counter() - started
        assert result.n == len(samples) and result.request_errors == 0
    print(f"{len(samples)} requests, concurrency {args.concurrency}, latencies summing to {expected:.1f} s")
    print(f"baseline: a plain sliding window       {window:6.2f} s")
    print(f"sifeval runner (scored, journaled)     {ours:6.2f} s   {ours / window:.2f}x the baseline (target <= 1.1x)")


def _messages(backend, requests):  # type: ignore[no-untyped-def]
    from sifmodel.backends import prompts_for

    return [prompt.openai_messages() for prompt in prompts_for(requests, None)]


if __name__ == "__main__":
    main()
