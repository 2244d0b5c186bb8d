"""``sifdata``: build, check, inspect, convert and publish SIF datasets."""

from __future__ import annotations

import json
import logging
from collections import Counter
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
import yaml
from rich.table import Table

from sifdata.progress import labelled, plain_console
from sifdata.terminal import fail

app = typer.Typer(
    help="Build, validate, inspect, convert and publish SIF datasets. "
    "Errors print one line; --debug shows the traceback.",
    no_args_is_help=True,
)
console = plain_console()
errors = plain_console(stderr=True, soft_wrap=True)  # a message is one line, however long


def _fail(message: str, code: int = 1) -> NoReturn:
    fail(message, code)


def _parse_shard(spec: str | None) -> tuple[int | None, int | None]:
    if spec is None:
        return None, None
    try:
        index, count = (int(part) for part in spec.split("/"))
    except ValueError:
        _fail(f"--shard takes i/n (e.g. 3/8), got {spec!r}")
    if not 0 <= index < count:
        _fail(f"--shard {spec}: i must be in 0..n-1")
    return index, count


def _source_help() -> str:
    from sifdata.sources.base import SOURCES

    listed = SOURCES.listing(lambda name: f"{name} ({SOURCES.load(name).description})", "demo, ...")
    return f"where questions and boxes come from, one of the installed sources: {listed}"


def _config_error(error: ValueError) -> str:
    """One line for a config pydantic refused: where, and the reason (the first, if several)."""
    from pydantic import ValidationError

    if not isinstance(error, ValidationError):
        return str(error)
    item = error.errors()[0]
    where = ".".join(map(str, item["loc"]))
    message = str(item["msg"]).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def _source_option_pairs(pairs: list[str]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            _fail(f"--option takes KEY=VALUE (e.g. per_subset_cap=1000), got {pair!r}")
        options[key.strip().replace("-", "_")] = yaml.safe_load(raw)
    return options


class WriterKind(StrEnum):
    offline = "offline"
    openai = "openai"


@app.callback()
def _main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="log every reject and step")] = False) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )


