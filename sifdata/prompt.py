"""The exact SIF user-turn text (sif-format.md). One definition, used by data exports,
training prompts and evaluation alike."""

from __future__ import annotations

SIF_INSTRUCTION = (
    "Please first output the thinking process in <think> </think> tags, where bounding box "
    "with depth is enclosed in <area> </area> tags and text analysis is enclosed in <text> "
    "</text> tags, alternating between them to iteratively refine the focused area. Then "
    "output the final answer in <answer> </answer> tags."
)
IMAGE_PLACEHOLDER = "<image>"


def sif_user_text(question: str, *, with_depth: bool = True) -> str:
    """The user turn with ``<image>`` placeholders: RGB then (by default) depth."""
    header = f"Original image: {IMAGE_PLACEHOLDER}\n"
    if with_depth:
        header += f"Depth image: {IMAGE_PLACEHOLDER}\n"
    return f"{header}{question.strip()} {SIF_INSTRUCTION}"


def sif_user_parts(question: str, *, with_depth: bool = True) -> list[tuple[str, str | None]]:
    """The user turn as ``("text", text)`` and ``("image", None)`` parts, in order."""
    parts: list[tuple[str, str | None]] = []
    for index, piece in enumerate(sif_user_text(question, with_depth=with_depth).split(IMAGE_PLACEHOLDER)):
        if index > 0:
            parts.append(("image", None))
        if piece:
            parts.append(("text", piece))
    return parts
