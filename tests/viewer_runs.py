"""Evaluation runs for the viewer's tests: VisCoT on its mirror, answered by the scripted chat
server (a real OpenAI-compatible server on loopback), with one sample's reply a known chain."""

from __future__ import annotations

import json
from pathlib import Path

from chat_server import ScriptedChatServer
from typer.testing import CliRunner

from sifeval import get_benchmark
from sifeval.cli import app

# Two focus steps: one box, then two; then the answer. Drawn: 3 focus boxes.
KNOWN_CHAIN = (
    '<think><area>[{"bbox_2d":[0.100,0.100,0.800,0.800],"depth":0.400}]</area><text>look</text>'
    '<area>[{"bbox_2d":[0.200,0.200,0.400,0.400],"depth":0.300},'
    '{"bbox_2d":[0.500,0.500,0.700,0.700],"depth":0.600}]</area><text>closer</text></think>'
    "<answer>{answer}</answer>"
)
# A reply that tries to be HTML: the viewer must show it as text.
HOSTILE = "<img src=x onerror=\"document.body.setAttribute('data-pwned','1')\"><answer>no idea</answer>"
LIMIT = 4


def viscot_run(mirror: Path, out: Path, *, right: bool, hostile: bool = False, error: bool = False) -> Path:
    """A 4-sample VisCoT run: sample 0 replies KNOWN_CHAIN (its target if ``right``, else a wrong
    answer); sample 1 the hostile reply (if ``hostile``); sample 2 a request error (if ``error``);
    the rest the server's default chain."""
    samples = get_benchmark("viscot").load(mirror)[:LIMIT]
    keys = [json.dumps(sample.question)[1:-1] for sample in samples]  # as the request carries it
    with ScriptedChatServer() as server:
        answer = samples[0].target if right else "a purple elephant"
        server.script(keys[0], ["text:" + KNOWN_CHAIN.replace("{answer}", answer)])
        if hostile:
            server.script(keys[1], ["text:" + HOSTILE])
        if error:
            server.script(keys[2], ["400"])
        result = CliRunner().invoke(
            app,
            [
                "run",
                "--no-progress",
                "--bench",
                "viscot",
                "--model",
                # one request at a time: samples 0 and 2 ask the same question, and the server's
                # scripts are taken in the order requests arrive
                f"openai:scripted-{'right' if right else 'wrong'}@{server.base_url}?concurrency=1",
                "--data",
                str(mirror),
                "--out",
                str(out),
                "--limit",
                str(LIMIT),
                "--judge",
                "match",
                "--no-cache",
                "--mode",
                "sif-rgb",  # RGB only: no depth model needed to ask
            ],
        )
    assert (out / "results.json").is_file(), result.output
    return out
