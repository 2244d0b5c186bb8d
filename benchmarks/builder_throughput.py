"""``sifdata build`` throughput with the offline writer and the depth maps given (synthetic
scenes carry their exact depth), one process.

Baseline (same run): generating the same scenes alone, which the build cannot beat; the
difference is the builder's own cost (planning, box depths, template writing, strict checks,
16-bit PNG encoding, journaling, parquet).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from sifdata.build.pipeline import BuildConfig, build
from sifdata.sources import synthetic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=2_000)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    start = time.perf_counter()
    for _ in synthetic.read(args.records):
        pass
    generate = time.perf_counter() - start
    print(f"baseline: generating {args.records:,} scenes      {args.records / generate:8.1f} records/s")
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        config = BuildConfig(source="synthetic", n=args.records, concurrency=args.concurrency)
        report = build(config, Path(tmp) / "out", progress=False)
        elapsed = time.perf_counter() - start
        assert report.records == args.records and report.dataset_complete
    print(
        f"sifdata build (offline writer, depth given) {args.records / elapsed:8.1f} records/s "
        f"({elapsed:.1f} s; {elapsed / generate:.1f}x the time of generating the scenes)"
    )
    print(f"builder's own cost: {(elapsed - generate) * 1000 / args.records:.2f} ms per record")


if __name__ == "__main__":
    main()
