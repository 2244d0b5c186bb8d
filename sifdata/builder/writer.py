"""Forward inference: a writer narrates a planned chain from the whole image to the answer.

Two writers share one small interface (``write(request, feedback) -> text``):

- :class:`OfflineTemplateWriter`: deterministic templates, no API; records say so.
- :class:`OpenAIWriter`: any OpenAI-compatible chat endpoint, given the question, the
  ground-truth answer and, per step, the RGB image with the focus box drawn in green.

Whatever a writer returns goes through :func:`check_written_chain` (strict grammar, the
planned boxes in order with the planned depths, an answer that agrees with the ground
truth); :func:`write_checked` retries with the reason fed back and reports a rejection with
its reason when the attempts run out. Nothing is dropped silently.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from PIL import Image

from sifdata.answers import answers_agree
from sifdata.builder.expand import PlannedStep
from sifdata.chain import ChainError, format_area, parse_chain
from sifdata.chain_types import Box, Chain
from sifdata.files import DiskCache
from sifdata.images import draw_boxes, image_data_url
from sifdata.llm import ChatClient, ChatError, RetryPolicy

DEPTH_TOLERANCE = 0.002  # 3-decimal rounding plus 16-bit quantization, with room to spare
BOX_TOLERANCE = 0.0015


@dataclass(frozen=True)
class PlannedFocus:
    """A planned step with the mean depth of each of its boxes."""

    kind: str
    boxes: list[Box]
    depths: list[float]


@dataclass(frozen=True)
class WriteRequest:
    record_id: str
    question: str
    answer: str
    plan: list[PlannedFocus]
    image: Image.Image | None = field(default=None, compare=False, repr=False)
    seed: int = 0


class WriterError(RuntimeError):
    """A writer call failed. ``fatal`` errors (bad key, unknown model) stop the whole build;
    ``transient`` ones (the endpoint down or overloaded through every retry) leave the record
    pending for the next run; the others reject the record with the reason."""

    def __init__(self, reason: str, *, fatal: bool = False, transient: bool = False) -> None:
        self.reason = reason
        self.fatal = fatal
        self.transient = transient
        super().__init__(reason)


class Writer(Protocol):
    kind: str  # provenance writer_kind
    model: str | None

    def write(self, request: WriteRequest, feedback: Sequence[tuple[str, str]] = ()) -> str:
        """The chain text; ``feedback`` holds (previous output, why it was rejected) pairs."""
        ...


def attach_depths(plan: Sequence[PlannedStep], box_mean) -> list[PlannedFocus]:  # type: ignore[no-untyped-def]
    """Give every planned box its mean depth (3 decimals) from ``box_mean(box)``."""
    return [PlannedFocus(step.kind, list(step.boxes), [round(box_mean(box), 3) for box in step.boxes]) for step in plan]


# ----------------------------------------------------------------------------- checking


class ChainMismatch(ValueError):
    pass


def extract_fenced(text: str) -> str:
    """The content of the first triple-backtick block, or the text itself if there is none."""
    match = re.search(r"```[a-zA-Z]*\s*\n?(.*?)```", text, re.DOTALL)
    return match.group(1).strip() if match else text.strip()


def check_written_chain(text: str, request: WriteRequest) -> Chain:
    """The parsed chain, or :class:`ChainMismatch` saying exactly what is wrong."""
    try:
        chain = parse_chain(text, strict=True)
    except ChainError as error:
        raise ChainMismatch(f"grammar: {error}") from None
    focus = chain.focus_steps
    if len(focus) != len(request.plan):
        raise ChainMismatch(f"expected {len(request.plan)} areas, found {len(focus)}")
    for number, (written, planned) in enumerate(zip(focus, request.plan, strict=True), 1):
        if len(written.boxes) != len(planned.boxes):
            raise ChainMismatch(f"area {number}: expected {len(planned.boxes)} boxes, found {len(written.boxes)}")
        for box, want in zip(written.boxes, planned.boxes, strict=True):
            if any(abs(a - b) > BOX_TOLERANCE for a, b in zip(box, want, strict=True)):
                raise ChainMismatch(f"area {number}: box {list(box)} is not the planned {list(want)}")
        for depth, want_depth in zip(written.depths, planned.depths, strict=True):
            if depth is None or abs(depth - want_depth) > DEPTH_TOLERANCE:
                raise ChainMismatch(f"area {number}: depth {depth} is not the planned {want_depth:.3f}")
    if not answers_agree(chain.answer or "", request.answer):
        raise ChainMismatch(f"answer {chain.answer!r} does not agree with the ground truth {request.answer!r}")
    return chain


@dataclass(frozen=True)
class WriteOutcome:
    """A chain, or a reject with its reason, or (``pending``) nothing yet: the endpoint could not
    be reached, so the record is asked again on the next run."""

    record_id: str
    chain: str | None
    attempts: int
    reject_reason: str | None = None
    pending: bool = False
    # The chain as the check parsed it: the record is built from it, not parsed again.
    parsed: Chain | None = field(default=None, compare=False, repr=False)
    # Why the writer itself failed (not a check's rejection of what it wrote), typed apart from
    # the reason text so that a build can tell a failing writer from failing records.
    writer_error: str | None = None


def write_checked(writer: Writer, request: WriteRequest, max_attempts: int = 3) -> WriteOutcome:
    """Write, check, and retry with the reason fed back; a rejection carries the last reason.

    Transport failures are retried inside the writer; a :class:`WriterError` that reaches
    here rejects the record (or, if fatal, propagates to stop the build).
    """
    feedback: list[tuple[str, str]] = []
    reason = ""
    for attempt in range(1, max_attempts + 1):
        try:
            raw = writer.write(request, feedback)
        except WriterError as error:
            if error.fatal:
                raise
            if error.transient:
                return WriteOutcome(
                    request.record_id, None, attempt, error.reason, pending=True, writer_error=error.reason
                )
            return WriteOutcome(
                request.record_id, None, attempt, f"writer failed: {error.reason}", writer_error=error.reason
            )
        text = extract_fenced(raw)
        try:
            parsed = check_written_chain(text, request)
        except ChainMismatch as mismatch:
            reason = str(mismatch)
            feedback.append((raw, reason))
            continue
        return WriteOutcome(request.record_id, text, attempt, parsed=parsed)
    return WriteOutcome(request.record_id, None, max_attempts, f"after {max_attempts} attempts: {reason}")


# ----------------------------------------------------------------------------- offline


def _depth_words(depth: float) -> str:
    if depth < 0.35:
        return "close to the camera"
    if depth < 0.65:
        return "at a middle distance"
    return "far from the camera"


class OfflineTemplateWriter:
    """Deterministic template narration: no model, no network. Provenance says so."""

    kind = "offline-template"
    model: str | None = "templates-v1"

    _OPENERS = (
        "The question asks: {q} I start from the whole image (mean depth {d}) to find where to look.",
        'To answer "{q}" I first take in the whole scene, whose mean depth is {d}.',
    )
    _SELECT = (
        "I check the region at depth {d}, {where}, but it does not show what the question asks about, so I move on.",
        "This region ({where}, depth {d}) is not the right place; I correct my focus.",
    )

    def write(self, request: WriteRequest, feedback: Sequence[tuple[str, str]] = ()) -> str:
        rng = random.Random(f"{request.record_id}:{request.seed}")
        lines = ["<think>"]
        for index, step in enumerate(request.plan):
            lines.append(format_area(step.boxes, list(step.depths)))
            lines.append(f"<text>{self._narrate(step, index, request, rng)}</text>")
        lines += ["</think>", "<answer>", request.answer, "</answer>"]
        return "\n".join(lines)

    def _narrate(self, step: PlannedFocus, index: int, request: WriteRequest, rng: random.Random) -> str:
        depths = ", ".join(f"{d:.3f}" for d in step.depths)
        mean = sum(step.depths) / len(step.depths)
        many = len(step.boxes) > 1
        if step.kind == "full" and index == 0 and len(request.plan) > 1:
            return rng.choice(self._OPENERS).format(q=request.question, d=f"{mean:.3f}")
        if step.kind == "select":
            return rng.choice(self._SELECT).format(d=depths, where=_depth_words(mean))
        if step.kind == "merge":
            return (
                f"The relevant objects lie together in this region (mean depth {mean:.3f}); I keep all of them in view."
            )
        if step.kind == "expand":
            subject = "the relevant objects" if many else "the relevant object"
            return f"I narrow down to the area around {subject}, {_depth_words(mean)} (depth {depths})."
        text = f"Focusing on {'these regions' if many else 'this region'} (depth {depths})"
        if many:
            order = sorted(range(len(step.depths)), key=lambda i: step.depths[i])
            text += f", region {order[0] + 1} is the closest and region {order[-1] + 1} the farthest"
        return f"{text}, I can answer the question: {request.answer}"


# ----------------------------------------------------------------------------- OpenAI-compatible

WRITER_SYSTEM_PROMPT = """You write step-by-step visual reasoning chains for a question about an image.
You are given the question, its correct answer, and a sequence of focus steps. Each step is a list of
bounding boxes normalized per axis to [0, 1] as [x1, y1, x2, y2], each with the mean normalized depth
of the image inside it (lower = closer to the camera). The image of each step shows its boxes in green.

