"""Images on the wire and on screen: data URLs for chat endpoints, boxes drawn on a copy.

Shared by the builder's writer, the model backends' prompts and the judge, so that every
request that carries an image encodes it the same way.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import Literal

from PIL import Image, ImageDraw

ImageFormat = Literal["JPEG", "PNG"]


def image_data_url(image: Image.Image, max_side: int = 768, image_format: ImageFormat = "JPEG") -> str:
    """A data URL of ``image``, downscaled so that its longer side is at most ``max_side``.

    JPEG (quality 90) suits photos; PNG keeps every value of a picture that must survive
    exactly, such as a rendered depth map.
    """
    picture = image.convert("RGB")
    if max(picture.size) > max_side:
        picture.thumbnail((max_side, max_side))
    buffer = io.BytesIO()
    if image_format == "JPEG":
        picture.save(buffer, format="JPEG", quality=90)
    else:
        picture.save(buffer, format="PNG")
    mime = "image/jpeg" if image_format == "JPEG" else "image/png"
    return f"data:{mime};base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def draw_boxes(image: Image.Image, boxes: Sequence[Sequence[float]], colour: str = "#00ff00") -> Image.Image:
    """A copy of ``image`` with per-axis normalized ``boxes`` outlined."""
    drawn = image.convert("RGB").copy()
    draw = ImageDraw.Draw(drawn)
    line = max(2, round(max(drawn.size) / 200))
    for x1, y1, x2, y2 in boxes:
        draw.rectangle(
            [x1 * drawn.width, y1 * drawn.height, x2 * drawn.width, y2 * drawn.height], outline=colour, width=line
        )
    return drawn
