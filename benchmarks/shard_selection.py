"""How long a ``sifdata build --shard i/n`` job takes to choose its share of Visual-CoT.

A 363K-row file in the Visual-CoT layout (``viscot_363k.json``: 14 subsets, text-heavy ones
included) is written with its images as small real JPEGs, then, in one run:

- floor: ``json.load`` of the file, which every job must do;
- selection: the build's candidate selection (text-heavy filter, per-subset cap 10,000, seed
  sampling) and the share of shard 3 of 64, on the source index, reading no image;
- the share's images: resolving the share's candidates (image headers, boxes), which the
  shard then builds;
- baseline: what a job did before the index existed: resolving every row (every image's
  header) before taking its share.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

from PIL import Image

from sifdata.builder.pipeline import BuildConfig, select_candidates, shard_share
from sifdata.sources import viscot

SUBSETS = {  # rows per subset in viscot_363k.json (Visual-CoT paper, Table 1)
    "flickr30k": 135_735,
    "gqa": 88_294,
    "textvqa": 18_524,
    "docvqa": 33_453,
    "textcap": 32_152,
    "infographicsvqa": 15_055,
    "vsr": 3_376,
    "openimages": 43_053,
    "cub": 3_987,
    "sroie": 2_036,
    "dude": 15_673,
    "v7w": 30_491,
}


def write_source(folder: Path, rows: int, images: int, seed: int = 0) -> Path:
    rng = random.Random(seed)
    sizes = [(rng.randint(300, 640), rng.randint(240, 640)) for _ in range(images)]
    for index, (width, height) in enumerate(sizes):
        Image.new("RGB", (width, height), (index % 255, 90, 140)).save(folder / f"{index}.jpg", quality=70)
    weights = [count for count in SUBSETS.values()]
    names = list(SUBSETS)
    data = []
    for position in range(rows):
        subset = rng.choices(names, weights)[0]
        image = position % images
        width, height = sizes[image]
        x1, y1 = rng.randint(0, width // 2), rng.randint(0, height // 2)
        x2, y2 = x1 + rng.randint(10, width // 2), y1 + rng.randint(10, height // 2)
        side = max(width, height)
        padded = [round((x1 + (side - width) // 2) / side, 3), round((y1 + (side - height) // 2) / side, 3)]
        padded += [round((x2 + (side - width) // 2) / side, 3), round((y2 + (side - height) // 2) / side, 3)]
        data.append(
            {
                "dataset": subset,
                "question_id": position,
                "image": [f"{image}.jpg", f"{image}.jpg###[{x1}, {y1}, {x2}, {y2}]"],
                "conversations": [
                    {"from": "human", "value": "<image>\nWhat is in the box?" + viscot.BOX_INSTRUCTION},
                    {"from": "gpt", "value": json.dumps(padded)},
                    {"from": "human", "value": "<image>"},
                    {"from": "gpt", "value": "a thing"},
                ],
            }
        )
    path = folder / "viscot_363k.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=363_000)
    parser.add_argument("--images", type=int, default=2_000, help="distinct image files the rows point at")
    parser.add_argument("--shard", default="3/64")
    args = parser.parse_args()
    index, count = (int(part) for part in args.shard.split("/"))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        source = write_source(folder, args.rows, args.images)
        print(f"source: {args.rows:,} rows, {source.stat().st_size / 1e6:.0f} MB, {args.images:,} JPEGs")

        start = time.perf_counter()
        with open(source, encoding="utf-8") as handle:
            json.load(handle)
        floor = time.perf_counter() - start
        print(f"floor (json.load of the file)                {floor:7.2f} s")

        config = BuildConfig(source="viscot", source_path=source, per_subset_cap=10_000, num_shards=count)
        start = time.perf_counter()
        candidates = select_candidates(config, lambda reject: None)
        share = shard_share(candidates, index, count)
        select = time.perf_counter() - start
        print(f"selection of shard {args.shard} ({len(share):,} of {len(candidates):,})  {select:7.2f} s")

        start = time.perf_counter()
        resolved = [candidate.resolve() for _, candidate in share]
        resolve = time.perf_counter() - start
        print(f"resolving the share ({len(resolved):,} image headers)      {resolve:7.2f} s")

        start = time.perf_counter()
        every = sum(1 for _ in viscot.read(source))
        baseline = time.perf_counter() - start
        print(f"baseline: resolving every row ({every:,})     {baseline:7.2f} s")
        job = select + resolve
        print(f"a shard job's set-up: {job:.2f} s, {baseline / job:.1f}x faster than the baseline ({baseline:.2f} s)")


if __name__ == "__main__":
    main()
