"""The SIF builder: select candidates, estimate depth, plan, write, check, shard.

Shards are the unit of work. Candidates are selected identically by every process (same
source, filters and seed), and shard ``i`` of ``n`` takes candidates ``i, i + n, i + 2n, ...``,
so ``--shard i/n`` jobs can run anywhere (SLURM arrays, Ray, Kubernetes) and ``sifdata merge``
assembles their outputs. Inside a shard, every finished record or rejection is appended to a
journal at once; a killed build resumes from the journals, and a shard's parquet file appears
(atomically) only when all its candidates are accounted for.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import re
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field, ValidationError, model_validator

from sifdata.builder.expand import plan_focus
from sifdata.builder.writer import (
    OfflineTemplateWriter,
    OpenAIWriter,
    WriteOutcome,
    Writer,
    WriteRequest,
    WriterError,
    attach_depths,
    write_checked,
)
from sifdata.chain_types import Chain
from sifdata.depth import (
    DEFAULT_DEPTH_MODEL,
    DepthEstimator,
    DepthMap,
    DepthModelUnavailable,
    depth_png_bytes,
    dequantize_depth,
    quantize_depth,
)
from sifdata.files import atomic_write, safe_name
from sifdata.geometry import round_box
from sifdata.journal import Journal
from sifdata.progress import progress_bar
from sifdata.schema import Provenance, SIFRecord, parsed_chain_context
from sifdata.shards import image_cell, record_row, shard_files, shard_name, write_manifest, write_shard
from sifdata.sources.base import SOURCES, BuildSource, Candidate, SourceError, SourceRecord, SourceReject
from sifdata.version import __version__

log = logging.getLogger("sifdata.builder")
SYNTHETIC_DEPTH = "synthetic-exact"
FAILURE_STREAK = 8  # the same writer failure this many times in a row stops the build


# Fields of BuildConfig before sources were plug-ins, now the source's own options; configs and
# work/config.json files that hold them still load (a value equal to its old default is dropped).
_LEGACY_SOURCE_FIELDS = {
    "source_path": ("path", None),
    "sizes": ("sizes", None),
    "image_root": ("image_root", None),
    "subsets": ("subsets", None),
    "exclude_text_heavy": ("exclude_text_heavy", True),
    "per_subset_cap": ("per_subset_cap", None),
}


class BuildConfig(BaseModel):
    """Everything that decides what a build produces (recorded in the manifest).

    ``source`` names a source registered under ``sifdata.sources``; ``source_options`` are its
    own options, checked against its ``Options`` model and stored complete (defaults filled in),
    so that two configs that mean the same build compare equal.
    """

    source: str = "demo"
    source_options: dict[str, Any] = Field(default_factory=dict, description="the source's own options")
    n: int | None = Field(default=None, ge=1, description="at most this many candidates in all")
    seed: int = 0
    select_probability: float = Field(default=0.5, ge=0.0, le=1.0)
    writer: Literal["offline", "openai"] = "offline"
    writer_model: str | None = None
    writer_base_url: str | None = None
    writer_timeout: float = 120.0
    concurrency: int = Field(default=8, ge=1)
    max_attempts: int = Field(default=3, ge=1)
    depth_model: str = DEFAULT_DEPTH_MODEL
    depth_device: str | None = None
    depth_batch_size: int = Field(default=8, ge=1)
    num_shards: int = Field(default=1, ge=1)
    retry_rejects: bool = False

    @model_validator(mode="before")
    @classmethod
    def _legacy_source_fields(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not any(key in data for key in _LEGACY_SOURCE_FIELDS):
            return data
        data = dict(data)
        moved = {}
        for key, (option, default) in _LEGACY_SOURCE_FIELDS.items():
            if key in data:
                value = data.pop(key)
                if value != default:
                    moved[option] = value
        data["source_options"] = {**moved, **(data.get("source_options") or {})}
        return data

    @model_validator(mode="after")
    def _checked_source_options(self) -> BuildConfig:
        options = source_options(self.source, self.source_options)
        self.source_options = options.model_dump(mode="json")
        return self

    def make_source(self) -> BuildSource:
        """The configured source, with its options."""
        return SOURCES.load(self.source)(source_options(self.source, self.source_options))


def source_options(name: str, options: dict[str, Any]) -> BaseModel:
    """``options`` checked by source ``name``'s ``Options``; the error names the source, the
    option and the options it has."""
    try:
        source = SOURCES.load(name)
    except KeyError as error:
        raise ValueError(str(error)) from None
    try:
        return source.Options.model_validate(options)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(map(str, item['loc'])) or 'options'}: "
            + (
                "required"
                if item["type"] == "missing"
                else "unknown option"
                if item["type"] == "extra_forbidden"
                else item["msg"]
            )
            for item in error.errors()
        )
        known = ", ".join(source.Options.model_fields) or "none"
        raise ValueError(f"source {name}: {problems} (its options: {known}; --option KEY=VALUE)") from None


class BuildAborted(RuntimeError):
    """The build stopped (e.g. the writer endpoint refuses the key); journals keep the work."""


@dataclass
class ShardResult:
    """A shard's records done, rejected (with reasons) and pending (to be asked again)."""

    index: int
    records: int
    rejects: int
    reasons: Counter[str] = field(default_factory=Counter)
    complete: bool = False
    pending: int = 0


