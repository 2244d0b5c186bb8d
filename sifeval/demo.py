"""The whole loop offline, on bundled data and tiny random-weight models: build a small SIF set,
SFT and GRPO steps, merges, evaluation on the five embedded benchmark mirrors, the report.

Every stage is the real code path a user runs on real models; only the models are tiny and
random, so the scores are meaningless (and the parse-failure rates say why).
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console


def run_loop(out: str | Path, *, records: int = 24, eval_limit: int = 8, console: Console | None = None) -> Path:
    from sifdata.demo import run_demo
    from sifdata.tiny_models import TINY_DEPTH_NAME
    from sifeval.adapters import get_benchmark
    from sifeval.mirrors import build_all
    from sifeval.report import load_results, report_rows, to_markdown
    from sifeval.runner import run
    from sifmodel.backends import GenerationSettings, load
    from sifmodel.config import GRPOSettings, SFTSettings, load_settings
    from sifmodel.grpo import train_grpo
    from sifmodel.judge import MatchJudge
    from sifmodel.merge import merge_adapter
    from sifmodel.sft import train_sft
    from sifmodel.tiny_models import TINY_QWEN_NAME, build_tiny_qwen2_5_vl

    console = console or Console()
    out = Path(out)
    started = time.perf_counter()
    run_demo(out, n=records, console=console)
    data = out / "sif-demo"
    depth_model = out / "models" / TINY_DEPTH_NAME

    console.rule("7. a tiny random-weight Qwen2.5-VL (stand-in for Qwen2.5-VL-7B-Instruct)")
    base = build_tiny_qwen2_5_vl(out / "models" / TINY_QWEN_NAME)
    cpu = ["bf16=false", "image_max_pixels=null", "logging_steps=1", "report_to=none"]

    console.rule("8. SFT (LoRA), then merge")
    sft = load_settings(
        SFTSettings,
        None,
        [
            *cpu,
            f"model={base}",
            f"data={data}",
            f"output_dir={out / 'runs/sft'}",
            "max_steps=4",
            "save_steps=4",
            "eval_fraction=0",
            "max_length=1024",
        ],
    )
    merged_sft = merge_adapter(train_sft(sft), out / "runs" / "sft-merged")

    console.rule("9. GRPO-SIF (four rewards, answer-match judge), then merge")
    grpo = load_settings(
        GRPOSettings,
        None,
        [
            *cpu,
            f"model={merged_sft}",
            f"data={data}",
            f"output_dir={out / 'runs/grpo'}",
            "max_steps=2",
            "save_steps=2",
            "num_generations=2",
            "max_completion_length=32",
            "per_device_train_batch_size=2",
            "max_samples=8",
            "judge.kind=match",
        ],
    )
    model = merge_adapter(train_grpo(grpo), out / "runs" / "sif-tiny", name="sif-tiny (demo)")

    console.rule("10. evaluate on the five embedded mirrors (SIF prompts, RGB + depth)")
    mirrors = build_all(out / "mirrors")
    spec = f"hf:{model}?device=cpu"
    backend = load(spec, depth_model=str(depth_model), depth_device="cpu")
    runs = []
    for name, folder in mirrors.items():
        bench = get_benchmark(name)
        if hasattr(bench, "judge"):
            bench.judge = MatchJudge()  # offline: answer agreement instead of a judge model
        result = run(
            bench,
            backend,
            spec,
            out / "eval" / name,
            data_dir=folder,
            mode="sif",
            limit=eval_limit,
            settings=GenerationSettings(max_new_tokens=64),
            resume=True,
            progress=False,
        )
        console.print(
            f"  {name}: score {result.metrics['score']:.1f} on {result.n} samples, "
            f"parse failures {100 * result.parse_failure_rate:.0f}%"
        )
        runs.append(out / "eval" / name)

    console.rule("11. report (ours beside the published numbers, protocol differences flagged)")
    report = to_markdown(report_rows(load_results(runs)))
    (out / "report.md").write_text(report, encoding="utf-8")
    console.print(report, markup=False, soft_wrap=True)
    console.rule(f"whole loop done in {time.perf_counter() - started:.0f} s; report: {out / 'report.md'}")
    return out / "report.md"
