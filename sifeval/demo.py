"""The whole loop offline, on bundled data and tiny random-weight models: build a small SIF set,
SFT and GRPO steps, merges, evaluation on the five embedded benchmark mirrors, the report.

Every stage is the real code path a user runs on real models; only the models are tiny and
random, so the scores are meaningless (and the parse-failure rates say why).
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console

from sifdata.progress import plain_console


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

    console = console or plain_console()
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
    runs += scripted_runs(out, mirrors, depth_model, eval_limit, console)

    console.rule("11. report (ours beside the published numbers, protocol differences flagged)")
    report = to_markdown(report_rows(load_results(runs)))
    (out / "report.md").write_text(report, encoding="utf-8")
    console.print(report, markup=False, soft_wrap=True)
    console.rule("12. the viewer: every sample with its focus boxes, and the build's chains")
    sites = write_viewers(out, data, runs, depth_model)
    for name, index in sites.items():
        console.print(f"  {name}: {index}")
    for shot in screenshots(sites, out, console):
        console.print(f"  screenshot: {shot}")
    console.rule(f"whole loop done in {time.perf_counter() - started:.0f} s; report: {out / 'report.md'}")
    return out / "report.md"


def scripted_runs(
    out: Path, mirrors: dict[str, Path], depth_model: Path, eval_limit: int, console: Console
) -> list[Path]:
    """VisCoT and V* answered by the scripted SIF model (:mod:`sifeval.scripted`: chains built
    from the ground truth, named so), through the real OpenAI-compatible path: the random-weight
    model writes no boxes, and this is what the viewer shows when a model does."""
    from sifdata.depth import DepthEstimator
    from sifeval.adapters import get_benchmark
    from sifeval.runner import load_samples, restart_run, run
    from sifeval.scripted import SCRIPTED_MODEL, ScriptedSIFServer, scripted_replies
    from sifmodel.backends import GenerationSettings, load
    from sifmodel.judge import MatchJudge

    console.rule(f"10b. a scripted SIF model ({SCRIPTED_MODEL}: right by construction, for the viewer)")
    estimator = DepthEstimator(str(depth_model), device="cpu")
    folders = []
    for name in ("viscot", "vstar"):
        bench = get_benchmark(name)
        if hasattr(bench, "judge"):
            bench.judge = MatchJudge()
        samples = load_samples(bench, mirrors[name])[:eval_limit]
        with ScriptedSIFServer(scripted_replies(bench, samples, estimator)) as server:
            spec = f"openai:{SCRIPTED_MODEL}@{server.base_url}"
            backend = load(spec, depth_model=str(depth_model), depth_device="cpu")
            folder = out / "eval" / f"{name}-scripted"
            restart_run(folder)  # its endpoint's port differs on every demo: a new run each time
            result = run(
                bench, backend, spec, folder, data_dir=mirrors[name], mode="sif", limit=eval_limit,
                settings=GenerationSettings(max_new_tokens=512), progress=False, samples=samples,
            )  # fmt: skip
        console.print(f"  {name}: score {result.metrics['score']:.1f} on {result.n} samples ({SCRIPTED_MODEL})")
        folders.append(folder)
    return folders


def write_viewers(out: Path, data: Path, runs: list[Path], depth_model: Path) -> dict[str, Path]:
    """The viewer sites of the demo's build and of each of its runs, under ``out/view``."""
    from sifdata.viewer.build import view_build
    from sifeval.view import view_runs

    sites = {"build": view_build(data, out / "view" / "build", progress=False).index}
    for run in runs:
        site = view_runs(
            [run], out / "view" / run.name, depth_model=str(depth_model), depth_device="cpu", progress=False
        )
        sites[run.name] = site.index
    return sites


def screenshots(sites: dict[str, Path], out: Path, console: Console) -> list[Path]:
    """Pictures of the viewer (the ones in the README): a VisCoT sample of the demo run, with its
    ground truth and the response's boxes, and a record of the build with its chain. Skipped,
    saying why, where no Chromium is installed."""
    from sifdata.browser import BrowserError, BrowserUnavailable, screenshot_page

    wanted = [("viscot-scripted", "viewer.png"), ("build", "viewer-build.png")]
    taken = []
    try:
        for name, file in wanted:
            if name in sites:
                url = sites[name].resolve().as_uri() + "#/item/0"
                taken.append(screenshot_page(url, out / file, ready="document.body.dataset.ready === 'item:0'"))
    except (BrowserUnavailable, BrowserError) as error:
        console.print(f"  no screenshot: {error}")
    return taken