@dataclass
class BuildReport:
    out: Path
    shards: list[ShardResult]
    source_rejects: list[SourceReject]
    dataset_complete: bool

    @property
    def records(self) -> int:
        return sum(s.records for s in self.shards)

    @property
    def rejects(self) -> int:
        return sum(s.rejects for s in self.shards)

    @property
    def pending(self) -> int:
        return sum(s.pending for s in self.shards)


# ----------------------------------------------------------------------------- candidates


def source_candidates(config: BuildConfig, on_reject: Callable[[SourceReject], None]) -> list[Candidate]:
    """Every candidate of the configured source, in source order, with no image read."""
    return config.make_source().candidates(n=config.n, seed=config.seed, on_reject=on_reject)


def select_candidates(config: BuildConfig, on_reject: Callable[[SourceReject], None]) -> list[Candidate]:
    """The build's candidates, identical in every process that runs the same config.

    The source lists them and keeps the build's share (filters, per-subset caps,
    de-duplication and sampling, all on keys and subsets), so choosing a shard's share reads no
    image; a candidate that turns out to be broken is rejected, with its reason, by the shard
    that resolves it.
    """
    source = config.make_source()
    candidates = source.candidates(n=config.n, seed=config.seed, on_reject=on_reject)
    return source.select(candidates, n=config.n, rng=np.random.default_rng(config.seed), on_reject=on_reject)


def shard_share(candidates: Sequence[Candidate], index: int, count: int) -> list[tuple[int, Candidate]]:
    """Shard ``index`` of ``count``: candidates ``index, index + count, ...`` with their order."""
    return [(order, candidates[order]) for order in range(index, len(candidates), count)]


def record_seed(build_seed: int, key: str) -> int:
    """A per-record seed that depends only on the build seed and the record's key."""
    return int.from_bytes(hashlib.sha256(f"{build_seed}:{key}".encode()).digest()[:4], "big")


# ----------------------------------------------------------------------------- one shard


@dataclass
class _Prepared:
    order: int
    record: SourceRecord
    image_file: Path
    depth_file: Path
    depth_model: str
    request: WriteRequest