@app.command()
def build(
    out: Annotated[Path, typer.Option(help="dataset folder (created; rerun the same command to resume)")],
    source: Annotated[str, typer.Option(help=_source_help())] = "demo",
    option: Annotated[
        list[str] | None,
        typer.Option("--option", "-o", help="a source option KEY=VALUE (repeatable; a wrong key lists the source's)"),
    ] = None,
    source_path: Annotated[Path | None, typer.Option(help="the source's file: --option path=P")] = None,
    image_root: Annotated[
        Path | None, typer.Option(help="folder the source's image paths are relative to: --option image_root=R")
    ] = None,
    n: Annotated[int | None, typer.Option(help="at most this many candidates (sampled by seed)")] = None,
    seed: int = 0,
    # The Visual-CoT source's options under the flags they had before sources were plug-ins.
    sizes: Annotated[Path | None, typer.Option(hidden=True)] = None,
    subsets: Annotated[str | None, typer.Option(hidden=True)] = None,
    keep_text_heavy: Annotated[bool, typer.Option(hidden=True)] = False,
    per_subset_cap: Annotated[int | None, typer.Option(hidden=True)] = None,
    select_probability: float = 0.5,
    writer: WriterKind = WriterKind.offline,
    writer_model: Annotated[str | None, typer.Option(help="or SIF_WRITER_MODEL")] = None,
    writer_base_url: Annotated[str | None, typer.Option(help="or SIF_WRITER_BASE_URL; key: SIF_WRITER_API_KEY")] = None,
    writer_timeout: float = 120.0,
    concurrency: Annotated[int, typer.Option(help="writer requests in flight")] = 8,
    max_attempts: Annotated[int, typer.Option(help="writer attempts per record before it is rejected")] = 3,
    depth_model: Annotated[str, typer.Option(help="Hub id or folder of a depth-estimation model")] = (
        "depth-anything/Depth-Anything-V2-Small-hf"
    ),
    depth_device: Annotated[str | None, typer.Option(help="cuda, cpu, mps (default: best available)")] = None,
    depth_batch_size: int = 8,
    num_shards: int = 1,
    shard: Annotated[str | None, typer.Option(help="build only shard i of n, e.g. 3/8 (for job arrays)")] = None,
    retry_rejects: Annotated[bool, typer.Option(help="try rejected records again on resume")] = False,
    restart: Annotated[
        bool, typer.Option("--restart", help="start this folder's build over: its records are deleted, nothing kept")
    ] = False,
    progress: bool = True,
) -> None:
    """Build SIF records: reverse expansion, depth, forward inference, checked and sharded."""
    from sifdata.builder.pipeline import BuildAborted, BuildConfig, restart_build
    from sifdata.builder.pipeline import build as run_build

    index, count = _parse_shard(shard)
    given = {
        "path": source_path,
        "image_root": image_root,
        "sizes": sizes,
        "subsets": subsets,
        "exclude_text_heavy": False if keep_text_heavy else None,
        "per_subset_cap": per_subset_cap,
    }
    options = {
        key: str(value) if isinstance(value, Path) else value for key, value in given.items() if value is not None
    }
    try:
        config = BuildConfig(
            source=source,
            source_options={**options, **_source_option_pairs(option or [])},
            n=n,
            seed=seed,
            select_probability=select_probability,
            writer=writer.value,
            writer_model=writer_model,
            writer_base_url=writer_base_url,
            writer_timeout=writer_timeout,
            concurrency=concurrency,
            max_attempts=max_attempts,
            depth_model=depth_model,
            depth_device=depth_device,
            depth_batch_size=depth_batch_size,
            num_shards=count or num_shards,
            retry_rejects=retry_rejects,
        )
    except ValueError as error:
        _fail(_config_error(error))
    if restart:
        removed = restart_build(out)
        console.print(f"--restart: removed {len(removed)} files and folders of the earlier build in {out}")
    try:
        report = run_build(config, out, shard=index, progress=progress)
    except BuildAborted as error:
        _fail(f"build stopped: {error}. Finished records are kept; rerun the same command to resume.")
    except (ValueError, FileNotFoundError) as error:
        _fail(str(error))
    table = Table(title=f"build {out}")
    for column in ("shard", "done", "pending", "rejected", "complete"):
        table.add_column(column)
    for result in report.shards:
        complete = "yes" if result.complete else "no"
        table.add_row(str(result.index), str(result.records), str(result.pending), str(result.rejects), complete)
    console.print(table)
    reasons = sum((r.reasons for r in report.shards), start=Counter())
    for reason, number in reasons.most_common(10):
        console.print(f"  rejected {number}: {reason}")
    if report.source_rejects:
        console.print(f"  {len(report.source_rejects)} source records rejected (see {out}/work/source_rejects.jsonl)")
    if report.rejects:
        console.print(f"  rejected records with their reasons: {out}/work/shard-*/rejects.jsonl")
    console.print(f"records: {report.records} done, {report.pending} pending, {report.rejects} rejected")
    if report.pending:
        _fail(
            f"{report.pending} records are pending (the writer endpoint could not be reached through every retry): "
            "rerun the same command to ask them again"
        )
    if report.records == 0 and all(r.complete for r in report.shards):
        _fail("the build produced no record: every candidate was rejected (reasons above)")
    if report.dataset_complete:
        _require_valid(out)
        console.print(labelled("dataset complete:", "green", f"{report.records} records in {out}"))
    else:
        console.print("shards still missing: run the other --shard jobs, then `sifdata merge`")


def _require_valid(folder: Path) -> None:
    """Validate what a job wrote; a dataset that does not validate is a failed job."""
    from sifdata.validate import validate_folder

    report = validate_folder(folder)
    if not report.ok:
        for issue in report.errors[:10]:
            errors.print(f"  {issue.where}: {issue.check}: {issue.reason}")
        _fail(f"{folder} does not validate ({len(report.errors)} problems; `sifdata validate {folder}` lists them)")


@app.command()
def merge(
    parts: Annotated[list[Path], typer.Argument(help="folders holding shards of one build")],
    out: Annotated[Path, typer.Option(help="the assembled dataset folder")],
) -> None:
    """Assemble separately built shards into one dataset (manifest and card included)."""
    from sifdata.builder.pipeline import merge as run_merge

    try:
        manifest = run_merge(parts, out)
    except ValueError as error:
        _fail(str(error))
    _require_valid(out)
    console.print(f"merged {len(manifest['shards'])} shards, {manifest['records']} records into {out}")


