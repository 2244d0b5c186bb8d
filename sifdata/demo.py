"""The offline end-to-end demo: everything the data layer does, on bundled data and a tiny model."""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console

from sifdata.progress import plain_console


def run_demo(out: str | Path, *, n: int = 60, console: Console | None = None) -> dict[str, object]:
    """Build ``n`` records (bundled photos + synthetic scenes) with a tiny random depth model,
    then validate, load, summarize and export them. Returns what it measured."""
    from sifdata import export, load_dataset
    from sifdata.builder.pipeline import BuildConfig, build
    from sifdata.depth import DepthEstimator
    from sifdata.schema import SIFRecord
    from sifdata.stats import compute_stats
    from sifdata.tiny_models import TINY_DEPTH_NAME, build_tiny_depth_anything
    from sifdata.validate import validate_folder

    console = console or plain_console()
    out = Path(out)
    started = time.perf_counter()
    console.rule("1. a tiny random-weight Depth Anything (stand-in for Depth-Anything-V2-Small)")
    depth_model = build_tiny_depth_anything(out / "models" / TINY_DEPTH_NAME)
    console.print(f"model folder: {depth_model}")

    console.rule(f"2. build {n} SIF records with the offline template writer")
    config = BuildConfig(source="demo", n=n, seed=0, num_shards=2, depth_model=str(depth_model), depth_device="cpu")
    dataset_dir = out / "sif-demo"
    report = build(config, dataset_dir, estimator=DepthEstimator(str(depth_model), device="cpu"))
    console.print(f"{report.records} records, {report.rejects} rejected, complete: {report.dataset_complete}")

    console.rule("3. validate")
    validation = validate_folder(dataset_dir)
    console.print(f"valid: {validation.ok} ({validation.records} records, {len(validation.errors)} problems)")
    if not validation.ok:
        for issue in validation.errors[:10]:
            console.print(f"  {issue.where} [{issue.check}] {issue.reason}")
        raise SystemExit(1)

    console.rule("4. load with datasets and check every row as a SIFRecord")
    dataset = load_dataset(dataset_dir)
    records = [SIFRecord.from_row(row) for row in dataset]
    console.print(f"{len(records)} rows; first: {records[0].id}: {records[0].question}")
    console.print(records[0].chain, soft_wrap=True, markup=False)

    console.rule("5. statistics")
    stats = compute_stats(dataset_dir)
    for row in stats["per_source"]:
        console.print(f"  {row['source']}: {row['records']} records, {row['mean_steps']:.2f} focus steps on average")

    console.rule("6. exports")
    exports = {
        "llamafactory": export.to_llamafactory(dataset_dir, out / "exports" / "llamafactory"),
        "trl-sft": export.to_trl_sft(dataset_dir, out / "exports" / "trl-sft"),
        "trl-grpo": export.to_trl_grpo(dataset_dir, out / "exports" / "trl-grpo"),
        "sif50k": export.to_sif50k(dataset_dir, out / "exports" / "sif50k"),
    }
    for name, path in exports.items():
        console.print(f"  {name}: {path}")
    elapsed = time.perf_counter() - started
    console.rule(f"done in {elapsed:.1f} s")
    return {"records": report.records, "rejects": report.rejects, "valid": validation.ok, "seconds": elapsed}
