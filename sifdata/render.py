"""``sifdata show``: a record's chain drawn on its image, one panel per focus step."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from sifdata.chain import parse_chain
from sifdata.depth import load_depth_png
from sifdata.images import open_image
from sifdata.shards import iter_rows, shard_files

PANEL = 320
STEP_COLOURS = ["#00c853", "#2962ff", "#ff6d00", "#d500f9", "#00b8d4", "#ffd600", "#dd2c00"]


def find_row(folder: str | Path, record_id: str) -> dict:
    for path in shard_files(folder):
        for row in iter_rows(path):
            if row["id"] == record_id:
                return row
    raise KeyError(f"no record {record_id!r} in {folder}")


def _panel(image: Image.Image) -> Image.Image:
    picture = image.convert("RGB")
    picture.thumbnail((PANEL, PANEL))
    return picture


def render_record(row: dict) -> Image.Image:
    """Panels: the depth map, then each focus step's boxes with depth labels; text underneath."""
    image = open_image(row["image"]["bytes"], what=f"the image of {row.get('id')}").convert("RGB")
    depth = load_depth_png(row["depth_image"]["bytes"])
    # Shown as brightness = nearness, the way people read depth maps.
    depth_picture = Image.fromarray((255 * (1 - depth)).astype(np.uint8)).convert("RGB")
    chain = parse_chain(row["chain"], strict=False)
    panels = [_panel(depth_picture)]
    font = ImageFont.load_default()
    for number, step in enumerate(chain.focus_steps, 1):
        panel = _panel(image)
        draw = ImageDraw.Draw(panel)
        colour = STEP_COLOURS[(number - 1) % len(STEP_COLOURS)]
        for box, value in zip(step.boxes, step.depths, strict=True):
            x1, y1, x2, y2 = box[0] * panel.width, box[1] * panel.height, box[2] * panel.width, box[3] * panel.height
            draw.rectangle([x1, y1, x2, y2], outline=colour, width=3)
            label = f"{number}" + (f" d={value:.3f}" if value is not None else "")
            draw.rectangle([x1, max(y1 - 12, 0), x1 + 6 * len(label) + 4, max(y1 - 12, 0) + 12], fill=colour)
            draw.text((x1 + 2, max(y1 - 12, 0)), label, fill="white", font=font)
        panels.append(panel)
    text = f"{row['id']}  Q: {row['question']}  A: {chain.answer}"
    lines = textwrap.wrap(text, width=max(40, (PANEL + 8) * len(panels) // 7))
    width = sum(p.width for p in panels) + 8 * (len(panels) + 1)
    height = max(p.height for p in panels) + 16 + 14 * len(lines) + 8
    canvas = Image.new("RGB", (width, height), "white")
    x = 8
    for panel in panels:
        canvas.paste(panel, (x, 8))
        x += panel.width + 8
    draw = ImageDraw.Draw(canvas)
    for index, line in enumerate(lines):
        draw.text((8, max(p.height for p in panels) + 16 + 14 * index), line, fill="black", font=font)
    return canvas


def show(folder: str | Path, record_id: str, out: str | Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    render_record(find_row(folder, record_id)).save(out)
    return out
