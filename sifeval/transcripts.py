"""An agent's transcript in the run folder: every turn, every tool call with its box, every crop.

- ``crops/<key>.png``: each crop once, named by its pixels' digest (:func:`image_key`), so the
  same crop asked for by two samples or two turns is one file;
- ``turns.jsonl``: a line per turn the moment the model answers it (the reply, its API tool
  calls, the crops its calls produced), so that ``--resume`` continues a sample mid-transcript;
- the sample's line in ``samples.jsonl`` holds its whole transcript (:meth:`Transcript.to_json`).

A resumed sample's recorded turns are replayed, not asked again: every tool call is executed
again on the sample's image and must give the crop that was recorded. Where it does not (the
image changed), or a line of the sample is damaged, the sample is asked again whole and the run
says which and why (:class:`TranscriptStore` keeps the tally).
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from sifdata.files import atomic_write
from sifdata.journal import Journal
from sifmodel.turns import ToolCall, remember_png

CROPS = "crops"
TURNS = "turns.jsonl"


def image_key(image: Image.Image) -> str:
    """A digest of an image's pixels (mode, size and bytes): the same crop, the same key."""
    digest = hashlib.sha256(f"{image.mode}:{image.width}x{image.height}:".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()[:24]


@dataclass(frozen=True)
class ToolStep:
    """A tool call and what it did: the image it named (0 the sample's image, k the k-th crop
    returned so far) and its size, the box in that image's pixels after clipping, the crop's key,
    or the error message the model was sent instead."""

    call: ToolCall
    image: int | None = None
    box: tuple[int, int, int, int] | None = None
    crop: str | None = None
    error: str | None = None
    size: tuple[int, int] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            **self.call.to_json(),
            "image": self.image,
            "image_size": self.size,
            "box": self.box,
            "crop": self.crop,
            "tool_error": self.error,
        }

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> ToolStep:
        box, size = value.get("box"), value.get("image_size")
        return cls(
            ToolCall.from_json(value),
            value.get("image"),
            tuple(int(v) for v in box) if box else None,  # type: ignore[arg-type]
            value.get("crop"),
            value.get("tool_error"),
            (int(size[0]), int(size[1])) if size else None,
        )


@dataclass(frozen=True)
class AgentTurn:
    """One model turn: its reply and the tool calls it made (in the text or as API calls)."""

    reply: str
    steps: tuple[ToolStep, ...] = ()
    usage: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"reply": self.reply, "tool_calls": [step.to_json() for step in self.steps], "usage": self.usage}

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> AgentTurn:
        steps = tuple(ToolStep.from_json(step) for step in value.get("tool_calls") or [])
        return cls(str(value.get("reply", "")), steps, dict(value.get("usage") or {}))


@dataclass(frozen=True)
class Transcript:
    """A sample's turns; ``stopped`` is ``answer`` (a turn without tool calls ended it) or
    ``max-turns`` (it still called tools when the turns ran out: a parse failure)."""

    turns: tuple[AgentTurn, ...]
    stopped: str | None = None
    # The share of the benchmark's ground-truth box area inside the last zoom on the sample's own
    # image (None: no such zoom, or no ground truth); set when the sample is scored.
    truth_coverage: float | None = None

    @property
    def tool_calls(self) -> int:
        return sum(len(turn.steps) for turn in self.turns)

    @property
    def zoom_boxes(self) -> list[tuple[int, tuple[int, int, int, int]]]:
        """Every executed call's (image, box), in order."""
        return [
            (step.image, step.box)
            for turn in self.turns
            for step in turn.steps
            if step.box is not None and step.image is not None
        ]

    def to_json(self) -> dict[str, Any]:
        return {
            "turns": [turn.to_json() for turn in self.turns],
            "stopped": self.stopped,
            "turn_count": len(self.turns),
            "tool_call_count": self.tool_calls,
            "last_zoom_truth_coverage": self.truth_coverage,
        }

    @classmethod
    def from_json(cls, value: Any) -> Transcript | None:
        if not isinstance(value, dict):
            return None
        turns = tuple(AgentTurn.from_json(turn) for turn in value.get("turns") or [])
        return cls(turns, value.get("stopped"), value.get("last_zoom_truth_coverage"))


