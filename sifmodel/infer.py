"""``sifmodel infer``: one image and question -> the chain, the answer, and a PNG per focus step."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

from sifdata.chain import parse_chain
from sifdata.chain_types import Chain
from sifmodel.backends import Backend, GenerationRequest, GenerationSettings
from sifmodel.prompts import PromptMode


@dataclass(frozen=True)
class Inference:
    text: str
    chain: Chain
    step_images: list[Path]


def draw_step(image: Image.Image, boxes: list, depths: list, number: int) -> Image.Image:
    drawn = image.convert("RGB").copy()
    draw = ImageDraw.Draw(drawn)
    width = max(2, round(max(drawn.size) / 250))
    for box, depth in zip(boxes, depths, strict=True):
        x1, y1, x2, y2 = box[0] * drawn.width, box[1] * drawn.height, box[2] * drawn.width, box[3] * drawn.height
        draw.rectangle([x1, y1, x2, y2], outline="#00e676", width=width)
        label = f"step {number}" + (f"  depth {depth:.3f}" if depth is not None else "")
        draw.text((x1 + width + 2, y1 + width + 2), label, fill="#00e676")
    return drawn


def infer(
    backend: Backend,
    image: Image.Image,
    question: str,
    *,
    depth_image: Image.Image | None = None,
    mode: PromptMode = "sif",
    settings: GenerationSettings | None = None,
    out: str | Path | None = None,
) -> Inference:
    """Ask ``backend`` and read its chain leniently; with ``out``, draw every focus step."""
    request = GenerationRequest(
        "infer", question, (image,), depth_image=depth_image, mode=mode, settings=settings or GenerationSettings()
    )
    (response,) = backend.generate([request])
    if not response.ok:
        assert response.error is not None
        raise RuntimeError(f"generation failed ({response.error.kind}): {response.error.message}")
    text = response.text or ""
    chain = parse_chain(text, strict=False, width=image.width, height=image.height)
    paths: list[Path] = []
    if out is not None:
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        for number, step in enumerate(chain.focus_steps, 1):
            path = folder / f"step-{number:02d}.png"
            draw_step(image, list(step.boxes), list(step.depths), number).save(path)
            paths.append(path)
        (folder / "output.txt").write_text(text, encoding="utf-8")
    return Inference(text, chain, paths)