@app.command()
def validate(
    folder: Path,
    max_errors: Annotated[int, typer.Option(help="errors to list (all are counted)")] = 30,
    progress: bool = True,
) -> None:
    """Check a dataset folder; exits non-zero if anything is wrong."""
    from sifdata.validate import validate_folder

    if not folder.is_dir():
        _fail(f"{folder}: no such folder")

    report = validate_folder(folder, progress=progress)
    if report.ok:
        console.print(labelled("valid:", "green", f"{report.records} records in {report.shards} shards"))
        return
    table = Table(title=f"{len(report.errors)} problems in {folder}")
    for column in ("record / file", "check", "reason"):
        table.add_column(column, overflow="fold")
    for issue in report.errors[:max_errors]:
        table.add_row(issue.where, issue.check, issue.reason)
    console.print(table)
    console.print("by check: " + ", ".join(f"{k} {v}" for k, v in report.by_check().most_common()))
    raise typer.Exit(1)


@app.command()
def stats(folder: Path, as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False) -> None:
    """Counts, chain lengths, box sizes and the depth histogram, per source."""
    from sifdata.stats import compute_stats

    try:
        result = compute_stats(folder)
    except FileNotFoundError as error:
        _fail(str(error))
    if as_json:
        print(json.dumps(result, indent=2))
        return
    table = Table(title=f"{result['records']} records")
    columns = ["source", "records", "mean_steps", "min_steps", "max_steps", "mean_gt_boxes", "mean_gt_area"]
    for column in [*columns, "non_strict"]:
        table.add_column(column)
    for row in result["per_source"]:
        table.add_row(
            *(f"{row[c]:.3f}" if isinstance(row[c], float) else str(row[c]) for c in [*columns, "non_strict"])
        )
    console.print(table)
    hist = result["depth_histogram"]
    peak = max(hist["counts"]) or 1
    console.print("depth of focus boxes (lower = closer):")
    for low, count in zip(hist["edges"], hist["counts"], strict=False):
        console.print(f"  {low:.1f}-{low + 0.1:.1f} {'#' * round(40 * count / peak)} {count}")


@app.command()
def show(
    folder: Path,
    record_id: str,
    out: Annotated[Path, typer.Option(help="PNG to write")] = Path("record.png"),
) -> None:
    """Draw a record's chain (boxes per step, depth labels) on its image, to a PNG."""
    from sifdata.render import show as render

    try:
        path = render(folder, record_id, out)
    except KeyError as error:
        _fail(str(error.args[0]))
    console.print(f"wrote {path}")


@app.command()
def view(
    folder: Annotated[Path, typer.Argument(help="a build folder (data/train-*.parquet)")],
    out: Annotated[Path, typer.Option(help="the site folder to write (open OUT/index.html)")],
    limit: Annotated[int | None, typer.Option(min=1, help="records to show (rejects are always shown)")] = None,
    serve: Annotated[bool, typer.Option("--serve", help="then serve the site on loopback until Ctrl-C")] = False,
    port: Annotated[int, typer.Option(help="port for --serve")] = 8765,
    force: Annotated[
        bool, typer.Option("--force", help="write the site beside files already in --out (none is changed or deleted)")
    ] = False,
) -> None:
    """A static site paging through a build: records with their chains drawn (boxes, depths, the
    ground truth, the depth map), rejects with their reasons; filters by source, chain length."""
    from sifdata.viewer import serve_site
    from sifdata.viewer.build import view_build

    try:
        site = view_build(folder, out, limit=limit, force=force)
    except (FileNotFoundError, ValueError) as error:
        _fail(str(error))
        return
    console.print(
        f"wrote {site.items} items to {site.index} ({site.pictures_written} pictures made, "
        f"{site.pictures_reused} reused)"
    )
    if serve:
        try:
            serve_site(out, port=port)
        except OSError as error:
            _fail(str(error))