class ShardBuilder:
    def __init__(
        self,
        out: Path,
        index: int,
        count: int,
        candidates: Sequence[tuple[int, Candidate]],
        config: BuildConfig,
        writer: Writer,
        estimator: DepthEstimator | None,
    ) -> None:
        self.out, self.index, self.count = out, index, count
        self.candidates = candidates
        self.config = config
        self.writer = writer
        self.estimator = estimator
        self.work = out / "work" / f"shard-{index:05d}-of-{count:05d}"
        self.parquet = out / "data" / shard_name(index, count)
        # Records built in this process, by id: their chains were parsed once, by the writer's
        # check; a record read back from the journal (a resumed build) is validated, parsed again.
        self._built: dict[str, SIFRecord] = {}
        self.pending: list[str] = []
        self._streak: list[str] = []

    def run(self, advance: Callable[[int], None]) -> ShardResult:
        with Journal(self.work / "records.jsonl") as records, Journal(self.work / "rejects.jsonl") as rejects:
            done = {entry["record"]["id"] for entry in records.entries}
            rejected = {entry["id"] for entry in rejects.entries}
            skip = done | (set() if self.config.retry_rejects else rejected)
            pending = [(order, candidate) for order, candidate in self.candidates if candidate.key not in skip]
            advance(len(self.candidates) - len(pending))
            if pending:
                self._process(pending, records, rejects, advance)
            return self._finish(records, rejects)

    def _process(
        self,
        pending: list[tuple[int, Candidate]],
        records: Journal,
        rejects: Journal,
        advance: Callable[[int], None],
    ) -> None:
        chunk = max(self.config.depth_batch_size, self.config.concurrency)
        in_flight: dict[Future[WriteOutcome], _Prepared] = {}
        with ThreadPoolExecutor(max_workers=self.config.concurrency, thread_name_prefix="sif-writer") as pool:
            try:
                for start in range(0, len(pending), chunk):
                    for item in self._prepare(pending[start : start + chunk], rejects, advance):
                        in_flight[pool.submit(write_checked, self.writer, item.request, self.config.max_attempts)] = (
                            item
                        )
                    while len(in_flight) > 2 * self.config.concurrency:
                        self._collect(in_flight, records, rejects, advance)
                while in_flight:
                    self._collect(in_flight, records, rejects, advance)
            except WriterError as error:
                for future in in_flight:
                    future.cancel()
                raise BuildAborted(f"shard {self.index}: {error.reason}") from None

    def _collect(
        self,
        in_flight: dict[Future[WriteOutcome], _Prepared],
        records: Journal,
        rejects: Journal,
        advance: Callable[[int], None],
    ) -> None:
        finished, _ = wait(list(in_flight), return_when=FIRST_COMPLETED)
        for future in finished:
            item = in_flight.pop(future)
            outcome = future.result()  # a fatal WriterError propagates from here
            self._watch(outcome)
            if outcome.pending:  # the endpoint was unreachable: asked again on the next run
                self.pending.append(item.record.key)
                log.info("pending %s: %s", item.record.key, outcome.reject_reason)
            elif outcome.chain is None:
                self._reject(
                    rejects, item.order, item.record.key, "writer", outcome.reject_reason or "", outcome.attempts
                )
            else:
                records.append(
                    {
                        "order": item.order,
                        "attempts": outcome.attempts,
                        "record": self._record(item, outcome.chain, outcome.parsed).model_dump(mode="json"),
                    }
                )
            advance(1)

    def _watch(self, outcome: WriteOutcome) -> None:
        """Stop when the writer fails the same way ``FAILURE_STREAK`` times in a row: a systematic
        failure (the endpoint down for good, every request refused with one 4xx, replies that are
        not chat completions) would otherwise spend the whole build failing record by record."""
        if outcome.chain is not None or outcome.writer_error is None:
            self._streak.clear()
            return
        kind = re.sub(r"record \S+: ", "", outcome.writer_error)[:120]
        self._streak.append(kind)
        if len(self._streak) >= FAILURE_STREAK and len(set(self._streak[-FAILURE_STREAK:])) == 1:
            raise WriterError(f"the writer failed the same way {FAILURE_STREAK} times in a row: {kind}")

    def _reject(self, rejects: Journal, order: int, key: str, stage: str, reason: str, attempts: int = 0) -> None:
        log.info("rejected %s at %s: %s", key, stage, reason)
        rejects.append({"order": order, "id": key, "stage": stage, "reason": reason, "attempts": attempts})

    def _prepare(
        self, batch: list[tuple[int, Candidate]], rejects: Journal, advance: Callable[[int], None]
    ) -> Iterator[_Prepared]:
        images, kept = [], []
        for order, candidate in batch:
            # Only now is anything of the candidate's image read: its header, then its pixels.
            try:
                record = candidate.resolve()
            except SourceError as error:
                self._reject(rejects, order, candidate.key, "source", error.reason)
                advance(1)
                continue
            try:
                images.append(record.load_image())
                kept.append((order, record))
            except SourceError as error:
                self._reject(rejects, order, record.key, "image", error.reason)
                advance(1)
        depths = self._depths([r for _, r in kept], images, rejects, [o for o, _ in kept], advance)
        for (order, record), image, depth in zip(kept, images, depths, strict=True):
            if depth is None:
                continue
            name = safe_name(record.key)
            depth_file = self.work / "depth" / f"{name}_d.png"
            quantized = quantize_depth(depth)
            atomic_write(depth_file, depth_png_bytes(quantized))
            if record.image_path is not None:
                image_file = record.image_path.resolve()
            else:
                image_file = self.work / "images" / f"{name}.png"
                buffer = io.BytesIO()
                image.save(buffer, format="PNG", compress_level=3)
                atomic_write(image_file, buffer.getvalue())
            # Plan on the depth exactly as stored, so validation recomputes the same means.
            stored = DepthMap(dequantize_depth(quantized))
            seed = record_seed(self.config.seed, record.key)
            plan = plan_focus(
                record.gt_boxes, record.width, record.height, seed, select_probability=self.config.select_probability
            )
            request = WriteRequest(
                record_id=record.key,
                question=record.question,
                answer=record.answer,
                plan=attach_depths(plan, stored.box_mean),
                image=image,
                seed=seed,
            )
            depth_model = SYNTHETIC_DEPTH if record.depth is not None else self.config.depth_model
            yield _Prepared(order, record, image_file, depth_file, depth_model, request)

    def _depths(
        self,
        records: list[SourceRecord],
        images: list[Any],
        rejects: Journal,
        orders: list[int],
        advance: Callable[[int], None],
    ) -> list[np.ndarray | None]:
        depths: list[np.ndarray | None] = [r.depth for r in records]
        missing = [i for i, d in enumerate(depths) if d is None]
        if missing:
            if self.estimator is None:
                raise BuildAborted("records without a depth map need a depth estimator")
            try:
                estimated = self.estimator.estimate([images[i] for i in missing])
                for i, depth in zip(missing, estimated, strict=True):
                    depths[i] = depth
            except Exception:  # one bad image must not sink the batch: retry one by one
                for i in missing:
                    try:
                        depths[i] = self.estimator.estimate_one(images[i])
                    except Exception as error:
                        self._reject(rejects, orders[i], records[i].key, "depth", f"{type(error).__name__}: {error}")
                        advance(1)
        for i, (record, estimate) in enumerate(zip(records, depths, strict=True)):
            if estimate is not None and estimate.shape != (record.height, record.width):
                self._reject(
                    rejects,
                    orders[i],
                    record.key,
                    "depth",
                    f"depth map is {estimate.shape[1]}x{estimate.shape[0]}, image is {record.width}x{record.height}",
                )
                advance(1)
                depths[i] = None
        return depths

    def _record(self, item: _Prepared, chain: str, parsed: Chain | None) -> SIFRecord:
        record = item.record
        fields = dict(
            id=record.key,
            source=record.source,
            source_id=record.source_id,
            question=record.question,
            answer=record.answer,
            gt_boxes=[round_box(box) for box in record.gt_boxes],
            width=record.width,
            height=record.height,
            image=str(item.image_file),
            depth_image=str(item.depth_file),
            chain=chain,
            provenance=Provenance(
                writer_kind=self.writer.kind,  # type: ignore[arg-type]
                writer_model=self.writer.model,
                seed=item.request.seed,
                depth_model=item.depth_model,
                library_version=__version__,
            ),
            extra={"plan": [step.kind for step in item.request.plan]},
        )
        built = SIFRecord.model_validate(fields, context=parsed_chain_context(chain, parsed))
        self._built[built.id] = built
        return built

    def _finish(self, records: Journal, rejects: Journal) -> ShardResult:
        by_id: dict[str, dict[str, Any]] = {}
        for entry in records.entries:
            by_id.setdefault(entry["record"]["id"], entry)
        final_rejects = {e["id"]: e for e in rejects.entries if e["id"] not in by_id}
        result = ShardResult(
            self.index,
            len(by_id),
            len(final_rejects),
            Counter(f"{e['stage']}: {_reason_class(e['reason'])}" for e in final_rejects.values()),
        )
        accounted = set(by_id) | set(final_rejects)
        result.complete = all(candidate.key in accounted for _, candidate in self.candidates)
        result.pending = sum(1 for _, candidate in self.candidates if candidate.key not in accounted)
        if result.complete:
            ordered = sorted(by_id.values(), key=lambda e: e["order"])
            write_shard((shard_row(e["record"], self._built.get(e["record"]["id"])) for e in ordered), self.parquet)
            summary = {"records": result.records, "rejects": result.rejects, "reasons": dict(result.reasons)}
            atomic_write(self.work / "summary.json", json.dumps(summary, indent=2).encode())
        return result


