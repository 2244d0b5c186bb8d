"""Depth images per second on CPU with the tiny random-weight Depth Anything (built here from
its config), on images of mixed sizes as real benchmarks have them:

- baseline (same run): one image per forward pass;
- batched by the processed shape (the default: the same maps as one by one);
- one square input size for all (``uniform_size``): every image in one batch.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from sifdata.depth import DepthEstimator
from sifdata.tiny_models import build_tiny_depth_anything


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    rng = random.Random(0)
    # Aspect ratios as photos have them (4:3, 3:4, 16:9, 1:1, ...), at varied resolutions.
    ratios = [(4, 3), (3, 4), (16, 9), (1, 1), (3, 2), (2, 3)]
    images = []
    for index in range(args.images):
        w, h = rng.choice(ratios)
        scale = rng.randint(60, 160)
        size = (w * scale, h * scale)
        images.append(
            Image.fromarray(np.random.default_rng(index).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
        )
    with tempfile.TemporaryDirectory() as tmp:
        model = str(build_tiny_depth_anything(Path(tmp) / "tiny-depth"))
        runs = {
            "one by one": DepthEstimator(model, device="cpu", batch_size=1),
            "batched by processed shape": DepthEstimator(model, device="cpu", batch_size=args.batch_size),
            "one square size (56)": DepthEstimator(model, device="cpu", batch_size=args.batch_size, uniform_size=56),
        }
        for estimator in runs.values():
            estimator.estimate(images)  # load, and let torch prepare its kernels for every shape
        rates = {}
        for label, estimator in runs.items():
            estimator.forward_passes = 0
            started = time.perf_counter()
            estimator.estimate(images)
            rates[label] = args.images / (time.perf_counter() - started)
            print(f"{label:28s} {rates[label]:8.1f} images/s  ({estimator.forward_passes} forward passes)")
    base = rates["one by one"]
    print(f"{len({image.size for image in images})} sizes among {args.images} images; batched: "
          f"{rates['batched by processed shape'] / base:.1f}x, one size: {rates['one square size (56)'] / base:.1f}x "
          "the one-by-one rate")  # fmt: skip


if __name__ == "__main__":
    main()