@app.command(name="import")
def import_published(
    file: Annotated[Path, typer.Argument(help="published SIF-50K JSON (e.g. SIF-50K.json)")],
    out: Annotated[Path, typer.Option(help="dataset folder to write")],
    image_root: Annotated[
        Path | None,
        typer.Option(
            help="folder the image paths are relative to, without their '../data/' prefix "
            "(default: <json folder>/images, then <json folder>/../data, then the JSON's folder)"
        ),
    ] = None,
    keep_published_frame: Annotated[
        bool,
        typer.Option(
            help="keep the published boxes (padded-square values) and depths as they are, "
            "instead of converting them to per-axis boxes with depths read again"
        ),
    ] = False,
) -> None:
    """Convert the published SIF-50K JSON into shards; rejected rows are listed with reasons."""
    from sifdata.hub import convert_published

    if not file.is_file():
        _fail(f"no such file: {file}")
    try:
        report = convert_published(file, out, image_root, keep_published_frame=keep_published_frame)
    except ValueError as error:
        _fail(str(error))
    frame = "kept in the published padded-square frame" if keep_published_frame else "converted to per-axis boxes"
    console.print(f"imported {report.records} records into {out} ({frame}); {len(report.rejects)} rejected")
    reasons = Counter(_reason_kind(r.reason) for r in report.rejects)
    for reason, number in reasons.most_common(5):
        console.print(f"  rejected {number}: {reason}")
    if report.rejects:
        console.print(f"  every rejected row with its reason: {out}/work/source_rejects.jsonl")
    if report.records == 0:
        _fail("no record could be imported" + ("" if report.rejects else ": the file holds no records"))
    _require_valid(out)


def _reason_kind(reason: str) -> str:
    """A reject reason without its record-specific details, for counting."""
    return reason.split(":")[0].split(" (")[0][:80]


class ExportFormat(StrEnum):
    llamafactory = "llamafactory"
    trl_sft = "trl-sft"
    trl_grpo = "trl-grpo"
    sif50k = "sif50k"


@app.command()
def export(
    folder: Path,
    to: Annotated[ExportFormat, typer.Option("--format", help="target layout")],
    out: Annotated[Path, typer.Option(help="output folder")],
    depth: Annotated[bool, typer.Option(help="include the depth image (SIF default)")] = True,
) -> None:
    """Export for LLaMA-Factory, TRL SFT, TRL GRPO, or the published SIF-50K JSON layout."""
    from sifdata import export as exports

    try:
        if to is ExportFormat.llamafactory:
            path = exports.to_llamafactory(folder, out, with_depth=depth)
        elif to is ExportFormat.trl_sft:
            path = exports.to_trl_sft(folder, out, with_depth=depth)
        elif to is ExportFormat.trl_grpo:
            path = exports.to_trl_grpo(folder, out, with_depth=depth)
        else:
            path = exports.to_sif50k(folder, out)
    except (FileNotFoundError, exports.MissingImage) as error:
        _fail(str(error))
    console.print(f"wrote {path}")


@app.command()
def push(
    folder: Path,
    repo: Annotated[str, typer.Option(help="Hub dataset repo, ORG/NAME")],
    private: bool = False,
    revision: Annotated[str | None, typer.Option(help="branch to push to")] = None,
    dry_run: Annotated[bool, typer.Option(help="list what would be uploaded, upload nothing")] = False,
) -> None:
    """Validate, then upload card, manifest and shards (never work/) to the Hub. Token: HF_TOKEN or login."""
    from sifdata.hub import plan_push
    from sifdata.hub import push as run_push

    plan = plan_push(folder, repo)
    if dry_run:
        _require_valid(folder)  # a dry run says what a real push would do: refuse what does not validate
        table = Table(title=f"would upload to datasets/{repo}")
        table.add_column("file")
        table.add_column("bytes", justify="right")
        for name, size in plan.files:
            table.add_row(name, f"{size:,}")
        console.print(table)
        return
    try:
        url = run_push(folder, repo, private=private, revision=revision)
    except (ValueError, PermissionError) as error:
        _fail(str(error))
    console.print(f"pushed: {url}")


@app.command()
def schema(what: Annotated[str, typer.Argument(help="record or chain")] = "record") -> None:
    """Print the JSON Schema of a SIF record or chain."""
    from sifdata.schema import chain_json_schema, record_json_schema

    if what not in ("record", "chain"):
        _fail("schema takes 'record' or 'chain'")
    print(json.dumps(record_json_schema() if what == "record" else chain_json_schema(), indent=2))


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="folder for everything the demo makes")] = Path("demo-out"),
    n: Annotated[int, typer.Option(help="records (the 11 bundled photo questions, the rest synthetic)")] = 60,
) -> None:
    """Offline end to end: tiny depth model, build, validate, load, stats, exports."""
    from sifdata.demo import run_demo

    run_demo(out, n=n, console=console)


def main() -> None:
    from sifdata.terminal import run_cli

    run_cli(app, interrupted="interrupted: finished work is kept; rerun the same command to resume")


if __name__ == "__main__":
    main()