def _reason_class(reason: str) -> str:
    """The reason without record-specific numbers, for counting rejects by kind."""
    return re.sub(r"[-\d.]+", "#", reason.split(":")[0] if "grammar" not in reason else reason)[:80]


def shard_row(record: dict[str, Any], built: SIFRecord | None = None) -> dict[str, Any]:
    """A journaled record (image references are files) as a shard row with the image bytes;
    ``built``: the same record as this process built it (not validated again)."""
    parsed = built if built is not None else SIFRecord.model_validate(record)
    images = {column: image_cell(Path(record[column])) for column in ("image", "depth_image")}
    return record_row(parsed, images)


# ----------------------------------------------------------------------------- the build


def make_writer(config: BuildConfig, out: Path) -> Writer:
    if config.writer == "offline":
        return OfflineTemplateWriter()
    return OpenAIWriter(
        model=config.writer_model,
        base_url=config.writer_base_url,
        timeout=config.writer_timeout,
        cache_dir=out / "work" / "writer-cache",
    )


def build(
    config: BuildConfig,
    out: str | Path,
    *,
    shard: int | None = None,
    writer: Writer | None = None,
    estimator: DepthEstimator | None = None,
    progress: bool = True,
) -> BuildReport:
    """Build shard ``shard`` of ``config.num_shards`` (all of them when None) into ``out``.

    Rerunning the same command resumes: finished records and rejections are kept, nothing is
    duplicated. When every shard file exists, the manifest and the dataset card are written.
    """
    out = Path(out)
    _check_same_config(out, config)  # refuses before anything is read; writes nothing
    source_rejects: list[SourceReject] = []
    candidates = select_candidates(config, source_rejects.append)
    writer = writer or make_writer(config, out)
    if estimator is None:
        estimator = DepthEstimator(config.depth_model, device=config.depth_device, batch_size=config.depth_batch_size)
        if config.make_source().estimates_depth:  # load the depth model before any work
            try:
                estimator.pipeline  # noqa: B018 - loading is the point
            except DepthModelUnavailable as error:
                raise BuildAborted(str(error)) from None
    indices = range(config.num_shards) if shard is None else [shard]
    if shard is not None and not 0 <= shard < config.num_shards:
        raise ValueError(f"shard {shard} is not in 0..{config.num_shards - 1}")
    # Everything that can refuse the start has run: only now does the folder belong to this build.
    _record_config(out, config)
    results = []
    jobs = {i: shard_share(candidates, i, config.num_shards) for i in indices}
    total = sum(len(job) for job in jobs.values())
    with progress_bar("building", total, enabled=progress) as advance:
        for index, job in jobs.items():
            builder = ShardBuilder(out, index, config.num_shards, job, config, writer, estimator)
            results.append(builder.run(advance))
    _write_source_rejects(out, source_rejects)
    complete = len(shard_files(out)) == config.num_shards and all(r.complete for r in results)
    if complete:
        finalize(out)
    return BuildReport(out, results, source_rejects, complete)


