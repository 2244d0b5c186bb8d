"""Think-with-images agents: a model that zooms while it reasons, under the benchmark's own
scoring (``sifeval run --agent zoom``).

The :class:`ZoomAgent` solver asks the benchmark's own first request (its question, options and
instruction, in ``plain`` mode), with the zoom tool declared, and then runs the loop the open
zoom models were trained with: every tool call of a reply is executed (the box cropped from the
image it names, clipped to that image; a call that cannot be executed gets an error message
back, never a crash), the crops go back as images in the next user turn, until a reply calls
no tool (its text is the response the benchmark scores, read as any reply: the last
``<answer>``) or ``max_turns`` replies have been asked (the sample is then a parse failure: its
response is empty, its transcript kept).

Tool calls are read from the reply's text in Qwen's function-calling format (``<tool_call>
{"name": ..., "arguments": {...}}</tool_call>``, any number per turn) and, for servers that
return them, from the API's ``tool_calls``; both are executed, in that order.

The defaults are DeepEyes' evaluation (Zheng et al. 2025, arXiv 2505.14362; github.com/
Visual-Agent/DeepEyes at 6c5e796, Apache-2.0, ``eval/eval_vstar.py``), each an option of
:class:`ZoomSettings`, recorded with the run (two settings, two runs):

- the system prompt declaring ``image_zoom_in_tool`` in Qwen's ``<tools>`` block (L53-71, byte
  for byte, its ``"required":["bbox"]`` typo included: it is what the model was trained on,
  ``verl/workers/agent/envs/mm_process_engine/prompt.py`` L40-58), and its instruction after
  the question (``USER_PROMPT_V2``, L72);
- the follow-up user turn: ``<tool_response>``, the crop(s), the instruction again,
  ``</tool_response>`` (L214-230);
- the crop: the box in pixels of the image as sent, cropped from it, then resized to Qwen's
  28-pixel grid with at least 4x28x28 pixels (``smart_resize``, bicubic; L104-119, L201-204);
- a reply holding ``<answer>...</answer>`` ends the loop (L176-177); 11 replies at most (L179).

Where this agent deliberately differs, for the benchmark's sake: the first turn is the
benchmark's own question (its options and instruction, the official protocol's) followed by
DeepEyes' instruction, not DeepEyes' ``Question: ...\nOptions: ...`` layout (L74-76); every
tool call of a reply is executed (the evaluation runs the first, L193; training the last,
``visual_toolbox_v2.py`` L43-44); a call that cannot be executed (malformed JSON, a box with no
area inside the image) is answered with ``Error: ...`` in the tool response, as DeepEyes'
training environment answers it (``visual_toolbox_v2.py`` L69-72, L114), where its evaluation
ends the sample (L260-262); boxes are clipped to the image (training, L143-146; the evaluation
does not clip); the answer read is the last ``<answer>`` (the evaluation takes the first,
L265-268; training's reward the last); a reply without a tool call and without an answer is the
last turn, scored as it stands (the evaluation asks the same messages again until its limit).
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

from PIL import Image

from sifeval.adapters import Benchmark
from sifeval.solvers import Generate, Solved, Solver, Steps, failure, usage_of
from sifeval.transcripts import AgentTurn, ToolStep, Transcript, TranscriptStore, image_key
from sifeval.types import Sample
from sifmodel.backends import GenerationRequest, GenerationResponse, GenerationSettings
from sifmodel.prompts import PromptMode
from sifmodel.turns import ToolCall, Turn

ZOOM_TOOL = "image_zoom_in_tool"
BoxFrame = Literal["pixel", "normalized-1000", "normalized"]
BOX_FRAMES: tuple[BoxFrame, ...] = ("pixel", "normalized-1000", "normalized")
ToolFormat = Literal["qwen", "api"]
TOOL_FORMATS: tuple[ToolFormat, ...] = ("qwen", "api")

ZOOM_FUNCTION: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": ZOOM_TOOL,
        "description": (
            "Zoom in on a specific region of an image by cropping it based on a bounding box (bbox) and an "
            "optional object label."
        ),
        "parameters": {
            "type": "object",
            "properties": {
                "bbox_2d": {
                    "type": "array",
                    "items": {"type": "number"},
                    "minItems": 4,
                    "maxItems": 4,
                    "description": (
                        "The bounding box of the region to zoom in, as [x1, y1, x2, y2], where (x1, y1) is the "
                        "top-left corner and (x2, y2) is the bottom-right corner."
                    ),
                },
                "label": {
                    "type": "string",
                    "description": "The name or label of the object in the specified bounding box (optional).",
                },
            },
            "required": ["bbox_2d"],
        },
    },
}


# DeepEyes eval/eval_vstar.py L53-71 (see the module docstring), as sent: compact JSON, two
# trailing spaces after "**Example**:", "<tool_call>" and the example call.
_DECLARED = {
    **ZOOM_FUNCTION,
    "function": {
        **ZOOM_FUNCTION["function"],
        "parameters": {**ZOOM_FUNCTION["function"]["parameters"], "required": ["bbox"]},
    },
}
DEEPEYES_SYSTEM = (
    "You are a helpful assistant.\n\n# Tools\nYou may call one or more functions to assist with the user query.\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
    + json.dumps(_DECLARED, separators=(",", ":"))
    + "\n</tools>\n\n# How to call a tool\nReturn a json object with function name and arguments within "
    "<tool_call></tool_call> XML tags:\n<tool_call>\n"
    '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>\n\n'
    "**Example**:  \n<tool_call>  \n"
    '{"name": "image_zoom_in_tool", "arguments": {"bbox_2d": [10, 20, 100, 200], "label": "the apple on the desk"}}  '
    "\n</tool_call>"
)


@dataclass(frozen=True)
class ZoomSettings:
    """How the zoom loop runs. ``max_turns``: replies asked at most. ``box_frame``: how a call's
    ``bbox_2d`` reads (``pixel``: pixels of the image as sent, Qwen2.5-VL's absolute coordinates;
    ``normalized-1000``: Qwen2-VL's 0-1000 grid; ``normalized``: 0-1). ``resize_crops``: each
    crop resized to Qwen's grid as DeepEyes does (:func:`qwen_grid_size`), else sent as cut.
    ``system``/``instruction``/``followup``: the system prompt, the text after the question, the
    text after the crops in the follow-up turn."""

    max_turns: int = 11
    tool_format: ToolFormat = "qwen"
    box_frame: BoxFrame = "pixel"
    resize_crops: bool = True
    system: str = ""
    instruction: str = ""
    followup: str = ""

    def __post_init__(self) -> None:
        if self.max_turns < 1:
            raise ValueError(f"max_turns must be at least 1, not {self.max_turns}")
        if self.tool_format not in TOOL_FORMATS:
            raise ValueError(f"unknown tool format {self.tool_format!r}; choose one of {', '.join(TOOL_FORMATS)}")
        if self.box_frame not in BOX_FRAMES:
            raise ValueError(f"unknown box frame {self.box_frame!r}; choose one of {', '.join(BOX_FRAMES)}")

    def to_json(self) -> dict[str, Any]:
        return {"agent": "zoom", **asdict(self)}


# DeepEyes' prompts, as its evaluation sends them (see the module docstring).
DEEPEYES_INSTRUCTION = (
    "\nThink first, call **image_zoom_in_tool** if needed, then answer. Format strictly as:  <think>...</think>  "
    "<tool_call>...</tool_call> (if tools needed)  <answer>...</answer> "
)
DEEPEYES = ZoomSettings(
    system=DEEPEYES_SYSTEM,
    instruction=DEEPEYES_INSTRUCTION,
    followup=DEEPEYES_INSTRUCTION,
)

_ANSWER = re.compile(r"<answer>.*?</answer>", re.DOTALL | re.IGNORECASE)
_TOOL_CALL = re.compile(r"<tool_call>(.*?)(</tool_call>|$)", re.DOTALL)


def text_tool_calls(reply: str) -> list[ToolCall]:
    """The tool calls written in ``reply`` (Qwen's format), in order; a call whose JSON cannot be
    read is returned with its error (it is answered with that error). A last call left open is
    read all the same: servers that stop generation at ``</tool_call>`` return the reply without
    it (DeepEyes' published transcripts end so; its evaluation reads up to the closing tag or the
    end, eval_vstar.py L191-194)."""
    calls = []
    for match in _TOOL_CALL.finditer(reply):
        raw, closed = match.group(1).strip(), bool(match.group(2))
        try:
            payload = json.loads(raw)
        except json.JSONDecodeError as error:
            unclosed = "" if closed else ", and the <tool_call> is not closed"
            calls.append(
                ToolCall("", None, raw, error=f"the tool call is not JSON ({error.msg} at char {error.pos}){unclosed}")
            )
            continue
        if not isinstance(payload, dict):
            calls.append(
                ToolCall("", None, raw, error=f"the tool call is a JSON {type(payload).__name__}, not an object")
            )
            continue
        name = str(payload.get("name", ""))
        arguments = payload.get("arguments")
        if isinstance(arguments, str):  # some models write the arguments as a JSON string
            with contextlib.suppress(json.JSONDecodeError):
                arguments = json.loads(arguments)
        if not isinstance(arguments, dict):
            calls.append(ToolCall(name, None, raw, error='the tool call has no "arguments" object'))
            continue
        calls.append(ToolCall(name, arguments, raw))
    return calls


def pixel_box(values: Any, width: int, height: int, frame: BoxFrame) -> tuple[float, float, float, float]:
    """``bbox_2d`` as pixels of a ``width`` x ``height`` image; ValueError saying what is wrong."""
    if not isinstance(values, list | tuple) or len(values) != 4:
        raise ValueError(f"bbox_2d must be [x1, y1, x2, y2], not {json.dumps(values)[:80]}")
    numbers = []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ValueError(f"bbox_2d must hold four numbers, not {json.dumps(values)[:80]}")
        numbers.append(float(value))
    x1, y1, x2, y2 = numbers
    scale_x, scale_y = {
        "pixel": (1.0, 1.0),
        "normalized-1000": (width / 1000, height / 1000),
        "normalized": (width, height),
    }[frame]
    return x1 * scale_x, y1 * scale_y, x2 * scale_x, y2 * scale_y


def crop_box(box: tuple[float, float, float, float], width: int, height: int) -> tuple[int, int, int, int]:
    """The integer pixel box a crop takes: clipped to the image, outward to whole pixels;
    ValueError for a box with no area inside the image."""
    x1, y1, x2, y2 = box
    if x2 <= x1 or y2 <= y1:
        raise ValueError(f"the box {_shown(box)} is empty: x2 must exceed x1 and y2 exceed y1")
    left, top = max(0.0, x1), max(0.0, y1)
    right, bottom = min(float(width), x2), min(float(height), y2)
    if right <= left or bottom <= top:
        raise ValueError(f"the box {_shown(box)} lies outside the {width}x{height} image")
    return math.floor(left), math.floor(top), math.ceil(right), math.ceil(bottom)


QWEN_FACTOR = 28
QWEN_MIN_PIXELS = 4 * 28 * 28
QWEN_MAX_PIXELS = 16384 * 28 * 28


def qwen_grid_size(width: int, height: int) -> tuple[int, int]:
    """The size DeepEyes resizes a crop to (``smart_resize``, eval_vstar.py L104-119): each side
    rounded to a multiple of 28 (at least 28), scaled down to at most 16384x28x28 pixels or up
    to at least 4x28x28, keeping the aspect ratio."""

    def nearest(value: float) -> int:
        return round(value / QWEN_FACTOR) * QWEN_FACTOR

    new_width, new_height = max(QWEN_FACTOR, nearest(width)), max(QWEN_FACTOR, nearest(height))
    if new_width * new_height > QWEN_MAX_PIXELS:
        beta = math.sqrt(width * height / QWEN_MAX_PIXELS)
        new_width = math.floor(width / beta / QWEN_FACTOR) * QWEN_FACTOR
        new_height = math.floor(height / beta / QWEN_FACTOR) * QWEN_FACTOR
    elif new_width * new_height < QWEN_MIN_PIXELS:
        beta = math.sqrt(QWEN_MIN_PIXELS / (width * height))
        new_width = math.ceil(width * beta / QWEN_FACTOR) * QWEN_FACTOR
        new_height = math.ceil(height * beta / QWEN_FACTOR) * QWEN_FACTOR
    return new_width, new_height


def _shown(box: tuple[float, float, float, float]) -> str:
    return "[" + ", ".join(f"{value:g}" for value in box) + "]"


def execute(call: ToolCall, images: list[Image.Image], settings: ZoomSettings) -> tuple[ToolStep, Image.Image | None]:
    """Run one zoom call on ``images`` (those a call may name: the sample's, index 0, then each
    crop sent back so far): the step for the transcript and the crop (None with the error the
    model is sent instead)."""
    if call.error is not None:
        return ToolStep(call, error=call.error), None
    if call.name != ZOOM_TOOL:
        return ToolStep(call, error=f"unknown tool {call.name!r}: the only tool is {ZOOM_TOOL}"), None
    arguments = call.arguments or {}
    index = arguments.get("image_index", 0)
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(images):
        count = len(images)
        return ToolStep(call, error=f"image_index must name one of the {count} image(s) (0 to {count - 1})"), None
    image = images[index]
    size = (image.width, image.height)
    try:
        box = crop_box(pixel_box(arguments.get("bbox_2d"), *size, settings.box_frame), *size)
    except ValueError as error:
        return ToolStep(call, image=index, size=size, error=str(error)), None
    crop = image.crop(box)
    if settings.resize_crops:
        crop = crop.resize(qwen_grid_size(crop.width, crop.height), resample=Image.Resampling.BICUBIC)
    return ToolStep(call, image=index, box=box, crop=image_key(crop), size=size), crop


class ZoomAgent(Solver):
    """The zoom loop over a benchmark's own first request (see the module docstring).
    ``build`` is the benchmark's request builder; ``store`` (the run folder's transcripts)
    records each turn as it is answered and replays recorded turns on resume."""

    name = "zoom"
    prompt_mode: PromptMode | None = "plain"
    cacheable = False
    turn_cacheable = True  # each turn is cached instead, keyed by everything it sends

    def __init__(
        self,
        build: Callable[[Sample, PromptMode, GenerationSettings], GenerationRequest],
        settings: ZoomSettings = DEEPEYES,
        store: TranscriptStore | None = None,
    ) -> None:
        self.build = build
        self.settings = settings
        self.store = store

    def _first(self, sample: Sample, settings: GenerationSettings) -> GenerationRequest:
        request = self.build(sample, "plain", settings)
        system = self.settings.system or None
        if request.system and system:
            system = f"{request.system}\n\n{system}"
        tools = (ZOOM_FUNCTION,) if self.settings.tool_format == "api" else ()
        return replace(
            request, question=request.question + self.settings.instruction, system=system or request.system, tools=tools
        )

    def _followup(
        self, turn: AgentTurn, crops: list[Image.Image | None], api_calls: tuple[ToolCall, ...]
    ) -> list[Turn]:
        """The turns that answer ``turn``'s calls: for API calls a ``tool`` turn each (text: the
        crop follows, or the error), then one user turn with every result in order."""
        turns: list[Turn] = []
        for step in turn.steps:
            if step.call.id is not None and step.call in api_calls:
                said = step.error or "The zoomed-in image is in the next message."
                turns.append(Turn("tool", (("text", said),), tool_call_id=step.call.id))
        parts: list[tuple[str, Any]] = [("text", "<tool_response>")]
        for step, crop in zip(turn.steps, crops, strict=True):
            parts.append(("image", crop) if crop is not None else ("text", f"Error: {step.error}"))
        parts += [("text", self.settings.followup), ("text", "</tool_response>")]
        turns.append(Turn("user", tuple(parts)))
        return turns

    def steps(self, sample: Sample, mode: PromptMode, settings: GenerationSettings) -> Steps:
        request = self._first(sample, settings)
        observations = [request.images[0]] if request.images else []
        recorded = self.store.recorded(sample.id) if self.store is not None else []
        turns: list[AgentTurn] = []
        history: list[Turn] = []
        usage: dict[str, Any] = {"prompt_tokens": 0, "completion_tokens": 0}
        for index in range(self.settings.max_turns):
            if index < len(recorded):
                reply, api_calls, turn_usage = recorded[index].reply, _api_calls(recorded[index]), recorded[index].usage
            else:
                response = _as_response((yield replace(request, history=tuple(history))))
                if not response.ok:
                    return replace(failure(response), transcript=Transcript(tuple(turns)))
                reply, api_calls, turn_usage = response.text or "", response.tool_calls, usage_of(response)
            calls = text_tool_calls(reply) + list(api_calls)
            executed = [execute(call, observations, self.settings) for call in calls]
            turn = AgentTurn(reply, tuple(step for step, _ in executed), turn_usage)
            if index < len(recorded):
                mismatch = _replay_mismatch(recorded[index], turn)
                if mismatch is not None:
                    assert self.store is not None
                    self.store.discard(sample.id, mismatch)
                    return (yield from self.steps(sample, mode, settings))
                if index == len(recorded) - 1:
                    self.store.continued[sample.id] = len(recorded)  # type: ignore[union-attr]
            elif self.store is not None:
                for _, crop in executed:
                    if crop is not None:
                        self.store.save_crop(crop)
                self.store.append(sample.id, index, turn)
            turns.append(turn)
            for key in ("prompt_tokens", "completion_tokens"):
                usage[key] += turn_usage.get(key) or 0
            if not calls or _ANSWER.search(reply):
                return _solved(reply, usage, Transcript(tuple(turns), "answer"))
            crops = [crop for _, crop in executed]
            observations.extend(crop for crop in crops if crop is not None)
            history.append(Turn("assistant", (("text", reply),), tool_calls=tuple(api_calls)))
            history.extend(self._followup(turn, crops, tuple(api_calls)))
        # Out of turns while still calling tools: no answer (a parse failure), the transcript kept.
        return _solved("", usage, Transcript(tuple(turns), "max-turns"))


def _solved(text: str, usage: dict[str, Any], transcript: Transcript) -> Solved:
    counts = {"turns": len(transcript.turns), "tool_calls": transcript.tool_calls}
    return Solved(text, usage={**usage, **counts}, transcript=transcript)


def _api_calls(turn: AgentTurn) -> tuple[ToolCall, ...]:
    return tuple(step.call for step in turn.steps if step.call.id is not None)


def _replay_mismatch(recorded: AgentTurn, replayed: AgentTurn) -> str | None:
    """Why a recorded turn cannot be replayed (its calls now give other crops), or None."""
    before = [(step.box, step.crop, step.error) for step in recorded.steps]
    now = [(step.box, step.crop, step.error) for step in replayed.steps]
    if before != now:
        return "its recorded tool calls give other crops now (the image changed)"
    return None


def _as_response(answer: Any) -> GenerationResponse:
    if not isinstance(answer, GenerationResponse):
        raise TypeError(f"a generation step was answered with {type(answer).__name__}")
    return answer


def agent_solver(bench: Benchmark, settings: ZoomSettings, store: TranscriptStore | None, backend: Any) -> ZoomAgent:
    """The zoom agent over ``bench``'s first request; ValueError, saying why, for a protocol
    that does not generate a reply (a likelihood or two-pass protocol) or API tool calls asked
    of a backend that cannot return them."""
    if not isinstance(bench.solver(), Generate):
        generating = [
            p for p in bench.protocols if isinstance(type(bench).from_options(p, bench.options()).solver(), Generate)
        ]
        hint = f": use --protocol {generating[0]}" if generating else ""
        raise ValueError(
            f"--agent zoom asks the benchmark's question and lets the model zoom before it replies; the {bench.name} "
            f"{bench.protocol} protocol does not ask for one generated reply{hint}"
        )
    if settings.tool_format == "api" and not getattr(backend, "calls_tools", False):
        raise ValueError(
            "--tool-format api reads the tool calls an OpenAI-compatible server returns; the "
            f"{getattr(backend, 'name', '?')} backend returns text: use --tool-format qwen (the tool declared in the "
            "system prompt, its calls read from the reply)"
        )
    return ZoomAgent(bench.request, settings, store)
