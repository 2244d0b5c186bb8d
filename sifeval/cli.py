"""``sifeval``: run, list, report, re-score and merge benchmark runs; build the local mirrors."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.table import Table

from sifdata.progress import labelled, plain_console
from sifdata.terminal import fail
from sifmodel.backends import model_spec_help
from sifmodel.judge import JUDGES
from sifmodel.prompts import prompt_mode

if TYPE_CHECKING:
    from sifeval.adapters import Benchmark
    from sifeval.agents import ZoomSettings
    from sifeval.choice_judge import ChoiceJudge

app = typer.Typer(
    help="Evaluate SIF models on five benchmarks by their official protocols. "
    "Errors print one line; --debug shows the traceback.",
    no_args_is_help=True,
)
console = plain_console()
errors = plain_console(stderr=True, soft_wrap=True)  # a message is one line, however long


def _fail(message: str) -> NoReturn:
    fail(message)


@app.callback()
def _main(verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False) -> None:
    level = logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


JUDGE_HELP = f"one of the installed judges ({JUDGES.listing(fallback='llm, match')}); llm reads SIF_JUDGE_*"
CHOICE_JUDGE_HELP = (
    "multiple-choice benchmarks: off (the official protocols), or llm: replies the rules cannot map to an "
    "option go to a judge model (SIF_JUDGE_BASE_URL, SIF_JUDGE_MODEL, SIF_JUDGE_API_KEY), VLMEvalKit's convention"
)


def _bench(
    name: str, protocol: str | None, judge: str, box_frame: str | None = None, choice_judge: str = "off"
) -> Benchmark:
    from sifeval.adapters import MultipleChoiceBenchmark, get_benchmark

    try:
        bench = get_benchmark(name, protocol)
    except (KeyError, ValueError) as error:
        _fail(str(error.args[0] if error.args else error))
    if choice_judge not in ("off", "llm"):
        _fail(f"--choice-judge takes off or llm, not {choice_judge!r}")
    if choice_judge == "llm":
        if not isinstance(bench, MultipleChoiceBenchmark):
            _fail(f"--choice-judge applies to multiple-choice benchmarks (cvbench, vstar, sat), not {name}")
        assert isinstance(bench, MultipleChoiceBenchmark)
        bench.choice_judge = _choice_judge()
    if hasattr(bench, "judge"):
        from sifmodel.config import JudgeSettings
        from sifmodel.judge import make_judge

        try:
            settings = JudgeSettings(kind=judge)
        except ValueError:
            _fail(f"--judge takes one of the installed judges ({', '.join(JUDGES.names())}), not {judge!r}")
        try:
            bench.judge = make_judge(settings)  # type: ignore[attr-defined]
        except ValueError as error:
            _fail(f"{error}; or --judge match to grade answers by rule, offline (weaker than a judge model)")
    if box_frame is not None:
        if not hasattr(bench, "box_frame"):
            _fail(f"--box-frame applies to benchmarks that score boxes (viscot), not {name}")
        if box_frame not in ("per-axis", "padded-square"):
            _fail("--box-frame takes per-axis or padded-square")
        bench.box_frame = box_frame  # type: ignore[attr-defined]
    return bench


def _choice_judge() -> ChoiceJudge:
    from sifdata.hub import sif_home
    from sifeval.choice_judge import ChoiceJudge
    from sifmodel.judge import LLMJudge

    try:
        # Verdicts are kept on disk by the judge's model and endpoint, the prompt and the reply:
        # a rerun or a re-score asks the judge nothing it has answered before.
        return ChoiceJudge(LLMJudge(concurrency=16, cache_dir=sif_home() / "judge-cache"))
    except ValueError as error:
        _fail(f"--choice-judge llm: {error}")
        raise


def _print_result(result: object) -> None:
    data = result.to_json()  # type: ignore[attr-defined]
    table = Table(title=f"{data['benchmark']} ({data['mode']}, {data['protocol']}): n={data['n']}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in data["metrics"].items():
        table.add_row(key, "-" if value is None else f"{value:.2f}")
    table.add_row("parse failures", f"{100 * data['parse_failure_rate']:.1f}%" if data["n_scored"] else "-")
    table.add_row("request errors", f"{100 * data['request_error_rate']:.1f}%" if data["n"] else "-")
    if data.get("judge_failures"):
        table.add_row("judge failures", str(data["judge_failures"]))
    agent = data.get("agent") or {}
    if agent.get("samples"):
        table.add_row("zoom: turns / calls per sample", f"{agent['turns_mean']:.2f} / {agent['tool_calls_mean']:.2f}")
        table.add_row("zoom: samples that zoomed", f"{100 * agent['zoomed_share']:.1f}%")
        table.add_row("zoom: refused calls, out of turns", f"{agent['tool_errors']}, {agent['out_of_turns']}")
        if agent.get("zoom_area_share_median") is not None:
            table.add_row("zoom: median box, % of image", f"{100 * agent['zoom_area_share_median']:.1f}%")
        if agent.get("last_zoom_holds_truth_share") is not None:
            held = f"{100 * agent['last_zoom_holds_truth_share']:.1f}% of {agent['last_zoom_with_truth']}"
            table.add_row("zoom: last zoom holds the truth", held)
    if data.get("conflicting_replies"):
        table.add_row("letter/text conflicts", str(data["conflicting_replies"]))
    if (data.get("protocol_options") or {}).get("choice_judge"):
        table.add_row("choice judge calls", str(data.get("choice_judge_calls", 0)))
    console.print(table)
    for note in data["notes"]:
        console.print(f"note: {note}")


@app.command()
def run(
    bench: Annotated[str, typer.Option("--bench", help="cvbench, vstar, sat, spatialbench, viscot")],
    model: Annotated[str, typer.Option(help=model_spec_help())],
    out: Annotated[Path, typer.Option(help="run folder (samples.jsonl, results.json)")],
    data: Annotated[Path | None, typer.Option(help="local folder in the upstream layout (default: the Hub)")] = None,
    mode: Annotated[str, typer.Option(help="sif (RGB + depth + SIF instruction), sif-rgb or plain")] = "sif",
    protocol: Annotated[str | None, typer.Option(help="the benchmark's protocol (default: official)")] = None,
    limit: Annotated[int | None, typer.Option(help="the first N samples")] = None,
    shard: Annotated[
        str | None, typer.Option(help="i/n: every n-th sample from i (merge with `sifeval merge`)")
    ] = None,
    resume: Annotated[bool, typer.Option(help="continue a run: keep answered samples, retry failed ones")] = False,
    restart: Annotated[
        bool, typer.Option("--restart", help="start the run in --out over: its samples are deleted, nothing kept")
    ] = False,
    max_new_tokens: int = 2048,
    temperature: float = 0.0,
    depth_model: Annotated[str, typer.Option(help="estimates depth for sif mode where a benchmark has none")] = (
        "depth-anything/Depth-Anything-V2-Small-hf"
    ),
    judge: Annotated[str, typer.Option(help=f"answer judge for VisCoT: {JUDGE_HELP}")] = "llm",
    box_frame: Annotated[
        str | None,
        typer.Option(
            help="VisCoT: the frame the model writes boxes in: per-axis (default), or padded-square for "
            "checkpoints trained on the published SIF-50K"
        ),
    ] = None,
    choice_judge: Annotated[str, typer.Option(help=CHOICE_JUDGE_HELP)] = "off",
    cache: Annotated[bool, typer.Option(help="reuse responses for identical (model, request)")] = True,
    progress: bool = True,
    agent: Annotated[
        str | None,
        typer.Option(
            help="zoom: let the model call a zoom-in tool while it reasons (the crops go back to it) before it "
            "answers; scored by the benchmark's own protocol"
        ),
    ] = None,
    max_turns: Annotated[int, typer.Option(help="--agent: replies asked per sample at most (then: no answer)")] = 6,
    tool_format: Annotated[
        str, typer.Option(help="--agent: qwen (tool declared in the system prompt, calls read from the reply) or api")
    ] = "qwen",
    zoom_frame: Annotated[
        str, typer.Option(help="--agent: how a call's bbox_2d reads: pixel, normalized-1000 or normalized (0-1)")
    ] = "pixel",
    agent_prompts: Annotated[
        Path | None,
        typer.Option(help="--agent: a JSON file of {system, instruction, followup} replacing DeepEyes' prompts"),
    ] = None,
) -> None:
    """Evaluate a model on one benchmark; writes OUT/samples.jsonl as it goes and OUT/results.json."""
    from sifdata.depth import DepthModelUnavailable
    from sifdata.files import FolderBusy
    from sifeval.driver import RunAborted
    from sifeval.runner import ResponseCache
    from sifeval.runner import run as run_benchmark
    from sifmodel.backends import DepthProvider, GenerationSettings, ModelUnavailable, load

    try:
        asked_mode = prompt_mode(mode)
    except ValueError:
        _fail("--mode takes sif, sif-rgb or plain")
    shard_spec = None
    if shard:
        try:
            index, count = (int(v) for v in shard.split("/"))
        except ValueError:
            _fail(f"--shard takes i/n, got {shard!r}")
        if not 0 <= index < count:
            _fail("--shard i/n needs 0 <= i < n")
        shard_spec = (index, count)
    if resume and restart:
        _fail("--resume continues the run in --out, --restart deletes it: give one of them")
    adapter = _bench(bench, protocol, judge, box_frame, choice_judge)
    from sifeval.runner import holds_samples, load_samples, restart_run, run_mode

    zoom = _zoom_settings(agent, max_turns, tool_format, zoom_frame, agent_prompts)

    try:  # everything that can be checked without the model, before any model is loaded
        if restart:
            removed = restart_run(out)
            console.print(f"--restart: removed {', '.join(p.name for p in removed) or 'nothing'} from {out}")
        elif holds_samples(out) and not resume:
            _fail(
                f"{out / 'samples.jsonl'} holds a run: pass --resume to continue it, --restart to start it over "
                "(its samples are deleted), or choose another --out"
            )
        samples = load_samples(adapter, data)
    except (FileNotFoundError, ValueError, FolderBusy) as error:
        _fail(str(error))
    depth = None
    if run_mode(adapter, asked_mode, zoom) == "sif" and not adapter.provides_depth:
        depth = DepthProvider(depth_model)
        try:  # before any work: a depth model that cannot load fails every request otherwise
            depth.ensure_available()
        except DepthModelUnavailable as error:
            _fail(str(error))
    try:
        backend = load(model, depth=depth)
    except (ModelUnavailable, ImportError, ValueError) as error:
        _fail(str(error))
    try:
        result = run_benchmark(
            adapter,
            backend,
            model,
            out,
            data_dir=data,
            mode=asked_mode,
            settings=GenerationSettings(max_new_tokens=max_new_tokens, temperature=temperature),
            limit=limit,
            shard=shard_spec,
            resume=resume,
            cache=ResponseCache() if cache else None,
            progress=progress,
            samples=samples,
            agent=zoom,
        )
    except RunAborted as error:
        _fail(f"run stopped: {error}. Scored samples are kept in {out}; fix the cause, then rerun with --resume")
    except (FileExistsError, FileNotFoundError, ValueError, FolderBusy) as error:
        _fail(str(error))
    _print_result(result)
    console.print(f"results: {out / 'results.json'}")
    if result.request_errors:
        _fail(f"{result.request_errors} samples have no response (reasons in samples.jsonl): rerun with --resume")
    if result.judge_failures:
        _fail(f"{result.judge_failures} answers were not graded by the judge: `sifeval rescore {out}` grades them")


def _zoom_settings(
    agent: str | None, max_turns: int, tool_format: str, zoom_frame: str, prompts: Path | None
) -> ZoomSettings | None:
    """The zoom agent's settings from the command line, or one line saying what is wrong."""
    from sifeval.agents import BOX_FRAMES, DEEPEYES, TOOL_FORMATS

    if agent is None:
        return None
    if agent != "zoom":
        _fail(f"--agent takes zoom, not {agent!r}")
    if tool_format not in TOOL_FORMATS:
        _fail(f"--tool-format takes {' or '.join(TOOL_FORMATS)}, not {tool_format!r}")
    if zoom_frame not in BOX_FRAMES:
        _fail(f"--zoom-frame takes {', '.join(BOX_FRAMES)}, not {zoom_frame!r}")
    texts: dict[str, str] = {}
    if prompts is not None:
        try:
            loaded = json.loads(prompts.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            _fail(f"--agent-prompts {prompts}: {error}")
        unknown = sorted(set(loaded) - {"system", "instruction", "followup"}) if isinstance(loaded, dict) else ["?"]
        if unknown or not all(isinstance(value, str) for value in loaded.values()):
            _fail(f"--agent-prompts {prompts} must be a JSON object of texts named system, instruction, followup")
        texts = loaded
    try:
        return dataclasses.replace(
            DEEPEYES,
            max_turns=max_turns,
            tool_format=tool_format,
            box_frame=zoom_frame,
            **texts,  # type: ignore[arg-type]
        )
    except ValueError as error:
        _fail(str(error))


@app.command(name="list")
def list_command() -> None:
    """The benchmarks, their sources and protocols."""
    from sifeval.adapters import list_benchmarks

    table = Table()
    for column in ("name", "benchmark", "Hub id", "split", "licence", "protocols"):
        table.add_column(column)
    for cls in list_benchmarks():
        source = cls.source
        gated = " (gated)" if source.gated else ""
        protocols = ", ".join(p + (" *" if p == cls.default_protocol else "") for p in cls.protocols)
        table.add_row(cls.name, cls.title, source.hub_id + gated, source.split, source.license, protocols)
    wide = plain_console(width=max(console.width, 160))  # Hub ids and licences are not to be cut
    wide.print(table)
    wide.print("* default protocol")


@app.command()
def report(
    runs: Annotated[list[Path], typer.Argument(help="run folders (or results.json files)")],
    format: Annotated[str, typer.Option(help="md or html")] = "md",
    out: Annotated[Path | None, typer.Option(help="write the report here (default: print)")] = None,
    published: Annotated[bool, typer.Option(help="add published numbers beside ours")] = True,
) -> None:
    """A side-by-side table of runs and published numbers, per category."""
    from sifeval.report import load_results, report_rows, to_html, to_markdown

    if format not in ("md", "html"):
        _fail(f"--format takes md or html, not {format!r}")
    if out is not None and out.suffix.lower() not in (f".{format}", ".markdown" if format == "md" else ".htm", ""):
        _fail(f"{out} does not name a {format} file: use --out with .{format}, or --format to match")

    skipped: list[str] = []
    try:
        tables = report_rows(load_results(list(runs), skipped), with_published=published)
    except (FileNotFoundError, ValueError) as error:
        _fail(str(error))
    if skipped:
        errors.print(f"not runs (no results.json), left out: {', '.join(skipped)}", style="yellow")
    text = to_html(tables) if format == "html" else to_markdown(tables)
    if out:
        out.write_text(text, encoding="utf-8")
        console.print(f"wrote {out}")
    else:
        print(text)


@app.command()
def view(
    runs: Annotated[list[Path], typer.Argument(help="a run folder, or two runs of one benchmark to compare")],
    out: Annotated[Path, typer.Option(help="the site folder to write (open OUT/index.html)")],
    data: Annotated[Path | None, typer.Option(help="the benchmark's data (default: the folder the run used)")] = None,
    depth_model: Annotated[
        str | None, typer.Option(help="estimate depth images for samples that bring none (a Depth Anything model)")
    ] = None,
    depth_device: Annotated[str | None, typer.Option(help="device for --depth-model")] = None,
    serve: Annotated[bool, typer.Option("--serve", help="then serve the site on loopback until Ctrl-C")] = False,
    port: Annotated[int, typer.Option(help="port for --serve")] = 8765,
    force: Annotated[
        bool, typer.Option("--force", help="write the site beside files already in --out (none is changed or deleted)")
    ] = False,
) -> None:
    """A static site paging through a run's samples: the image with every focus step's boxes, the
    ground truth, the depth image, question, target, response, answer and score; filters by
    status, category and text. Two runs: side by side, opening on their disagreements."""
    from sifdata.depth import DepthModelUnavailable
    from sifdata.viewer import serve_site
    from sifeval.view import view_runs

    try:
        site = view_runs(runs, out, data_dir=data, depth_model=depth_model, depth_device=depth_device, force=force)
    except (FileNotFoundError, ValueError, KeyError, DepthModelUnavailable) as error:
        _fail(str(error.args[0] if isinstance(error, KeyError) and error.args else error))
        return
    console.print(
        f"wrote {site.items} samples to {site.index} ({site.pictures_written} pictures made, "
        f"{site.pictures_reused} reused)"
    )
    for note in site.notes:
        errors.print(labelled("warning:", "yellow", note), highlight=False)
    if site.picture_errors:
        errors.print(f"{site.picture_errors} pictures could not be read: their samples say why", style="yellow")
    if serve:
        try:
            serve_site(out, port=port)
        except OSError as error:
            _fail(str(error))


@app.command()
def rescore(
    run_dir: Annotated[Path | None, typer.Argument(help="a run folder to re-score in place")] = None,
    bench: Annotated[str | None, typer.Option("--bench", help="benchmark (default: the run's, or the log's)")] = None,
    from_lmms_eval: Annotated[
        Path | None,
        typer.Option(help="an lmms-eval --log_samples file, a folder of them, or lmms-eval's --output_path"),
    ] = None,
    data: Annotated[
        list[str] | None,
        typer.Option(help="[TASK=]DIR: the folder an lmms-eval task read, to join its rows by doc_id (repeatable)"),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="write the re-scored run(s) here")] = None,
    judge: Annotated[str, typer.Option(help=f"answer judge for VisCoT: {JUDGE_HELP}")] = "llm",
    choice_judge: Annotated[
        str | None, typer.Option(help=CHOICE_JUDGE_HELP + " (default: as the run did)", show_default=False)
    ] = None,
) -> None:
    """Score saved responses again without the model, or lmms-eval's sample logs by the official protocols."""
    from sifeval.rescore import rescore_run

    if from_lmms_eval is not None:
        if out is None:
            _fail("--from-lmms-eval needs --out")
        _rescore_lmms_eval(from_lmms_eval, out, bench, data or [])  # type: ignore[arg-type]
        return
    if run_dir is None:
        _fail("give a run folder or --from-lmms-eval PATH")
        return
    previous = json.loads((run_dir / "results.json").read_text())
    name = bench or previous["benchmark"]
    recorded = previous.get("protocol_options") or {}
    frame = recorded.get("box_frame")
    used = recorded.get("choice_judge")
    bench_adapter = _bench(name, previous.get("protocol"), judge, frame, choice_judge or ("llm" if used else "off"))
    live = getattr(bench_adapter, "choice_judge", None)
    if choice_judge is None and live is not None and live.model != used:
        _fail(
            f"this run's choice judge was {used}, SIF_JUDGE_MODEL is {live.model}: pass --choice-judge llm to "
            f"re-score with {live.model}, or --choice-judge off for the official protocol"
        )
    from sifdata.files import FolderBusy

    try:
        _print_result(rescore_run(bench_adapter, run_dir, out))  # type: ignore[arg-type]
    except FolderBusy as error:
        _fail(str(error))


