"""A builder source from outside sifthinker: ``squares`` draws one coloured square per image on a
grey field and asks its colour; its options (``colours``, ``size``) reach it without sifdata
knowing them."""

from __future__ import annotations

import functools
from typing import cast

import numpy as np
from PIL import Image, ImageDraw
from pydantic import Field

from sifdata.sources.base import BuildSource, Candidate, NoOptions, RejectHandler, SourceRecord, make_record


class SquaresOptions(NoOptions):
    colours: list[str] = Field(default_factory=lambda: ["red", "green", "blue"])
    size: int = Field(default=96, ge=32)


def _square(number: int, colour: str, size: int, seed: int) -> SourceRecord:
    rng = np.random.default_rng([seed, number])
    side = size // 3
    x, y = (int(v) for v in rng.integers(0, size - side, 2))
    image = Image.new("RGB", (size, size), (128, 128, 128))
    ImageDraw.Draw(image).rectangle([x, y, x + side - 1, y + side - 1], fill=colour)
    return make_record(
        source="squares",
        source_id=f"{seed}-{number}",
        question="What colour is the square?",
        answer=colour,
        boxes_pixel=[[x, y, x + side, y + side]],
        width=size,
        height=size,
        image=image,
    )


class SquaresSource(BuildSource):
    name = "squares"
    description = "coloured squares (a third party's source)"
    Options = SquaresOptions

    def candidates(self, *, n: int | None, seed: int, on_reject: RejectHandler) -> list[Candidate]:
        options = cast(SquaresOptions, self.options)
        count = n if n is not None else len(options.colours)
        return [
            Candidate(
                f"squares/{seed}-{i}",
                "squares",
                functools.partial(_square, i, options.colours[i % len(options.colours)], options.size, seed),
            )
            for i in range(count)
        ]
