"""``sifdata build`` throughput, one process, offline writer, two workloads:

1. synthetic scenes, which carry their exact depth: the builder's own cost (planning, box
   depths, template writing, strict checks, 16-bit PNG encoding, journaling, parquet).
   Baseline (same run): generating the same scenes alone.
2. real image files of mixed sizes (as Visual-CoT's are) with depth estimated by the tiny
   random-weight Depth Anything built here from its config. Baseline (same run): the depth
   estimator alone on the same images, which the build cannot beat.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

from PIL import Image

from sifdata.builder.pipeline import BuildConfig, build
from sifdata.depth import DepthEstimator
from sifdata.sources import synthetic
from sifdata.tiny_models import build_tiny_depth_anything


def synthetic_scenes(records: int, concurrency: int) -> None:
    start = time.perf_counter()
    for _ in synthetic.read(records):
        pass
    generate = time.perf_counter() - start
    print(f"baseline: generating {records:,} scenes                 {records / generate:8.1f} records/s")
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        config = BuildConfig(source="synthetic", n=records, concurrency=concurrency)
        report = build(config, Path(tmp) / "out", progress=False)
        elapsed = time.perf_counter() - start
        assert report.records == records and report.dataset_complete
    print(
        f"sifdata build, synthetic (depth given)            {records / elapsed:8.1f} records/s "
        f"({elapsed:.1f} s; {elapsed / generate:.1f}x the time of generating the scenes)"
    )
    print(f"builder's own cost: {(elapsed - generate) * 1000 / records:.2f} ms per record")


def mixed_size_images(records: int, concurrency: int, batch_size: int) -> None:
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model = build_tiny_depth_anything(folder / "tiny-depth")
        rows, images = [], []
        for index in range(records):
            width, height = rng.randint(320, 640), rng.randint(240, 640)
            image = Image.new("RGB", (width, height), (rng.randint(0, 255), 120, 80))
            image.save(folder / f"{index}.jpg", quality=85)
            images.append(image)
            x1, y1 = rng.randint(0, width // 2), rng.randint(0, height // 2)
            box = [x1, y1, x1 + rng.randint(20, width // 2), y1 + rng.randint(20, height // 2)]
            row = {"question": "How many?", "bboxs": [box], "answer": 1, "image": f"{index}.jpg", "question_id": index}
            rows.append(row)
        (folder / "source.json").write_text(json.dumps(rows))
        sizes = len({image.size for image in images})

        estimator = DepthEstimator(str(model), device="cpu", batch_size=batch_size)
        # A first pass loads the model and lets torch prepare its kernels for every input shape
        # (each image size is one): neither timing below pays for that.
        estimator.estimate(images)
        start = time.perf_counter()
        estimator.estimate(images)
        depth_only = time.perf_counter() - start
        rate = records / depth_only
        print(f"baseline: tiny Depth Anything alone, {records} images ({sizes} sizes) {rate:8.1f} images/s")

        config = BuildConfig(
            source="tallyqa",
            source_path=folder / "source.json",
            depth_model=str(model),
            depth_device="cpu",
            depth_batch_size=batch_size,
            concurrency=concurrency,
        )
        start = time.perf_counter()
        report = build(config, folder / "out", estimator=estimator, progress=False)
        elapsed = time.perf_counter() - start
        assert report.records == records and report.dataset_complete, report
    print(
        f"sifdata build, mixed sizes, tiny depth model      {records / elapsed:8.1f} records/s "
        f"({elapsed:.1f} s; {elapsed / depth_only:.2f}x the time of depth estimation alone)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=2_000, help="synthetic scenes")
    parser.add_argument("--images", type=int, default=300, help="mixed-size images with estimated depth")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--depth-batch-size", type=int, default=8)
    args = parser.parse_args()
    synthetic_scenes(args.records, args.concurrency)
    mixed_size_images(args.images, args.concurrency, args.depth_batch_size)


if __name__ == "__main__":
    main()