Write the chain in exactly this format, wrapped in triple backticks:
<think>
<area>[{"bbox_2d":[x1,y1,x2,y2],"depth":d}]</area>
<text>what you see in this region and why you move on</text>
... one <area> and one <text> per step, in the given order ...
</think>
<answer>
the answer
</answer>

Rules: copy every step's boxes and depths exactly as given (3 decimals, same order); never add, drop
or merge steps; every <text> is non-empty; a step marked as a wrong region is one you look at and
then leave; the answer must state the correct answer.

Example with 3 steps for "Which is closer, the bottle or the car?" (answer: "The bottle."):
```
<think>
<area>[{"bbox_2d":[0.000,0.000,1.000,1.000],"depth":0.583}]</area>
<text>The question compares a bottle and a car. I look at the whole image first.</text>
<area>[{"bbox_2d":[0.656,0.138,0.938,0.521],"depth":0.829}]</area>
<text>The car is in the upper right, fairly far away (depth 0.829).</text>
<area>[{"bbox_2d":[0.147,0.581,0.168,0.659],"depth":0.787}]</area>
<text>The bottle in the lower left has depth 0.787, lower than the car's, so it is closer.</text>
</think>
<answer>
The bottle.
</answer>
```"""

STEP_TEXT = (
    "Focus on the region with the normalized bounding box with normalized depth of {boxes}, "
    "as shown by the green box in the image below."
)


def writer_messages(request: WriteRequest, feedback: Sequence[tuple[str, str]] = (), max_side: int = 768) -> list[dict]:
    """The chat messages a writer model sees for ``request``."""
    labels = {"select": " (a wrong region: look, then correct your focus)"}
    intro = (
        f"Question: {request.question}\nCorrect answer: {request.answer}\n"
        f"There are {len(request.plan)} focus steps, from the whole image to the answer region."
    )
    messages: list[dict] = [{"role": "system", "content": WRITER_SYSTEM_PROMPT}, {"role": "user", "content": intro}]
    for step in request.plan:
        boxes = json.dumps(
            [
                {"bbox_2d": [round(v, 3) for v in box], "depth": d}
                for box, d in zip(step.boxes, step.depths, strict=True)
            ],
            separators=(",", ":"),
        )
        content: list[dict] = [{"type": "text", "text": STEP_TEXT.format(boxes=boxes) + labels.get(step.kind, "")}]
        if request.image is not None:
            drawn = draw_boxes(request.image, step.boxes)
            content.append({"type": "image_url", "image_url": {"url": image_data_url(drawn, max_side)}})
        messages.append({"role": "user", "content": content})
    for previous, reason in feedback:
        messages.append({"role": "assistant", "content": previous})
        messages.append(
            {"role": "user", "content": f"That chain was rejected: {reason}. Write the whole chain again, fixing this."}
        )
    return messages


def response_key(model: str, messages: list[dict]) -> str:
    """The writer cache's key: a hash of (model, messages)."""
    payload = json.dumps({"model": model, "messages": messages}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class OpenAIWriter:
    """A writer over any OpenAI-compatible chat endpoint.

    Base URL, model and key come from the arguments or from ``SIF_WRITER_BASE_URL``,
    ``SIF_WRITER_MODEL`` and ``SIF_WRITER_API_KEY`` (falling back to ``OPENAI_API_KEY``). The
    key is handed to the client and never logged or written. 429, 5xx, timeouts and
    connection errors are retried with exponential backoff (honouring ``Retry-After``);
    401/403/404 stop the build, since every other record would fail the same way.
    """

    kind = "openai-compatible"

    def __init__(
        self,
        model: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 120.0,
        retry: RetryPolicy | None = None,
        temperature: float = 0.2,
        max_tokens: int = 2048,
        cache_dir: str | Path | None = None,
        image_max_side: int = 768,
    ) -> None:
        self.model = model or os.environ.get("SIF_WRITER_MODEL")
        self.base_url = base_url or os.environ.get("SIF_WRITER_BASE_URL")
        if not self.model:
            raise WriterError("no writer model: pass --writer-model or set SIF_WRITER_MODEL", fatal=True)
        self._chat = ChatClient(
            self.model, self.base_url, api_key, key_env="SIF_WRITER_API_KEY", timeout=timeout, retry=retry
        )
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.cache = DiskCache(cache_dir) if cache_dir else None
        self.image_max_side = image_max_side

    @property
    def transport_retries(self) -> int:
        return self._chat.retries

    def write(self, request: WriteRequest, feedback: Sequence[tuple[str, str]] = ()) -> str:
        messages = writer_messages(request, feedback, self.image_max_side)
        key = response_key(self.model or "", messages) if self.cache else ""
        if self.cache and (cached := self.cache.get(key)) is not None:
            return cached
        try:
            text = self._chat.complete(messages, temperature=self.temperature, max_tokens=self.max_tokens).text
        except ChatError as error:
            reason = error.reason if error.fatal else f"record {request.record_id}: {error.reason}"
            raise WriterError(reason, fatal=error.fatal, transient=error.transient) from None
        if not text.strip():
            raise WriterError(f"record {request.record_id}: empty completion")
        if self.cache:
            self.cache.put(key, text)
        return text