def _config_json(config: BuildConfig) -> dict[str, Any]:
    return config.model_dump(mode="json", exclude={"retry_rejects", "concurrency", "depth_device"})


def _check_same_config(out: Path, config: BuildConfig) -> None:
    """Resuming with other settings would mix two datasets in one folder: refuse, naming what
    differs and the commands that go on."""
    saved = out / "work" / "config.json"
    if not saved.is_file():
        return
    previous, current = json.loads(saved.read_text(encoding="utf-8")), _config_json(config)
    # A folder built before sources were plug-ins recorded their options as fields of its own;
    # a config that no longer loads is compared as written (what differs is named below).
    with contextlib.suppress(ValueError):
        previous = _config_json(BuildConfig.model_validate(previous))
    changed = sorted(k for k in set(previous) | set(current) if previous.get(k) != current.get(k))
    if changed:
        shown = "; ".join(f"{k}: {previous.get(k)!r} there, {current.get(k)!r} now" for k in changed)
        raise ValueError(
            f"{out} holds a build with other settings ({shown}): rerun with that build's settings to resume it, "
            "use another --out, or --restart to start this folder's build over (its records are deleted)"
        )


def _record_config(out: Path, config: BuildConfig) -> None:
    """The build's settings, written when its work starts (a start that fails leaves none behind)."""
    saved = out / "work" / "config.json"
    if not saved.is_file():
        atomic_write(saved, json.dumps(_config_json(config), indent=2).encode())


