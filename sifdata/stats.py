"""``sifdata stats``: per-source counts, chain lengths, box sizes and a depth histogram (polars)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from sifdata.chain import parse_chain
from sifdata.shards import shard_files

DEPTH_BINS = 10


def _chain_facts(chain: str) -> dict[str, Any]:
    parsed = parse_chain(chain, strict=False)
    depths = [d for step in parsed.focus_steps for d in step.depths if d is not None]
    return {"focus_steps": len(parsed.focus_steps), "depths": depths, "strict": not parsed.issues}


def dataset_frame(folder: str | Path) -> pl.DataFrame:
    """One row per record with the facts the statistics need (no image bytes are read)."""
    files = shard_files(folder)
    if not files:
        raise FileNotFoundError(f"{folder} has no data/train-*.parquet shards")
    frame = pl.concat([pl.read_parquet(p, columns=["id", "source", "gt_boxes", "chain"]) for p in files])
    facts = [_chain_facts(chain) for chain in frame["chain"].to_list()]
    return frame.with_columns(
        pl.Series("focus_steps", [f["focus_steps"] for f in facts], dtype=pl.Int64),
        pl.Series("depths", [f["depths"] for f in facts], dtype=pl.List(pl.Float64)),
        pl.Series("strict", [f["strict"] for f in facts], dtype=pl.Boolean),
        pl.col("gt_boxes")
        .list.eval(
            (pl.element().arr.get(2) - pl.element().arr.get(0)) * (pl.element().arr.get(3) - pl.element().arr.get(1))
        )
        .list.sum()
        .alias("gt_area"),
        pl.col("gt_boxes").list.len().alias("gt_box_count"),
    )


def compute_stats(folder: str | Path) -> dict[str, Any]:
    frame = dataset_frame(folder)
    per_source = (
        frame.group_by("source")
        .agg(
            pl.len().alias("records"),
            pl.col("focus_steps").mean().alias("mean_steps"),
            pl.col("focus_steps").min().alias("min_steps"),
            pl.col("focus_steps").max().alias("max_steps"),
            pl.col("gt_box_count").mean().alias("mean_gt_boxes"),
            pl.col("gt_area").mean().alias("mean_gt_area"),
            pl.col("gt_area").median().alias("median_gt_area"),
            (~pl.col("strict")).sum().alias("non_strict"),
        )
        .sort("source")
    )
    depths = frame.select(pl.col("depths").explode()).drop_nulls()["depths"]
    edges = [i / DEPTH_BINS for i in range(DEPTH_BINS + 1)]
    counts = [0] * DEPTH_BINS
    for value in depths.to_list():
        counts[min(int(value * DEPTH_BINS), DEPTH_BINS - 1)] += 1
    return {
        "records": frame.height,
        "per_source": per_source.to_dicts(),
        "depth_histogram": {"edges": edges, "counts": counts},
        "focus_step_histogram": dict(
            sorted(frame.group_by("focus_steps").len().iter_rows())  # type: ignore[arg-type]
        ),
    }
