"""``sifdata.load_dataset`` on a 50,000-record shard folder: cold (datasets builds its Arrow
cache), warm (cache hit, memory-mapped), and peak resident memory of each.

The folder is written straight into shards (no builder, no model) from synthetic scenes at
thumbnail size, every record's image bytes unique, so the figure is about loading rather than
about image bytes (which add a copy into the Arrow cache at disk speed).
Baseline (same run): pyarrow reading the same parquet files into memory.
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import resource
import tempfile
import time
from pathlib import Path


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_folder(folder: Path, records: int, shards: int, side: int) -> None:
    from PIL import Image

    from sifdata.builder.expand import plan_focus
    from sifdata.builder.pipeline import finalize
    from sifdata.builder.writer import OfflineTemplateWriter, WriteRequest, attach_depths
    from sifdata.depth import DepthMap, depth_png_bytes
    from sifdata.shards import shard_name, write_shard
    from sifdata.sources import synthetic

    pool = []
    for index in range(200):
        scene = synthetic.scene(index)
        thumb = scene.image.resize((side, side * scene.height // scene.width))
        rgb = thumb  # encoded per record below, so that no two records share bytes
        depth = DepthMap(scene.depth)
        small_depth = Image.fromarray(scene.depth).resize(thumb.size)
        plan = attach_depths(plan_focus(scene.gt_boxes, scene.width, scene.height, seed=index), depth.box_mean)
        request = WriteRequest(scene.key, scene.question, scene.answer, plan, seed=index)
        import numpy as np

        pool.append(
            (scene, rgb, depth_png_bytes(np.asarray(small_depth)), OfflineTemplateWriter().write(request), thumb.size)
        )

    def rows(shard: int):
        for number in range(shard, records, shards):
            scene, thumb, depth, chain, size = pool[number % len(pool)]
            picture = thumb.copy()
            for bit in range(16):  # the record number drawn into the first row: unique bytes
                picture.putpixel((bit, 0), (255, 255, 255) if number >> bit & 1 else (0, 0, 0))
            buffer = io.BytesIO()
            picture.save(buffer, format="PNG")
            rgb = buffer.getvalue()
            yield {
                "id": f"bench/{number:06d}",
                "source": "synthetic",
                "source_id": str(number),
                "question": scene.question,
                "answer": scene.answer,
                "gt_boxes": [[round(v, 3) for v in box] for box in scene.gt_boxes],
                "width": size[0],
                "height": size[1],
                "image": {"bytes": rgb, "path": "x.png"},
                "depth_image": {"bytes": depth, "path": "x_d.png"},
                "chain": chain,
                "provenance": {
                    "writer_kind": "offline-template",
                    "writer_model": "templates-v1",
                    "seed": number,
                    "depth_model": "synthetic-exact",
                    "library_version": "bench",
                },
                "extra": json.dumps({}),
            }

    for shard in range(shards):
        write_shard(rows(shard), folder / "data" / shard_name(shard, shards))
    finalize(folder)


def timed_load(folder: str, cache: str, queue: multiprocessing.Queue) -> None:
    import os

    os.environ["HF_DATASETS_CACHE"] = cache
    import sifdata

    before = rss_mb()
    start = time.perf_counter()
    dataset = sifdata.load_dataset(folder)
    elapsed = time.perf_counter() - start
    first = sifdata.SIFRecord.from_row(dataset[0])
    queue.put((elapsed, len(dataset), rss_mb() - before, first.id))


def timed_pyarrow(folder: str, queue: multiprocessing.Queue) -> None:
    import pyarrow.parquet as pq

    before = rss_mb()
    start = time.perf_counter()
    table = pq.read_table(Path(folder) / "data")
    queue.put((time.perf_counter() - start, table.num_rows, rss_mb() - before, ""))


def run(target, *args):
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: honest memory figures
    queue = context.Queue()
    process = context.Process(target=target, args=(*args, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--side", type=int, default=64, help="thumbnail width in pixels")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder, cache = Path(tmp) / "sif", Path(tmp) / "cache"
        start = time.perf_counter()
        make_folder(folder, args.records, args.shards, args.side)
        size = sum(p.stat().st_size for p in (folder / "data").glob("*.parquet")) / 1e6
        print(
            f"wrote {args.records:,} records in {args.shards} shards ({size:.0f} MB) "
            f"in {time.perf_counter() - start:.1f} s"
        )
        arrow = run(timed_pyarrow, str(folder))
        print(f"baseline pyarrow read_table:      {arrow[0]:6.2f} s, +{arrow[2]:6.0f} MB resident")
        worst = 0.0
        for label in ("cold (builds Arrow cache)", "warm (cache hit, mmap)"):
            elapsed, rows, memory, _first = run(timed_load, str(folder), str(cache))
            worst = max(worst, elapsed)
            assert rows == args.records, rows
            print(
                f"sifdata.load_dataset {label:26s} {elapsed:6.2f} s, +{memory:6.0f} MB resident "
                f"({elapsed / arrow[0]:.1f}x the pyarrow read)"
            )
        print(f"target < 2 s, cold and warm: {'met' if worst < 2 else 'NOT met'}")


if __name__ == "__main__":
    main()