def _rescore_lmms_eval(source: Path, out: Path, bench: str | None, data: list[str]) -> None:
    from sifeval.lmms_logs import rescore_logs

    folders: dict[str, str] = {}
    for item in data:
        task, _, folder = item.rpartition("=")
        folders[task] = folder
    from sifdata.files import FolderBusy

    try:
        outcomes = rescore_logs(source, out, bench, folders)
    except (FileNotFoundError, ValueError, FolderBusy) as error:
        _fail(str(error))
        return
    for outcome in outcomes:
        name = f"{outcome.log.name} ({outcome.task or 'unknown task'})"
        if outcome.skipped:
            console.print(labelled("skipped", "yellow", f"{name}: {outcome.skipped}"))
        elif outcome.error:
            errors.print(labelled("not scored", "bold red", f"{name}: {outcome.error}"))
        else:
            lmms = f"; lmms-eval reported {outcome.lmms_eval_figure}" if outcome.lmms_eval_figure else ""
            console.print(f"{name}: official score {_figure(outcome.score)}{lmms} -> {outcome.out}")
    if any(outcome.error for outcome in outcomes) or not any(outcome.out and not outcome.error for outcome in outcomes):
        raise typer.Exit(1)


def _figure(value: float | None) -> str:
    return "n/a" if value is None or value != value else f"{value:.2f}"


