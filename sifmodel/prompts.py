"""One prompt builder for the SIF user turn, used by training data, inference and evaluation.

Modes:
- ``sif``: RGB then depth image, the exact SIF instruction (sif-format.md); the default;
- ``sif-rgb``: the SIF instruction with the RGB image only (the original RL stage's prompt);
- ``plain``: the image(s) and the question as given (a benchmark's own instruction).

A :class:`Prompt` renders to transformers chat messages (PIL images in typed content) and to
OpenAI-compatible messages (images as data URLs). Depth images may be 16-bit SIF depth PNGs:
they are rendered to 8-bit RGB for the model (closer = brighter), never fed raw.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from PIL import Image

from sifdata.depth import model_depth_image
from sifdata.prompt import sif_user_parts
from sifmodel.turns import Turn, hf_content, openai_content

PromptMode = Literal["sif", "sif-rgb", "plain"]
PROMPT_MODES: tuple[PromptMode, ...] = ("sif", "sif-rgb", "plain")


def prompt_mode(text: str) -> PromptMode:
    """``text`` as a :data:`PromptMode` (what a CLI option or a file says), or ``ValueError``
    naming the modes: the one place a string becomes a mode."""
    for mode in PROMPT_MODES:
        if text == mode:
            return mode
    raise ValueError(f"unknown prompt mode {text!r}; choose one of {', '.join(PROMPT_MODES)}")


class DepthRequired(ValueError):
    """Mode ``sif`` was asked for without a depth image (backends estimate one instead)."""


@dataclass(frozen=True)
class Prompt:
    """The user turn: ordered parts, each ``("text", str)`` or ``("image", PIL.Image)``."""

    parts: tuple[tuple[str, Any], ...]
    mode: PromptMode
    system: str | None = None
    later: tuple[Turn, ...] = ()  # the turns after the first (a multi-turn agent's; sifmodel.turns)

    @property
    def images(self) -> list[Image.Image]:
        """Every image of the conversation, in the order the model sees them."""
        first = [value for kind, value in self.parts if kind == "image"]
        return first + [image for turn in self.later for image in turn.images]

    @property
    def text(self) -> str:
        """The text with ``<image>`` where each image goes (for logs and caches)."""
        return "".join(value if kind == "text" else "<image>" for kind, value in self.parts)

    def _with_system(self, user: dict[str, Any], later: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return ([{"role": "system", "content": self.system}] if self.system else []) + [user] + later

    def hf_messages(self) -> list[dict[str, Any]]:
        """Chat messages for ``processor.apply_chat_template`` (images inline as PIL)."""
        later = [turn.hf_message() for turn in self.later]
        return self._with_system({"role": "user", "content": hf_content(self.parts)}, later)

    def openai_messages(self, image_max_side: int | None = None) -> list[dict[str, Any]]:
        """Messages for an OpenAI-compatible server or vLLM: images as PNG data URLs, lossless and
        full size unless ``image_max_side`` says otherwise, so a served model sees the pixels the
        ``hf:`` backend's processor sees."""
        later = [turn.openai_message(image_max_side) for turn in self.later]
        return self._with_system({"role": "user", "content": openai_content(self.parts, image_max_side)}, later)


def build_messages(
    question: str,
    image: Image.Image | Sequence[Image.Image],
    depth_image: Image.Image | None = None,
    mode: PromptMode = "sif",
    *,
    system: str | None = None,
    depth_style: str = "gray",
) -> Prompt:
    """The SIF user turn for ``question`` about ``image`` (RGB; several for multi-image questions).

    ``mode="sif"`` needs ``depth_image`` (a 16-bit SIF depth PNG or an already rendered one);
    without it :class:`DepthRequired` is raised.
    """
    if mode not in PROMPT_MODES:
        raise ValueError(f"unknown prompt mode {mode!r}; choose one of {', '.join(PROMPT_MODES)}")
    images = [image] if isinstance(image, Image.Image) else list(image)
    if not images:
        raise ValueError("a prompt needs at least one image")
    rgb = [picture if picture.mode == "RGB" else picture.convert("RGB") for picture in images]
    if mode == "plain":
        parts: list[tuple[str, Any]] = [("image", picture) for picture in rgb] + [("text", question)]
        return Prompt(tuple(parts), mode, system)
    with_depth = mode == "sif"
    if with_depth and depth_image is None:
        raise DepthRequired("prompt mode 'sif' needs a depth image (or a depth estimator to make one)")
    queue = rgb[:1] + ([model_depth_image(depth_image, depth_style)] if with_depth and depth_image else [])
    parts = []
    for kind, text in sif_user_parts(question, with_depth=with_depth):
        parts.append(("image", queue.pop(0)) if kind == "image" else ("text", text))
    if len(rgb) > 1:  # extra views go before the instruction text, after the SIF images
        parts[-1:-1] = [("image", picture) for picture in rgb[1:]]
    return Prompt(tuple(parts), mode, system)