def restart_build(out: str | Path) -> list[Path]:
    """Remove what a build wrote in ``out`` (``work/``, ``data/train-*.parquet``, ``manifest.json``,
    its dataset card): the folder's build starts over. Files it did not write are left. Returns
    what was removed."""
    import shutil

    out = Path(out)
    removed = []
    if (out / "work" / "config.json").is_file() or (out / "manifest.json").is_file():
        card = [out / "README.md"] if (out / "manifest.json").is_file() else []  # the card is written with it
        for path in [out / "work", *shard_files(out), out / "manifest.json", *card]:
            if path.is_dir():
                shutil.rmtree(path)
                removed.append(path)
            elif path.is_file():
                path.unlink()
                removed.append(path)
    return removed


def _write_source_rejects(out: Path, rejects: list[SourceReject]) -> None:
    lines = "".join(json.dumps({"id": r.key, "stage": "source", "reason": r.reason}) + "\n" for r in rejects)
    atomic_write(out / "work" / "source_rejects.jsonl", lines.encode())


def finalize(out: str | Path, repo_id: str | None = None) -> dict[str, Any]:
    """Write ``manifest.json`` and the dataset card ``README.md`` for a folder of shards."""
    from sifdata.cards import dataset_card

    out = Path(out)
    reasons: Counter[str] = Counter()
    rejects = 0
    for summary in sorted((out / "work").glob("shard-*/summary.json")):
        data = json.loads(summary.read_text(encoding="utf-8"))
        rejects += data["rejects"]
        reasons.update(data["reasons"])
    source_rejects = out / "work" / "source_rejects.jsonl"
    if source_rejects.is_file():
        count = sum(1 for line in source_rejects.read_text(encoding="utf-8").splitlines() if line.strip())
        rejects += count
        if count:
            reasons["source"] += count
    config_file = out / "work" / "config.json"
    config = json.loads(config_file.read_text(encoding="utf-8")) if config_file.is_file() else {}
    stats = _provenance_summary(out)
    manifest = write_manifest(
        out,
        {
            "rejects": rejects,
            "rejects_by_reason": dict(reasons),
            "build_config": config,
            "sources": stats["sources"],
            "box_frames": stats["frames"],
        },
    )
    offline = "offline-template" in stats["writers"]
    card = dataset_card(
        records=manifest["records"],
        pretty_name="SIF dataset" if not repo_id else repo_id.split("/")[-1],
        shards=len(manifest["shards"]),
        sources=", ".join(f"{k} ({v})" for k, v in sorted(stats["sources"].items())) or "-",
        writer=", ".join(sorted(stats["writers"])) or "-",
        depth_model=", ".join(sorted(stats["depth_models"])) or "-",
        box_frames=", ".join(f"{k} ({v})" for k, v in sorted(stats["frames"].items())) or "-",
        rejects=rejects,
        seed=config.get("seed", "-"),
        library_version=__version__,
        writer_note=(
            "**Note:** chains written by the `offline-template` writer are deterministic template "
            "text for pipeline testing and demos, not model-written reasoning."
            if offline
            else ""
        ),
        frame_note=_frame_note(stats),
        repo_id=repo_id or str(out),
    )
    atomic_write(out / "README.md", str(card).encode("utf-8"))
    return manifest


