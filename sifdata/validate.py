"""``sifdata validate``: every check a SIF shard folder must pass, with a readable report.

Checks: the card's ``configs:``; the manifest's shards, counts and checksums; each shard's
schema; per record the typed schema (grammar and ranges included), images present and
decodable at the record's size, chain depths consistent with the depth map, the chain ending
at the ground truth; duplicate ids across shards.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from sifdata.depth import DepthMap, load_depth_png
from sifdata.geometry import round_box
from sifdata.images import open_image
from sifdata.schema import SIFRecord
from sifdata.sources import sif50k

DEPTH_TOLERANCE = 0.002


@dataclass(frozen=True)
class Issue:
    where: str  # record id, or a file
    check: str
    reason: str


@dataclass
class ValidationReport:
    folder: Path
    records: int = 0
    shards: int = 0
    errors: list[Issue] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors and self.shards > 0

    def by_check(self) -> Counter[str]:
        return Counter(issue.check for issue in self.errors)


def _check_card(folder: Path, report: ValidationReport) -> None:
    import yaml
    from huggingface_hub import DatasetCard

    card = folder / "README.md"
    if not card.is_file():
        report.errors.append(Issue("README.md", "card", "missing: datasets.load_dataset needs its configs"))
        return
    try:
        configs = DatasetCard.load(card).data.to_dict().get("configs")
    except (ValueError, TypeError, yaml.YAMLError) as error:
        report.errors.append(Issue("README.md", "card", f"unreadable YAML header: {error}"))
        return
    if not configs:
        report.errors.append(Issue("README.md", "card", "no YAML header with configs:"))


def _check_manifest(folder: Path, report: ValidationReport) -> None:
    from sifdata.shards import read_manifest, sha256_file, shard_files

    manifest = read_manifest(folder)
    if manifest is None:
        report.errors.append(Issue("manifest.json", "manifest", "missing"))
        return
    listed = {shard["file"]: shard for shard in manifest.get("shards", [])}
    present = {str(p.relative_to(folder)) for p in shard_files(folder)}
    for name in sorted(set(listed) - present):
        report.errors.append(Issue(name, "manifest", "listed in manifest.json but missing"))
    for name in sorted(present - set(listed)):
        report.errors.append(Issue(name, "manifest", "shard not listed in manifest.json"))
    for name in sorted(set(listed) & present):
        if sha256_file(folder / name) != listed[name]["sha256"]:
            report.errors.append(Issue(name, "checksum", "sha256 differs from manifest.json"))


def _decode(cell: dict | None, what: str) -> bytes:
    if not cell or not cell.get("bytes"):
        raise ValueError(f"{what} missing")
    return cell["bytes"]


def _check_row(row: dict, report: ValidationReport) -> None:
    record_id = row.get("id") or "<no id>"
    try:
        record = SIFRecord.from_row(row)
    except ValidationError as error:
        for detail in error.errors():
            where = ".".join(str(p) for p in detail["loc"]) or "record"
            report.errors.append(Issue(record_id, "schema", f"{where}: {detail['msg']}"))
        return
    chain = record.parsed_chain()
    if record.provenance.writer_kind == "imported":
        # The published generator rounded the chain's last box through pixels: allow that much.
        gap = sif50k.ground_truth_gap(record)
        if gap:
            report.errors.append(Issue(record_id, "chain", gap))
    else:
        last = [round_box(box) for box in chain.last_boxes]
        truth = [round_box(box) for box in record.gt_boxes]
        if last != truth:
            report.errors.append(Issue(record_id, "chain", f"last area {last} is not the ground truth {truth}"))
    try:
        with open_image(_decode(row.get("image"), "RGB image"), what="the RGB image") as image:
            image.load()
            size = image.size
    except (ValueError, OSError) as error:
        report.errors.append(Issue(record_id, "image", f"RGB image: {error}"))
        return
    if record.width and record.height and size != (record.width, record.height):
        report.errors.append(
            Issue(record_id, "image", f"RGB image is {size[0]}x{size[1]}, record says {record.width}x{record.height}")
        )
    try:
        depth = DepthMap(load_depth_png(_decode(row.get("depth_image"), "depth image")))
    except (ValueError, OSError) as error:
        report.errors.append(Issue(record_id, "depth", f"depth image: {error}"))
        return
    if (depth.width, depth.height) != size:
        report.errors.append(
            Issue(record_id, "depth", f"depth map is {depth.width}x{depth.height}, image is {size[0]}x{size[1]}")
        )
        return
    for number, step in enumerate(chain.focus_steps, 1):
        for box, stated in zip(step.boxes, step.depths, strict=True):
            actual = depth.box_mean(box)
            if stated is None or abs(stated - actual) > DEPTH_TOLERANCE:
                report.errors.append(
                    Issue(record_id, "depth", f"area {number}: stated depth {stated} but the map gives {actual:.4f}")
                )


def validate_folder(folder: str | Path, *, progress: bool = False) -> ValidationReport:
    """Validate a shard folder; ``report.ok`` is False if anything is wrong."""
    import pyarrow.parquet as pq

    from sifdata.progress import progress_bar
    from sifdata.shards import FEATURES, iter_rows, shard_files

    folder = Path(folder)
    report = ValidationReport(folder)
    files = shard_files(folder)
    if not files:
        report.errors.append(Issue(str(folder), "shards", "no data/train-*.parquet shards"))
        return report
    _check_card(folder, report)
    _check_manifest(folder, report)
    seen: Counter[str] = Counter()
    readable, total = [], 0
    for path in files:
        try:
            total += pq.ParquetFile(path).metadata.num_rows
            readable.append(path)
        except Exception as error:  # pyarrow's errors for a cut or damaged file are of several kinds
            report.shards += 1
            report.errors.append(Issue(str(path.relative_to(folder)), "shard", f"unreadable parquet file: {error}"))
    with progress_bar("validating", total, enabled=progress) as advance:
        for path in readable:
            report.shards += 1
            metadata = pq.read_schema(path).metadata or {}
            try:
                features = json.loads(metadata[b"huggingface"])["info"]["features"]
            except (KeyError, ValueError):
                report.errors.append(Issue(path.name, "schema", "no datasets Features in the parquet metadata"))
                features = None
            if features is not None and features != FEATURES.to_dict():
                report.errors.append(Issue(path.name, "schema", "Features differ from sifdata's schema"))
            try:
                for row in iter_rows(path):
                    report.records += 1
                    seen[row.get("id") or ""] += 1
                    _check_row(row, report)
                    advance(1)
            except Exception as error:  # a damaged row group: pyarrow's errors are of several kinds
                name = str(path.relative_to(folder))
                report.errors.append(Issue(name, "shard", f"rows unreadable after record {report.records}: {error}"))
    for record_id, count in seen.items():
        if count > 1:
            report.errors.append(Issue(record_id, "duplicate", f"id appears {count} times"))
    return report
