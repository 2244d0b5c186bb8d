"""Images read safely, sent on the wire and shown: :func:`open_image`, data URLs for chat
endpoints, boxes drawn on a copy.

Every image the project reads from a file or a data cell goes through :func:`open_image`: it
opens only regular files (a FIFO or a device among a benchmark's images would block the reader
forever), within a size and a pixel budget (a PNG that claims 50000 x 50000 pixels is refused
from its header, before anything is decoded), and fully decoded when asked (a truncated JPEG
is found at the door). Anything else is :class:`ImageRejected`, a ``ValueError`` naming the
image and the reason, so that it is the record's or the sample's error, never the job's end.
The budgets come from ``SIF_MAX_IMAGE_PIXELS`` and ``SIF_MAX_IMAGE_BYTES``.

The data URLs are shared by the builder's writer, the model backends' prompts and the judge, so
that every request that carries an image encodes it the same way.
"""

from __future__ import annotations

import base64
import io
import os
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from PIL import Image, ImageDraw

ImageFormat = Literal["JPEG", "PNG"]

#: Far above any real benchmark image (V*'s largest photos are ~25 megapixels), far below a bomb:
#: Pillow's own refusal threshold (2 x ``Image.MAX_IMAGE_PIXELS``).
DEFAULT_MAX_PIXELS = 178_956_970
DEFAULT_MAX_BYTES = 512 * 1024 * 1024


class ImageRejected(ValueError):
    """An image that is not read: not a regular file, over the budget, or not a decodable image."""


def max_pixels() -> int:
    return int(os.environ.get("SIF_MAX_IMAGE_PIXELS") or DEFAULT_MAX_PIXELS)


def max_bytes() -> int:
    return int(os.environ.get("SIF_MAX_IMAGE_BYTES") or DEFAULT_MAX_BYTES)


def check_regular_file(path: str | Path) -> Path:
    """``path`` when it is a regular file (links followed) within the byte budget; else
    :class:`ImageRejected` (``FileNotFoundError`` when there is nothing there)."""
    path = Path(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"image file not found: {path}") from None
    except OSError as error:
        raise ImageRejected(f"{path}: cannot be read ({error.strerror})") from None
    if not stat.S_ISREG(info.st_mode):
        kind = "a FIFO" if stat.S_ISFIFO(info.st_mode) else "a folder" if stat.S_ISDIR(info.st_mode) else "no file"
        raise ImageRejected(f"{path} is {kind}, not a regular file: it is not opened")
    if info.st_size > max_bytes():
        raise ImageRejected(f"{path} has {info.st_size} bytes, over the budget of {max_bytes()} (SIF_MAX_IMAGE_BYTES)")
    return path


def read_image_bytes(path: str | Path) -> bytes:
    """A regular file's bytes (:func:`check_regular_file` first)."""
    return check_regular_file(path).read_bytes()


def open_image(source: str | Path | bytes, *, decode: bool = True, what: str | None = None) -> Image.Image:
    """The image in ``source`` (a path or encoded bytes), checked as the module docstring says.

    ``decode``: decode every pixel now (a truncated file fails here); else only the header is
    read (its size and mode are known, its pixels decoded on first use). ``what`` names the
    image in errors (default: the path, or "image bytes").
    """
    name = what or (str(source) if not isinstance(source, bytes) else "image bytes")
    if isinstance(source, bytes):
        if len(source) > max_bytes():
            raise ImageRejected(f"{name}: {len(source)} bytes, over the budget of {max_bytes()} (SIF_MAX_IMAGE_BYTES)")
        stream: io.BytesIO | Path = io.BytesIO(source)
    else:
        stream = check_regular_file(source)
    budget = max_pixels()
    if Image.MAX_IMAGE_PIXELS is not None and budget > 2 * Image.MAX_IMAGE_PIXELS:
        Image.MAX_IMAGE_PIXELS = budget // 2  # a budget raised above Pillow's own: Pillow follows it
    try:
        image = Image.open(stream)
    except Image.DecompressionBombError:
        raise ImageRejected(
            f"{name} claims more than {budget} pixels (SIF_MAX_IMAGE_PIXELS): a decompression bomb, or raise the budget"
        ) from None
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageRejected(f"{name}: not a readable image ({type(error).__name__}: {error})") from None
    width, height = image.size
    if width * height > budget:
        image.close()
        raise ImageRejected(
            f"{name} claims {width} x {height} pixels, over the budget of {budget} (SIF_MAX_IMAGE_PIXELS): "
            "a decompression bomb, or raise the budget"
        )
    if decode:
        try:
            image.load()
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
            image.close()
            raise ImageRejected(f"{name}: the image does not decode ({type(error).__name__}: {error})") from None
    return image


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
