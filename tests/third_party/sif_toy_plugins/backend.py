"""An inference backend from outside sifthinker: ``echo:REPLY`` answers every request with
REPLY (``{question}`` in it is replaced by the request's question)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from sifmodel.backends import DepthProvider, GenerationRequest, GenerationResponse


class EchoBackend:
    name = "echo"
    spec_target = "REPLY"
    max_in_flight = 4

    def __init__(self, reply: str, *, depth: DepthProvider | None = None) -> None:
        self.reply = reply
        self.calls = 0

    @classmethod
    def from_spec(cls, target: str, options: dict[str, Any], depth: DepthProvider | None) -> EchoBackend:
        return cls(target, depth=depth, **options)

    def identity(self) -> dict[str, Any]:
        return {"kind": "echo", "fingerprint": hashlib.sha256(self.reply.encode()).hexdigest()}

    def _answer(self, request: GenerationRequest) -> GenerationResponse:
        self.calls += 1
        return GenerationResponse(request.id, self.reply.replace("{question}", request.question))

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResponse]:
        return [self._answer(request) for request in requests]

    def stream(self, requests: Iterable[GenerationRequest]) -> Iterator[GenerationResponse]:
        for request in requests:  # a growing feed is read until it is closed
            yield self._answer(request)
