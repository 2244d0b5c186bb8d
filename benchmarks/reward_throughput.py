"""Format + box IoU + depth consistency rewards on 200 GRPO groups of 8 completions, each group
with its own depth map on disk, one core.

Baseline (same run): the original's way: every reward parses the completion itself, and the
depth map is decoded from disk for every completion.
Targets: at most 10 ms per group, at least 4x faster than the baseline.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from pathlib import Path

import numpy as np

from sifdata.depth import DepthMap, load_depth_png, save_depth_png
from sifmodel.rewards import SIFRewards, box_iou_score, depth_consistency_score, format_score, parsed


def completion(rng: random.Random) -> str:
    steps = ["<think>"]
    for _ in range(rng.randint(2, 4)):
        x, y = rng.randint(0, 700) / 1000, rng.randint(0, 700) / 1000
        box = [x, y, x + rng.randint(50, 290) / 1000, y + rng.randint(50, 290) / 1000]
        coords = ",".join(f"{v:.3f}" for v in box)
        steps += [f'<area>[{{"bbox_2d":[{coords}],"depth":{rng.random():.3f}}}]</area>', "<text>I look here.</text>"]
    steps += ["</think>", "<answer>The red cup.</answer>"]
    text = "\n".join(steps)
    return text if rng.random() > 0.2 else text.replace("</think>", "")  # some malformed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--groups", type=int, default=200)
    parser.add_argument("--generations", type=int, default=8)
    parser.add_argument("--size", default="640x480", help="depth map size, WxH")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    width, height = (int(v) for v in args.size.split("x"))
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        groups = []
        for index in range(args.groups):
            depth = np.random.default_rng(index).random((height, width)).astype(np.float32)
            path = save_depth_png(depth, Path(tmp) / f"{index}_d.png")
            groups.append((str(path), [(0.2, 0.2, 0.5, 0.5)], [completion(rng) for _ in range(args.generations)]))

        start = time.perf_counter()
        for path, truth, completions in groups:
            for text in completions:  # the original: each reward parses, each completion decodes
                parsed.cache_clear()
                format_score(text)
                parsed.cache_clear()
                box_iou_score(text, truth)
                parsed.cache_clear()
                depth_consistency_score(text, DepthMap(load_depth_png(path)))
        baseline = (time.perf_counter() - start) / args.groups

        parsed.cache_clear()
        rewards = SIFRewards()
        start = time.perf_counter()
        for path, truth, completions in groups:
            n = len(completions)
            rewards.format(completions)
            rewards.box_iou(completions, gt_boxes=[truth] * n)
            rewards.depth_consistency(completions, depth_map=[path] * n)
        ours = (time.perf_counter() - start) / args.groups
    print(f"baseline (decode per completion): {baseline * 1000:7.2f} ms per group of {args.generations}")
    print(f"sifmodel rewards:                 {ours * 1000:7.2f} ms per group ({baseline / ours:.1f}x faster)")
    print(
        f"targets: <= 10 ms/group {'met' if ours <= 0.010 else 'NOT met'}; "
        f">= 4x {'met' if baseline / ours >= 4 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
