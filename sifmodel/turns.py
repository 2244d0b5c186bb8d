"""The later turns of a conversation: what a multi-turn agent sends after the first user turn.

A :class:`~sifmodel.prompts.Prompt` is the first user turn; an agent that acts on the image (a
zoom tool) goes on with the model's reply (an ``assistant`` turn, with the tool calls a server
returned as API tool calls), the tools' results (a ``tool`` turn per API call, text only, as
the OpenAI protocol has it) and a ``user`` turn that may hold images (the crops). Turns render to
transformers chat messages and to OpenAI-compatible messages the same way the first turn does.
"""

from __future__ import annotations

import base64
import threading
import weakref
from dataclasses import dataclass
from typing import Any, Literal

from PIL import Image

from sifdata.images import image_data_url

Role = Literal["assistant", "user", "tool"]


@dataclass(frozen=True)
class ToolCall:
    """One call of a tool, as the model wrote it: ``arguments`` as parsed (None when they could
    not be read: ``error`` says why), ``raw`` the text as written, ``id`` the server's id of an
    API tool call (None for a call written in the reply's text)."""

    name: str
    arguments: dict[str, Any] | None
    raw: str
    id: str | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "arguments": self.arguments, "raw": self.raw, "id": self.id, "error": self.error}

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> ToolCall:
        return cls(
            str(value.get("name", "")),
            value.get("arguments"),
            str(value.get("raw", "")),
            value.get("id"),
            value.get("error"),
        )


@dataclass(frozen=True)
class Turn:
    """A turn after the first: ``parts`` ordered ``("text", str)`` or ``("image", PIL.Image)``;
    ``tool_calls`` the API tool calls of an assistant turn; ``tool_call_id`` the call a ``tool``
    turn answers."""

    role: Role
    parts: tuple[tuple[str, Any], ...]
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None

    @property
    def images(self) -> list[Image.Image]:
        return [value for kind, value in self.parts if kind == "image"]

    @property
    def text(self) -> str:
        """The text with ``<image>`` where each image goes (for logs, caches and transcripts)."""
        return "".join(value if kind == "text" else "<image>" for kind, value in self.parts)

    def hf_message(self) -> dict[str, Any]:
        """A transformers chat message (images inline as PIL)."""
        if self.role != "user":  # an assistant reply or a tool result is text
            message: dict[str, Any] = {"role": self.role, "content": self.text}
            if self.tool_calls:
                message["tool_calls"] = [_api_call(call) for call in self.tool_calls]
            return message
        return {"role": "user", "content": hf_content(self.parts)}

    def openai_message(self, image_max_side: int | None = None) -> dict[str, Any]:
        """An OpenAI-compatible message: images as lossless PNG data URLs, as in the first turn."""
        if self.role == "assistant":
            message: dict[str, Any] = {"role": "assistant", "content": self.text}
            if self.tool_calls:
                message["tool_calls"] = [_api_call(call) for call in self.tool_calls]
            return message
        if self.role == "tool":
            return {"role": "tool", "tool_call_id": self.tool_call_id or "", "content": self.text}
        return {"role": "user", "content": openai_content(self.parts, image_max_side)}


def hf_content(parts: tuple[tuple[str, Any], ...]) -> list[dict[str, Any]]:
    """A user turn's parts as transformers chat content (images inline as PIL)."""
    return [
        {"type": "image", "image": value} if kind == "image" else {"type": "text", "text": value}
        for kind, value in parts
    ]


def openai_content(parts: tuple[tuple[str, Any], ...], image_max_side: int | None = None) -> list[dict[str, Any]]:
    """A user turn's parts as OpenAI-compatible content (images as PNG data URLs, :func:`png_data_url`)."""
    return [
        {"type": "image_url", "image_url": {"url": png_data_url(value, image_max_side)}}
        if kind == "image"
        else {"type": "text", "text": value}
        for kind, value in parts
    ]


_ENCODED: dict[tuple[int, int], tuple[weakref.ref[Image.Image], str]] = {}
_ENCODED_LOCK = threading.Lock()


def png_data_url(image: Image.Image, max_side: int | None = None) -> str:
    """``image`` as a lossless PNG data URL (full size unless ``max_side``), encoded once per
    image object: an agent's later turns send the same images again (the sample's image, the
    crops so far), and encoding them again would cost each turn more than the one before."""
    side = max_side or max(image.size)
    key = (id(image), side)
    with _ENCODED_LOCK:
        found = _ENCODED.get(key)
        if found is not None and found[0]() is image:
            return found[1]
    url = image_data_url(image, max_side=side, image_format="PNG")
    with _ENCODED_LOCK:
        _ENCODED[key] = (weakref.ref(image, lambda _: _forget(key)), url)
    return url


def remember_png(image: Image.Image, png: bytes) -> None:
    """Tell :func:`png_data_url` that ``png`` is ``image`` encoded at full size (an RGB image
    someone has just written as PNG), so that sending it does not encode it again."""
    if image.mode != "RGB":
        return
    key = (id(image), max(image.size))
    url = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    with _ENCODED_LOCK:
        _ENCODED[key] = (weakref.ref(image, lambda _: _forget(key)), url)


def _forget(key: tuple[int, int]) -> None:
    with _ENCODED_LOCK:
        _ENCODED.pop(key, None)


def _api_call(call: ToolCall) -> dict[str, Any]:
    """A tool call as the OpenAI protocol sends it back in the assistant turn."""
    return {"id": call.id or "", "type": "function", "function": {"name": call.name, "arguments": call.raw}}
