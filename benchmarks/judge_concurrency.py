"""The accuracy reward's judge on one GRPO batch: 16 prompts x 8 completions against an
OpenAI-compatible judge server on loopback that answers after 200 ms.

Baseline (same run): the original's way, one judge call after another. Target: >= 20x faster
with the default concurrency. Both are timed after one warm-up batch has opened their
connections, as in training, where the judge client lives for the whole run.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from sifmodel.judge import JudgeItem, LLMJudge
from sifmodel.rewards import SIFRewards


class JudgeServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # socketserver's default of 5 drops bursts of new connections


class SlowJudge(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    delay = 0.2

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        time.sleep(self.delay)
        body = json.dumps(
            {
                "id": "j",
                "object": "chat.completion",
                "created": 0,
                "model": "judge",
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": '{"score": 0.5}'}, "finish_reason": "stop"}
                ],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def batch(prompts: int, generations: int, tag: str) -> dict[str, list[str]]:
    completions, answers, questions, ids = [], [], [], []
    for p in range(prompts):
        for g in range(generations):  # free-form answers, all different: no rule, no cache hit
            completions.append(f"<think><area>[]</area></think><answer>a {tag} object number {p}-{g}</answer>")
            answers.append(f"the thing in prompt {p}")
            questions.append(f"What is in picture {p}?")
            ids.append(f"{tag}-{p}")
    return {"completions": completions, "answer": answers, "question": questions, "sample_id": ids}


def serve(port_queue: multiprocessing.Queue, delay: float) -> None:
    """The judge server, in its own process as a real one would be."""
    SlowJudge.delay = delay
    server = JudgeServer(("127.0.0.1", 0), SlowJudge)
    port_queue.put(server.server_address[1])
    server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--generations", type=int, default=8)
    parser.add_argument("--delay", type=float, default=0.2, help="judge latency in seconds")
    args = parser.parse_args()
    context = multiprocessing.get_context("spawn")
    ports: multiprocessing.Queue = context.Queue()
    process = context.Process(target=serve, args=(ports, args.delay), daemon=True)
    process.start()
    url = f"http://127.0.0.1:{ports.get(timeout=60)}/v1"
    n = args.prompts * args.generations
    try:
        sequential = LLMJudge("judge", url, "unused", concurrency=1)
        sequential.score_many([JudgeItem("warm-up", "a", "b")])
        start = time.perf_counter()
        for item in (
            JudgeItem(q, a, f"pred {i}")
            for i, (q, a) in enumerate(
                zip(*[batch(args.prompts, args.generations, "seq")[k] for k in ("question", "answer")], strict=False)
            )
        ):
            sequential.score_many([item])  # the original: one call, wait, next call
        baseline = time.perf_counter() - start

        rewards = SIFRewards(LLMJudge("judge", url, "unused"))
        rewards.accuracy(**batch(1, rewards.judge.concurrency, "warm-up"))
        columns = batch(args.prompts, args.generations, "concurrent")
        start = time.perf_counter()
        scores = rewards.accuracy(**columns)
        ours = time.perf_counter() - start
        assert len(scores) == n and all(s is not None for s in scores), rewards.stats
    finally:
        process.terminate()
    print(f"{n} judgements, judge latency {args.delay * 1000:.0f} ms")
    print(f"baseline, one call after another: {baseline:6.2f} s")
    print(f"accuracy_reward (concurrency {rewards.judge.concurrency}): {ours:6.2f} s  ({baseline / ours:.1f}x faster)")
    print(f"target >= 20x: {'met' if baseline / ours >= 20 else 'NOT met'}")


if __name__ == "__main__":
    main()
