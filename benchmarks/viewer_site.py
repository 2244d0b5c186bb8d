"""The viewer's site for a large run: writing it the first time, writing it again (every picture
already there, so only the data files are rewritten: the baseline is the first write, in the same
run), and, where Chromium is installed, how long the page takes to show its first list and to open
an item on the last page (loaded on demand).

Items are synthetic (a scripted run's shape: a question, a panel with two focus steps, a
ground-truth box); ``--pictures`` distinct images are shared among them, as questions of a
benchmark share images.
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import time
from pathlib import Path

from PIL import Image

from sifdata.viewer.site import FocusBox, Panel, Picture, ViewItem, write_site


def _picture(number: int) -> Picture:
    def draw() -> Image.Image:
        return Image.new("RGB", (640, 480), ((number * 37) % 256, (number * 91) % 256, (number * 53) % 256))

    return Picture(hashlib.sha256(f"picture-{number}".encode()).hexdigest()[:16], draw)


def _items(count: int, pictures: int) -> list[ViewItem]:
    items = []
    for number in range(count):
        right = number % 3 != 0
        steps = (
            (FocusBox((0.1, 0.1, 0.7, 0.7), 0.4),),
            (FocusBox((0.2, 0.25, 0.45, 0.5), 0.3), FocusBox((0.5, 0.5, 0.6, 0.65), 0.6)),
        )
        panel = Panel(
            label="run",
            status="right" if right else "wrong",
            fields=(("target", "A"), ("response", f"<answer>{'A' if right else 'B'}</answer>"), ("extracted", "A")),
            steps=steps,
            score=1.0 if right else 0.0,
        )
        items.append(
            ViewItem(
                id=str(number),
                question=f"Question {number}: which object is closer to the camera?",
                category=("Count", "Depth", "Distance", "Relation")[number % 4],
                panels=(panel,),
                image=_picture(number % pictures),
                truth=((0.2, 0.25, 0.45, 0.5),),
                facets={"status": panel.status},
            )
        )
    return items


def _browser_times(index: Path, last_item: int) -> tuple[float, float] | None:
    from sifdata.browser import Browser, BrowserUnavailable

    try:
        with Browser(1280, 900) as browser:
            started = time.perf_counter()
            browser.open(index.as_uri())
            browser.wait_for("document.body.getAttribute('data-ready') === 'list'")
            listed = time.perf_counter() - started
            started = time.perf_counter()
            browser.open(index.as_uri() + f"#/item/{last_item}")
            browser.wait_for(f"document.body.getAttribute('data-ready') === 'item:{last_item}'")
            return listed, time.perf_counter() - started
    except BrowserUnavailable:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=3000)
    parser.add_argument("--pictures", type=int, default=300)
    args = parser.parse_args()
    items = _items(args.items, args.pictures)
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "site"
        started = time.perf_counter()
        first = write_site(items, out, title="benchmark", progress=False)
        first_s = time.perf_counter() - started
        started = time.perf_counter()
        again = write_site(items, out, title="benchmark", progress=False)
        again_s = time.perf_counter() - started
        print(f"{args.items} items, {args.pictures} distinct pictures, {first.pages} pages")
        print(f"first write: {first_s:.2f} s ({first.pictures_written} pictures written)")
        print(f"write again: {again_s:.2f} s ({again.pictures_reused} reused, {again.pictures_written} written)")
        print(f"write again / first write: {again_s / first_s:.3f}")
        times = _browser_times(first.index, args.items - 1)
        if times is None:
            print("Chromium not found: page timings skipped (apt-get install chromium, or set SIF_CHROMIUM)")
        else:
            print(f"Chromium: first list shown in {times[0]:.2f} s; item {args.items - 1} opened in {times[1]:.2f} s")


if __name__ == "__main__":
    main()