def _frame_note(stats: dict[str, Any]) -> str:
    notes = []
    if stats["converted"]:
        notes.append(
            f"**Box frame:** {stats['converted']} imported records were converted from the published SIF-50K's "
            "padded-square values (which its generator used as if they were per-axis) to per-axis boxes, and their "
            "chain depths were read again from each record's depth map over the converted boxes. The published "
            "values are kept in `extra.published` (`frame`, `bbox_3d`, `chain`, `depths`)."
        )
    if stats["frames"].get("padded-square"):
        notes.append(
            f"**Box frame:** {stats['frames']['padded-square']} records keep the published padded-square values "
            "(`box_frame` = `padded-square`): on a non-square image their boxes sit beside the object if read per "
            "axis. Models trained on them emit boxes in that frame; name it when scoring their boxes."
        )
    return "\n\n".join(notes)


def _provenance_summary(out: Path) -> dict[str, Any]:
    import pyarrow.parquet as pq

    sources: Counter[str] = Counter()
    frames: Counter[str] = Counter()
    converted = 0
    writers: set[str] = set()
    depth_models: set[str] = set()
    for path in shard_files(out):
        table = pq.read_table(path, columns=["source", "provenance", "box_frame", "extra"])
        sources.update(table.column("source").to_pylist())
        frames.update(table.column("box_frame").to_pylist())
        converted += sum(
            bool(extra and json.loads(extra).get("published")) for extra in table.column("extra").to_pylist()
        )
        for prov in table.column("provenance").to_pylist():
            writers.add(prov["writer_kind"])
            if prov.get("depth_model"):
                depth_models.add(prov["depth_model"])
    return {
        "sources": dict(sources),
        "frames": dict(frames),
        "converted": converted,
        "writers": writers,
        "depth_models": depth_models,
    }


def merge(parts: Sequence[str | Path], out: str | Path) -> dict[str, Any]:
    """Assemble shard folders built separately (``--shard i/n`` on several machines) into ``out``.

    Every shard of the same ``n`` must be present exactly once; files are copied, then the
    manifest and card are written. ``out`` may be one of ``parts``.
    """
    import shutil

    out = Path(out)
    (out / "data").mkdir(parents=True, exist_ok=True)
    found: dict[str, Path] = {}
    for part in parts:
        for path in shard_files(part):
            if path.name in found and found[path.name].resolve() != path.resolve():
                raise ValueError(f"shard {path.name} is in both {found[path.name].parent.parent} and {part}")
            found[path.name] = path
        for work in (Path(part) / "work").glob("shard-*"):
            target = out / "work" / work.name
            if (work / "summary.json").is_file() and work.resolve() != target.resolve():
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(work / "summary.json", target / "summary.json")
        config = Path(part) / "work" / "config.json"
        if config.is_file() and not (out / "work" / "config.json").is_file():
            shutil.copy2(config, out / "work" / "config.json")
    counts = {int(re.search(r"-of-(\d+)", name).group(1)) for name in found}  # type: ignore[union-attr]
    if len(counts) != 1:
        raise ValueError(f"shards from builds with different shard counts: {sorted(counts)}")
    (count,) = counts
    missing = [shard_name(i, count) for i in range(count) if shard_name(i, count) not in found]
    if missing:
        raise ValueError(f"missing {len(missing)} of {count} shards: {', '.join(missing[:5])}")
    for name, path in found.items():
        target = out / "data" / name
        if path.resolve() != target.resolve():
            shutil.copy2(path, target)
    return finalize(out)
