"""Synthetic scenes with exact ground truth, and the bundled real photos.

A synthetic scene is a room (wall and a floor receding to a horizon) with a few coloured
shapes standing on the floor. Every object's box and depth are known exactly: the depth map
is drawn with the picture (objects lower in the frame stand closer, so they are larger and
have lower SIF depth), and every question has a known answer and known boxes. These scenes
and the photos in ``sample_data/photos`` are the embedded demo and test data.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from sifdata.images import open_image
from sifdata.sources.base import (
    BuildSource,
    Candidate,
    RejectHandler,
    SourceRecord,
    SourceReject,
    log_reject,
    make_record,
)

COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (235, 205, 30),
    "purple": (140, 60, 170),
    "orange": (240, 130, 30),
}
SHAPES = ("square", "circle", "triangle")
PLURAL = {"square": "squares", "circle": "circles", "triangle": "triangles"}
SIZES = ((320, 240), (288, 288), (360, 240), (240, 320))
HORIZON = 0.4  # fraction of the height where the floor meets the wall


@dataclass(frozen=True)
class SceneObject:
    shape: str
    colour: str
    box: tuple[int, int, int, int]  # pixel xyxy
    depth: float  # SIF polarity

    @property
    def name(self) -> str:
        return f"{self.colour} {self.shape}"


def _floor_depth(row: np.ndarray, height: int) -> np.ndarray:
    """SIF depth of the floor at pixel rows: 0.95 at the horizon down to 0.15 at the bottom."""
    horizon = HORIZON * height
    t = np.clip((row - horizon) / (height - horizon), 0.0, 1.0)
    return 0.95 - 0.8 * t


def place_objects(rng: np.random.Generator, width: int, height: int, count: int) -> list[SceneObject]:
    """Up to ``count`` non-overlapping objects on a ``width`` x ``height`` scene, drawn from ``rng``."""
    objects: list[SceneObject] = []
    kinds = [(s, c) for s in SHAPES for c in COLOURS]
    attempts = 0
    while len(objects) < count and attempts < 500:
        attempts += 1
        shape, colour = kinds[rng.integers(len(kinds))]
        bottom = int(rng.uniform(HORIZON * height + 0.15 * height, height - 4))
        nearness = (bottom - HORIZON * height) / ((1 - HORIZON) * height)
        size = int((0.12 + 0.22 * nearness) * min(width, height))
        left = int(rng.uniform(2, width - size - 2))
        box = (left, bottom - size, left + size, bottom)
        if any(_overlaps(box, o.box, margin=3) for o in objects):
            continue
        if any(o.shape == shape and o.colour == colour for o in objects):
            continue
        depth = float(np.round(_floor_depth(np.array([bottom]), height)[0] - 0.02, 3))
        objects.append(SceneObject(shape, colour, box, depth))
    return objects


def _overlaps(a: tuple[int, ...], b: tuple[int, ...], margin: int) -> bool:
    return not (a[2] + margin <= b[0] or b[2] + margin <= a[0] or a[3] + margin <= b[1] or b[3] + margin <= a[1])


def render_scene(width: int, height: int, objects: list[SceneObject]) -> tuple[Image.Image, np.ndarray]:
    """The RGB picture and its exact SIF depth map."""
    image = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(image)
    horizon = int(HORIZON * height)
    for row in range(height):
        if row < horizon:
            shade = 200 + int(30 * row / max(horizon, 1))
            draw.line([(0, row), (width, row)], fill=(shade, shade - 10, shade - 30))
        else:
            shade = 150 - int(60 * (row - horizon) / max(height - horizon, 1))
            draw.line([(0, row), (width, row)], fill=(shade, shade - 20, shade - 45))
    rows = np.arange(height, dtype=np.float64)[:, None]
    depth = np.where(rows < horizon, 1.0, _floor_depth(rows, height)) * np.ones((1, width))
    depth = depth.astype(np.float32)
    for obj in sorted(objects, key=lambda o: -o.depth):  # far first, so near ones cover them
        mask = Image.new("L", (width, height), 0)
        mask_draw = ImageDraw.Draw(mask)
        x1, y1, x2, y2 = obj.box
        fill = COLOURS[obj.colour]
        if obj.shape == "square":
            draw.rectangle([x1, y1, x2 - 1, y2 - 1], fill=fill)
            mask_draw.rectangle([x1, y1, x2 - 1, y2 - 1], fill=255)
        elif obj.shape == "circle":
            draw.ellipse([x1, y1, x2 - 1, y2 - 1], fill=fill)
            mask_draw.ellipse([x1, y1, x2 - 1, y2 - 1], fill=255)
        else:
            corners = [(x1, y2 - 1), (x2 - 1, y2 - 1), ((x1 + x2) // 2, y1)]
            draw.polygon(corners, fill=fill)
            mask_draw.polygon(corners, fill=255)
        depth[np.asarray(mask) > 0] = obj.depth
    return image, depth


def _question(rng: np.random.Generator, objects: list[SceneObject]) -> tuple[str, str, list[SceneObject]]:
    """A question about the scene, its answer, and the objects that answer it."""
    kinds = ["colour", "closer", "left"]
    by_shape: dict[str, list[SceneObject]] = {}
    for obj in objects:
        by_shape.setdefault(obj.shape, []).append(obj)
    countable = [shape for shape, group in by_shape.items() if len(group) >= 2]
    if countable:
        kinds.append("count")
    kind = kinds[rng.integers(len(kinds))]
    if kind == "count":
        shape = countable[rng.integers(len(countable))]
        group = by_shape[shape]
        return f"How many {PLURAL[shape]} are there in the room?", str(len(group)), group
    first, second = (objects[i] for i in rng.choice(len(objects), size=2, replace=False))
    if kind == "colour":
        unique_shape = [o for o in objects if len(by_shape[o.shape]) == 1]
        if unique_shape:
            target = unique_shape[rng.integers(len(unique_shape))]
            return f"What color is the {target.shape}?", f"{target.colour.capitalize()}.", [target]
        colours = [o.colour for o in objects]
        unique_colour = [o for o in objects if colours.count(o.colour) == 1]
        if unique_colour:
            target = unique_colour[rng.integers(len(unique_colour))]
            return f"What shape is the {target.colour} object?", f"A {target.shape}.", [target]
    if kind == "closer" and abs(first.depth - second.depth) >= 0.03:
        closer = first if first.depth < second.depth else second
        question = f"Which is closer to the camera, the {first.name} or the {second.name}?"
        return question, f"The {closer.name}.", [first, second]
    left_of = (first.box[0] + first.box[2]) < (second.box[0] + second.box[2])
    question = f"Is the {first.name} to the left of the {second.name}?"
    return question, "Yes." if left_of else "No.", [first, second]


def scene(index: int, seed: int = 0) -> SourceRecord:
    """Scene number ``index`` of the family drawn from ``seed`` (deterministic)."""
    rng = np.random.default_rng([seed, index])
    width, height = SIZES[rng.integers(len(SIZES))]
    objects = place_objects(rng, width, height, count=int(rng.integers(2, 5)))
    while len(objects) < 2:  # a crowded draw: take the next stream until two objects fit
        objects = place_objects(rng, width, height, count=2)
    image, depth = render_scene(width, height, objects)
    question, answer, targets = _question(rng, objects)
    return make_record(
        source="synthetic",
        source_id=f"{seed}-{index:06d}",
        question=question,
        answer=answer,
        boxes_pixel=[obj.box for obj in targets],
        width=width,
        height=height,
        image=image,
        depth=depth,
        meta={"objects": [obj.name for obj in objects]},
    )


def read(n: int, seed: int = 0) -> Iterator[SourceRecord]:
    """``n`` synthetic scenes."""
    for index in range(n):
        yield scene(index, seed)


def index(n: int, seed: int = 0) -> list[Candidate]:
    """``n`` synthetic scenes as candidates: a scene is drawn only when it is resolved."""
    return [
        Candidate(f"synthetic/{seed}-{number:06d}", "synthetic", functools.partial(scene, number, seed))
        for number in range(n)
    ]


def photos_dir() -> Path:
    return Path(str(resources.files("sifdata") / "sample_data" / "photos"))


def read_photos(on_reject: RejectHandler = log_reject) -> Iterator[SourceRecord]:
    """The bundled real photos (MIT, from the V* repository) with hand-written questions."""
    folder = photos_dir()
    rows = json.loads((folder / "questions.json").read_text(encoding="utf-8"))
    for row in rows:
        path = folder / row["image"]
        try:
            with open_image(path, decode=False) as opened:
                width, height = opened.size
            yield make_record(
                source="photos",
                source_id=row["id"],
                question=row["question"],
                answer=row["answer"],
                boxes_pixel=row["boxes"],
                width=width,
                height=height,
                image_path=path,
            )
        except (OSError, ValueError) as error:
            on_reject(SourceReject(f"photos/{row['id']}", str(error)))


def _given(record: SourceRecord) -> SourceRecord:
    return record


def photo_candidates(on_reject: RejectHandler) -> list[Candidate]:
    return [Candidate(r.key, r.source, functools.partial(_given, r)) for r in read_photos(on_reject)]


DEFAULT_GENERATED = 50  # records of a generated source when the build names no n


class _Generated(BuildSource):
    """Records made here, all of them kept: nothing to filter or sample."""

    def select(
        self, candidates: list[Candidate], *, n: int | None, rng: np.random.Generator, on_reject: RejectHandler
    ) -> list[Candidate]:
        return candidates


class SyntheticSource(_Generated):
    name = "synthetic"
    description = "generated scenes with exact depth (no depth model)"
    estimates_depth = False

    def candidates(self, *, n: int | None, seed: int, on_reject: RejectHandler) -> list[Candidate]:
        return index(n if n is not None else DEFAULT_GENERATED, seed=seed)


class PhotosSource(_Generated):
    name = "photos"
    description = "the three bundled photos (MIT, from V*)"

    def candidates(self, *, n: int | None, seed: int, on_reject: RejectHandler) -> list[Candidate]:
        photos = photo_candidates(on_reject)
        return photos[:n] if n else photos


class DemoSource(_Generated):
    name = "demo"
    description = "the bundled photos, then generated scenes up to n"

    def candidates(self, *, n: int | None, seed: int, on_reject: RejectHandler) -> list[Candidate]:
        photos = photo_candidates(on_reject)
        wanted = n if n is not None else DEFAULT_GENERATED
        return photos + index(max(wanted - len(photos), 0), seed=seed)
