"""The zoom agent against a plain sliding window over the same number of turns, on a loopback
server whose latencies vary as generation lengths do (lognormal, median 0.3 s, sigma 0.8).

Each sample takes three turns: the model zooms twice, then answers. A request's latency is
seeded by its sample's question and its turn number, so both sides meet the same latencies.

- baseline: a thread pool keeping ``concurrency`` requests in flight over all samples x turns,
  every request independent (no turn waits for the one before it: a lower bound);
- ours: ``sifeval.runner.run --agent zoom`` on a CV-Bench mirror through the ``openai:`` backend:
  each sample's next turn sent when its last is answered, its crops cut and sent back, every
  turn journaled, every sample scored.

The target is at most 1.1x the baseline (issue 22).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from loopback_server import LatencyServer

from sifdata.llm import ChatClient
from sifeval import get_benchmark
from sifeval.agents import DEEPEYES
from sifeval.cvbench import build_mirror
from sifeval.runner import run
from sifmodel.backends import GenerationSettings, load, prompts_for

TURNS = 3
ZOOM = (
    "<think>closer</think>\n<tool_call>\n"
    '{"name": "image_zoom_in_tool", "arguments": {"bbox_2d": [0, 0, 40, 40]}}\n</tool_call>'
)


def _turn(request: dict[str, Any]) -> int:
    return sum(1 for message in request["messages"] if message["role"] == "assistant")


def _question(request: dict[str, Any]) -> str:
    first = next(message for message in request["messages"] if message["role"] == "user")
    return " ".join(part.get("text", "") for part in first["content"] if part["type"] == "text")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--median", type=float, default=0.3)
    parser.add_argument("--sigma", type=float, default=0.8)
    args = parser.parse_args()

    def reply(request: dict[str, Any]) -> str:
        return ZOOM if _turn(request) < TURNS - 1 else "<think>seen</think><answer>A</answer>"

    def key(request: dict[str, Any]) -> str:
        return json.dumps([_question(request), _turn(request)])

    with tempfile.TemporaryDirectory() as tmp:
        data = build_mirror(Path(tmp) / "cvbench", per_task=args.samples // 4)
        bench = get_benchmark("cvbench")
        samples = bench.load(data)[: args.samples]
        settings = GenerationSettings(max_new_tokens=8)
        with LatencyServer(args.median, args.sigma, reply_for=reply, latency_key=key) as server:
            backend = load(f"openai:m@{server.base_url}?concurrency={args.concurrency}")
            first = [bench.request(s, "plain", settings) for s in samples]
            first = [dataclasses.replace(r, question=r.question + DEEPEYES.instruction) for r in first]
            base = [prompt.openai_messages() for prompt in prompts_for(first, None)]
            # The baseline's k-th turn of a sample: its first turn and k replies (text only), so
            # that it meets the latency the agent's k-th turn meets.
            turns = [
                messages + [{"role": "assistant", "content": "x"}, {"role": "user", "content": "y"}] * k
                for messages in base
                for k in range(TURNS)
            ]
            expected = sum(server.latency({"messages": m}) for m in turns)
            client = ChatClient("m", server.base_url)
            started = time.perf_counter()
            with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
                list(pool.map(lambda m: client.complete(m, max_tokens=8), turns))
            window = time.perf_counter() - started
            started = time.perf_counter()
            result = run(
                bench, backend, "openai:m", Path(tmp) / "run", data_dir=data, mode="plain",
                settings=settings, limit=args.samples, progress=False, agent=DEEPEYES, cache=None,
            )  # fmt: skip
            ours = time.perf_counter() - started
        assert result.n == len(samples) and result.request_errors == 0
        assert result.agent["turns_mean"] == TURNS, result.agent
    requests = len(samples) * TURNS
    print(f"{len(samples)} samples x {TURNS} turns = {requests} requests, concurrency {args.concurrency}")
    print(f"latencies summing to {expected:.1f} s (at best {expected / args.concurrency:.2f} s with this concurrency)")
    print(f"baseline: a plain sliding window over every turn   {window:6.2f} s")
    print(f"sifeval run --agent zoom (crops, journal, scores)  {ours:6.2f} s   {ours / window:.2f}x the baseline")
    print("(target <= 1.1x)")


if __name__ == "__main__":
    main()