@app.command("lmms-eval-tasks")
def lmms_eval_tasks() -> None:
    """Print the folder of sifthinker's lmms-eval tasks (sif_cvbench, sif_vstar, sif_sat and their _sif_rgb twins), for
    lmms-eval's --include_path."""
    from importlib.resources import files

    print(Path(str(files("sifeval") / "lmms_eval_tasks")))


@app.command()
def merge(
    runs: Annotated[list[Path], typer.Argument(help="run folders of --shard i/n jobs")],
    out: Annotated[Path, typer.Option(help="the merged run folder")],
) -> None:
    """Combine sharded runs into one (each sample once) and aggregate (nothing is graded again:
    the parts' grades are kept, so no judge is needed)."""
    from sifeval.rescore import merge_runs

    first = json.loads((runs[0] / "results.json").read_text())
    frame = (first.get("protocol_options") or {}).get("box_frame")
    bench = _bench(first["benchmark"], first.get("protocol"), "match", frame)  # no grading: no judge model
    if hasattr(bench, "recorded_choice_judge"):  # merging re-scores nothing: the shards' judge is recorded
        bench.recorded_choice_judge = (first.get("protocol_options") or {}).get("choice_judge")
    from sifdata.files import FolderBusy

    try:
        _print_result(merge_runs(bench, runs, out))  # type: ignore[arg-type]
    except (ValueError, FolderBusy) as error:
        _fail(str(error))


