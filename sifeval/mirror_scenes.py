"""Questions with exactly known answers about synthetic scenes, for the tiny local benchmark
mirrors (each written by its adapter module in the benchmark's exact upstream layout)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import numpy as np
from PIL import Image

from sifdata.sources.synthetic import SIZES, SceneObject, place_objects, render_scene


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def scene(index: int, seed: int, minimum: int = 3) -> tuple[Image.Image, np.ndarray, list[SceneObject]]:
    rng = np.random.default_rng([seed, 7919, index])
    width, height = SIZES[int(rng.integers(len(SIZES)))]
    objects: list[SceneObject] = []
    while len(objects) < minimum:
        objects = place_objects(rng, width, height, count=int(rng.integers(minimum, 5)))
    image, depth = render_scene(width, height, objects)
    return image, depth, objects


def centre(obj: SceneObject) -> tuple[float, float]:
    x1, y1, x2, y2 = obj.box
    return (x1 + x2) / 2, (y1 + y2) / 2


def pick(rng: np.random.Generator, objects: list[SceneObject], k: int) -> list[SceneObject]:
    return [objects[i] for i in rng.choice(len(objects), size=k, replace=False)]


def _shuffled(rng: np.random.Generator, right: str, wrong: list[str]) -> tuple[list[str], int]:
    choices = [right, *wrong]
    order = list(rng.permutation(len(choices)))
    shuffled = [choices[i] for i in order]
    return shuffled, shuffled.index(right)


def _question(question: str, choices: list[str], answer: int, image: Image.Image, target: str) -> dict[str, Any]:
    return {
        "question": question,
        "choices": choices,
        "answer_index": answer,
        "image_png": png(image),
        "target_class": target,
    }


def task_question(task: str, index: int, seed: int) -> dict[str, Any]:
    """One CV-Bench-style question of ``task`` (Count, Relation, Depth, Distance)."""
    image, _depth, objects = scene(index, seed)
    rng = np.random.default_rng([seed, 104729, index])
    if task == "Count":
        shape = objects[0].shape
        count = sum(o.shape == shape for o in objects)
        choices, answer = _shuffled(rng, str(count), [str(c) for c in range(5) if c != count][:3])
        question = f"How many {shape}s are in the image?"
        return _question(question, choices, answer, image, shape)
    if task == "Relation":
        a, b = pick(rng, objects, 2)
        right = "left" if centre(a)[0] < centre(b)[0] else "right"
        choices, answer = _shuffled(rng, right, ["right" if right == "left" else "left"])
        question = (
            f"Considering the relative positions of the {a.name} and the {b.name} in the image provided, "
            f"where is the {a.name} located with respect to the {b.name}?"
        )
        return _question(question, choices, answer, image, a.name)
    if task == "Depth":
        a, b = sorted(pick(rng, objects, 2), key=lambda o: o.depth)
        choices, answer = _shuffled(rng, a.name, [b.name])
        question = f"Which object is closer to the camera taking this photo, the {choices[0]} or the {choices[1]}?"
        return _question(question, choices, answer, image, a.name)
    anchor, *others = pick(rng, objects, 3)

    def distance(obj: SceneObject) -> float:  # in the scene's own units: image plane and depth
        (ax, ay), (ox, oy) = centre(anchor), centre(obj)
        return float(np.hypot(np.hypot(ax - ox, ay - oy), 300 * (anchor.depth - obj.depth)))

    near, far = sorted(others, key=distance)
    choices, answer = _shuffled(rng, near.name, [far.name])
    question = (
        "Estimate the real-world distances between objects in this image. "
        f"Which object is closer to the {anchor.name}, the {choices[0]} or the {choices[1]}?"
    )
    return _question(question, choices, answer, image, near.name)


def questions_for_tasks(
    tasks: tuple[str, ...], per_task: int, seed: int
) -> Iterator[tuple[str, str, str, dict[str, Any]]]:
    """(task, 2D/3D, source, question) in CV-Bench's split of tasks over sources."""
    for task in tasks:
        level = "2D" if task in ("Count", "Relation") else "3D"
        for number in range(per_task):
            source = ("ADE20K", "COCO")[number % 2] if level == "2D" else "Omni3D"
            yield task, level, source, task_question(task, tasks.index(task) * 1000 + number, seed)
