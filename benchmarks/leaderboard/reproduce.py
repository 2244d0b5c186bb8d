"""Leaderboard reproduction: run all five benchmarks for one model by their official protocols
and print our numbers beside the published ones (sifeval/data/published.yaml, with sources),
flagging every published row whose protocol differs from ours.

    python benchmarks/leaderboard/reproduce.py --model openai:Qwen/Qwen2.5-VL-7B-Instruct@http://127.0.0.1:8000/v1 \\
        --data-root /data/benchmarks --out runs/leaderboard/qwen7b

``--data-root`` holds one folder per benchmark in the upstream layout (cvbench, vstar, sat,
spatialbench, viscot); a missing folder means the Hub (SpatialBench is gated: accept its licence
and set HF_TOKEN). ``--mirrors`` runs on the embedded mirrors instead (an offline smoke test).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sifeval.adapters import get_benchmark
from sifeval.mirrors import build_all, mirrored
from sifeval.report import load_results, report_rows, to_markdown
from sifeval.runner import ResponseCache, run
from sifmodel.backends import GenerationSettings, load
from sifmodel.config import JudgeSettings
from sifmodel.judge import make_judge


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="hf:PATH, openai:MODEL@URL or vllm:PATH")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--data-root", type=Path, help="folders named cvbench, vstar, sat, spatialbench, viscot")
    parser.add_argument("--mirrors", action="store_true", help="use the embedded mirrors (offline smoke test)")
    parser.add_argument("--mode", default="sif", choices=("sif", "sif-rgb", "plain"))
    parser.add_argument("--judge", default="llm", choices=("llm", "match"), help="VisCoT answer judge")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--max-new-tokens", type=int, default=2048)
    parser.add_argument("--depth-model", default="depth-anything/Depth-Anything-V2-Small-hf")
    parser.add_argument("--benchmarks", default=",".join(mirrored()))
    args = parser.parse_args()

    folders = build_all(args.out / "mirrors") if args.mirrors else {}
    backend = load(args.model, depth_model=args.depth_model if args.mode == "sif" else None)
    runs = []
    for name in args.benchmarks.split(","):
        data = folders.get(name) or (
            args.data_root / name if args.data_root and (args.data_root / name).is_dir() else None
        )
        bench = get_benchmark(name)
        if hasattr(bench, "judge"):
            bench.judge = make_judge(JudgeSettings(kind=args.judge))
        result = run(
            bench,
            backend,
            args.model,
            args.out / name,
            data_dir=data,
            mode=args.mode,
            limit=args.limit,
            settings=GenerationSettings(max_new_tokens=args.max_new_tokens),
            resume=True,
            cache=ResponseCache(),
        )
        failures = f"parse failures {100 * result.parse_failure_rate:.1f}%"
        errors = f"request errors {100 * result.request_error_rate:.1f}%"
        print(f"{name}: {result.metrics['score']:.1f} (n={result.n}, {failures}, {errors})")
        runs.append(args.out / name)
    report = to_markdown(report_rows(load_results(runs)))
    (args.out / "leaderboard.md").write_text(report, encoding="utf-8")
    print(report)


if __name__ == "__main__":
    main()