@app.command()
def compare(
    run_a: Annotated[Path, typer.Argument(help="the first run folder (A)")],
    run_b: Annotated[Path, typer.Argument(help="the second run folder (B) of the same benchmark, protocol and data")],
    as_json: Annotated[bool, typer.Option("--json", help="print the comparison as JSON")] = False,
    output_format: Annotated[str, typer.Option("--format", help="table (the terminal) or html")] = "table",
    out: Annotated[Path | None, typer.Option(help="write the JSON or HTML here instead of printing it")] = None,
) -> None:
    """Two runs paired on their questions: each figure's difference (B - A) with its 95% interval
    and a paired test (McNemar's exact test for a plain accuracy, a paired bootstrap otherwise),
    and the questions that flipped."""
    from sifeval.compare import NotPairable, compare_runs, to_html

    if output_format not in ("table", "html"):
        _fail("--format takes table or html")
    try:
        comparison = compare_runs(run_a, run_b)
    except (NotPairable, FileNotFoundError, KeyError) as error:
        _fail(str(error.args[0] if isinstance(error, KeyError) and error.args else error))
        return
    text = None
    if as_json:
        text = json.dumps(comparison.to_json(), indent=2, allow_nan=False) + "\n"
    elif output_format == "html":
        text = to_html(comparison)
    if text is not None:
        if out is None:
            print(text, end="")
        else:
            out.write_text(text, encoding="utf-8")
            console.print(f"wrote {out}")
        return
    table = Table(title=f"{comparison.benchmark}: B - A on {comparison.paired} paired samples")
    for column in ("figure", "A", "B", "B - A", "95% interval", "p", "test"):
        table.add_column(column, justify="left" if column in ("figure", "test") else "right")
    for d in comparison.differences:
        table.add_row(
            d.metric, f"{d.a:.1f}", f"{d.b:.1f}", f"{d.difference:+.1f}", f"[{d.low:+.1f}, {d.high:+.1f}]",
            f"{d.p_value:.3g}", d.test,
        )  # fmt: skip
    console.print(table)
    console.print(
        f"flipped: {len(comparison.right_to_wrong)} right to wrong, {len(comparison.wrong_to_right)} wrong to right "
        f"(side by side: sifeval view {run_a} {run_b} --out SITE)"
    )
    if comparison.only_a or comparison.only_b:
        console.print(f"not paired: {comparison.only_a} samples only in A, {comparison.only_b} only in B")


@app.command()
def mirror(
    name: Annotated[str, typer.Argument(help="a benchmark name, or all")],
    out: Annotated[Path, typer.Option(help="folder to write")],
) -> None:
    """Build the tiny local mirror(s) in the upstream layout (synthetic scenes, known answers)."""
    from sifeval.mirrors import build_all, build_mirror

    paths = build_all(out) if name == "all" else {name: build_mirror(name, out)}
    for key, path in paths.items():
        console.print(f"{key}: {path}")


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="folder for everything the demo makes")] = Path("demo-out"),
    records: Annotated[int, typer.Option(help="SIF records to build")] = 24,
    eval_limit: Annotated[int, typer.Option(help="samples per benchmark")] = 8,
) -> None:
    """The whole loop offline: build SIF data, SFT, GRPO, merge, evaluate on five mirrors, report."""
    from sifeval.demo import run_loop

    run_loop(out, records=records, eval_limit=eval_limit, console=console)


def main() -> None:
    from sifdata.terminal import run_cli

    run_cli(app, interrupted="interrupted: scored samples are kept; rerun with --resume to continue")


if __name__ == "__main__":
    main()