class TranscriptStore:
    """A run folder's crops and turn journal (see the module docstring). Thread-safe enough for
    the runner: one driver thread appends; crops are written atomically, once."""

    def __init__(self, out: str | Path) -> None:
        self.out = Path(out)
        self.crops = self.out / CROPS
        self._journal: Journal | None = None
        self._recorded: dict[str, list[AgentTurn]] = {}
        self.continued: dict[str, int] = {}  # sample id -> turns replayed on resume
        self.restarted: dict[str, str] = {}  # sample id -> why it was asked again whole

    def open(self) -> TranscriptStore:
        self._journal = Journal(self.out / TURNS)
        for number, line in enumerate(self._journal.entries, 1):
            sample_id = line.get("id")
            if not isinstance(sample_id, str):
                continue
            if line.get("discard"):
                self._recorded.pop(sample_id, None)
                continue
            turns = self._recorded.setdefault(sample_id, [])
            if line.get("turn") != len(turns):  # a gap: the sample's turns cannot be trusted
                self._recorded[sample_id] = []
                self.restarted[sample_id] = f"{TURNS} line {number} is turn {line.get('turn')}, expected {len(turns)}"
                continue
            turns.append(AgentTurn.from_json(line))
        return self

    def close(self) -> None:
        if self._journal is not None:
            self._journal.close()

    def __enter__(self) -> TranscriptStore:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def recorded(self, sample_id: str) -> list[AgentTurn]:
        """The turns of ``sample_id`` answered by an earlier run (empty for a fresh sample)."""
        return list(self._recorded.get(sample_id, []))

    def append(self, sample_id: str, index: int, turn: AgentTurn) -> None:
        if self._journal is not None:
            self._journal.append({"id": sample_id, "turn": index, **turn.to_json()}, sync_every=256)

    def discard(self, sample_id: str, reason: str) -> None:
        """Forget a sample's recorded turns (it is asked again whole), saying why."""
        self._recorded.pop(sample_id, None)
        self.restarted[sample_id] = reason
        if self._journal is not None:
            self._journal.append({"id": sample_id, "discard": True, "reason": reason})

    def save_crop(self, image: Image.Image) -> str:
        """Write ``image`` as ``crops/<key>.png`` unless that file exists; its key. The PNG is
        the one sent to the model (:func:`~sifmodel.turns.remember_png`): encoded once."""
        key = image_key(image)
        path = self.crops / f"{key}.png"
        if not path.is_file():
            buffer = io.BytesIO()
            image.save(buffer, format="PNG")
            self.crops.mkdir(parents=True, exist_ok=True)
            atomic_write(path, buffer.getvalue())
            remember_png(image, buffer.getvalue())
        return key

    def resume_summary(self) -> str | None:
        """One line on what ``--resume`` did with unfinished transcripts, or None."""
        parts = []
        if self.continued:
            turns = sum(self.continued.values())
            parts.append(
                f"{len(self.continued)} sample(s) continued mid-transcript ({turns} turn(s) replayed, not asked again)"
            )
        if self.restarted:
            reasons = sorted(set(self.restarted.values()))
            shown = "; ".join(reasons[:3]) + (f"; and {len(reasons) - 3} more" if len(reasons) > 3 else "")
            parts.append(f"{len(self.restarted)} sample(s) asked again whole ({shown})")
        return "; ".join(parts) if parts else None


def crop_path(run_dir: str | Path, key: str) -> Path:
    """The file of crop ``key`` in a run folder (the key is a hex digest: no path can be built
    from it that leaves the folder)."""
    if not key or any(c not in "0123456789abcdef" for c in key):
        raise ValueError(f"not a crop key: {key!r}")
    return Path(run_dir) / CROPS / f"{key}.png"
