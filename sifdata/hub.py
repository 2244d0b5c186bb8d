"""Loading SIF datasets by name or path, and publishing them to the Hugging Face Hub.

``load_dataset("sif-50k")`` looks, in order, for a local build (``$SIF_HOME/builds/sif-50k``,
default ``~/.cache/sifthinker``), then the Hub snapshot of ``jankin123/SIF-50K`` in the
Hugging Face cache, then (when online) the Hub itself. The published release is a JSON file;
it is converted once into shards beside the local builds and loaded from there.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import datasets

    from sifdata.sources.base import SourceReject

log = logging.getLogger("sifdata.hub")


@dataclass(frozen=True)
class Alias:
    repo_id: str
    published_file: str


ALIASES = {
    "sif-50k": Alias("jankin123/SIF-50K", "SIF-50K.json"),
    "sif-50k-sampled-200": Alias("jankin123/SIF-50K", "SIF-50K-sampled-200.json"),
}


class DatasetNotAvailable(FileNotFoundError):
    """The dataset is neither built locally nor cached, and the Hub cannot be reached."""


class DatasetCorrupt(ValueError):
    """A shard that is missing or differs from its manifest's checksum."""


def verify_shards(folder: Path) -> None:
    """Check every shard of ``folder`` against its ``manifest.json`` (sha256), once per file
    state: a shard checked before, unchanged since (path, size, mtime), is not read again (a stamp
    under ``$SIF_HOME/verified``). :class:`DatasetCorrupt` names the shard that is missing or
    differs. A folder without a manifest has nothing to check against and is loaded as it is."""
    import hashlib

    from sifdata.shards import read_manifest, sha256_file

    manifest = read_manifest(folder)
    if manifest is None:
        log.info("%s has no manifest.json: its shards are not checked", folder)
        return
    for shard in manifest.get("shards", []):
        path = folder / shard["file"]
        if not path.is_file():
            raise DatasetCorrupt(f"{path} is listed in {folder / 'manifest.json'} but missing")
        info = path.stat()
        state = f"{path.resolve()}|{info.st_size}|{info.st_mtime_ns}|{shard['sha256']}"
        stamp = sif_home() / "verified" / hashlib.sha256(state.encode()).hexdigest()[:32]
        if stamp.is_file():
            continue
        if sha256_file(path) != shard["sha256"]:
            raise DatasetCorrupt(
                f"{path} differs from its checksum in {folder / 'manifest.json'} (a damaged or changed file): "
                "download or build it again, or load it unchecked with load_dataset(..., verify=False)"
            )
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.touch()


def sif_home() -> Path:
    return Path(os.environ.get("SIF_HOME", Path.home() / ".cache" / "sifthinker"))


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on")


def _is_shard_folder(path: Path) -> bool:
    return any((path / "data").glob("*.parquet"))


def local_cache_dir(folder: Path) -> str:
    """A datasets cache folder that belongs to this folder's exact files.

    ``datasets`` keys its cache of a local folder by the folder's name and the data files'
    origin metadata, which for local files can be empty: two different folders called
    ``cvbench`` then share one cache entry and the second load returns the first folder's rows.
    Keying by the manifest's checksums (or the files' paths, sizes and mtimes) prevents that.
    """
    import hashlib

    import datasets

    from sifdata.shards import read_manifest

    manifest = read_manifest(folder)
    if manifest is not None:
        identity = "".join(shard["sha256"] for shard in manifest["shards"])
    else:
        stats = sorted(
            (str(path.relative_to(folder)), path.stat().st_size, path.stat().st_mtime_ns)
            for path in folder.rglob("*")
            if path.is_file() and path.suffix in (".parquet", ".json", ".jsonl", ".csv", ".arrow", ".md")
        )
        identity = json.dumps([str(folder.resolve()), stats])
    digest = hashlib.sha256(identity.encode()).hexdigest()[:16]
    return str(Path(datasets.config.HF_DATASETS_CACHE) / "sifdata" / digest)


def load_local(folder: str | Path, *args: Any, **kwargs: Any) -> datasets.Dataset:
    """``datasets.load_dataset`` on a local folder, with a cache that cannot mix up folders."""
    import datasets

    kwargs.setdefault("cache_dir", local_cache_dir(Path(folder)))
    return datasets.load_dataset(str(folder), *args, **kwargs)


def _load_shards(folder: Path, split: str, verify: bool = True, **kwargs: Any) -> datasets.Dataset:
    if verify:
        verify_shards(folder)
    return load_local(folder, split=split, **kwargs)


@dataclass(frozen=True)
class ImportReport:
    out: Path
    records: int
    rejects: list[SourceReject]


def convert_published(
    json_path: str | Path,
    out: str | Path,
    image_root: str | Path | None = None,
    *,
    keep_published_frame: bool = False,
) -> ImportReport:
    """Convert a published SIF-50K JSON into a shard folder, images embedded.

    Boxes are converted to per-axis and chain depths read again from each record's depth map
    unless ``keep_published_frame`` (see :mod:`sifdata.sources.sif50k`); rows that cannot be
    imported (a missing image, a broken chain, ...) are listed with their reasons in
    ``work/source_rejects.jsonl`` and counted in the manifest and the card.
    """
    from sifdata.builder.pipeline import finalize
    from sifdata.files import atomic_write
    from sifdata.shards import image_cell, record_row, shard_name, write_shard
    from sifdata.sources import sif50k

    json_path, out = Path(json_path), Path(out)
    rejects: list[SourceReject] = []

    def rows() -> Iterator[dict[str, Any]]:
        imported = sif50k.read(
            json_path, image_root=image_root, keep_published_frame=keep_published_frame, on_reject=rejects.append
        )
        for item in imported:
            images = {"image": image_cell(item.image_file), "depth_image": image_cell(item.depth_file)}
            yield record_row(item.record, images)

    records = write_shard(rows(), out / "data" / shard_name(0, 1))
    lines = "".join(json.dumps({"id": r.key, "stage": "import", "reason": r.reason}) + "\n" for r in rejects)
    atomic_write(out / "work" / "source_rejects.jsonl", lines.encode())
    finalize(out)
    return ImportReport(out, records, rejects)


def import_cache_dir(json_path: Path, image_root: str | Path | None, keep_published_frame: bool) -> Path:
    """Where ``load_dataset(<json file>)`` keeps its conversion: keyed by the file's content
    (not its name: two different ``SIF-50K.json`` never share one), the image root, the frame
    option and the library version that converted it."""
    import hashlib

    from sifdata.shards import sha256_file
    from sifdata.version import __version__

    settings = json.dumps(
        [
            sha256_file(json_path),
            str(Path(image_root).resolve()) if image_root else None,
            keep_published_frame,
            __version__,
        ]
    )
    digest = hashlib.sha256(settings.encode()).hexdigest()[:16]
    return sif_home() / "builds" / f"import-{json_path.stem.lower()}-{digest}"


def _from_snapshot(snapshot: Path, alias: Alias, split: str) -> datasets.Dataset:
    if _is_shard_folder(snapshot):
        return _load_shards(snapshot, split)
    published = snapshot / alias.published_file
    if not published.is_file():
        raise DatasetNotAvailable(
            f"{alias.repo_id} snapshot at {snapshot} has neither shards nor {alias.published_file}"
        )
    return _load_published(published, split, None, False)


def _load_published(
    published: Path, split: str, image_root: str | Path | None, keep_published_frame: bool
) -> datasets.Dataset:
    """A published JSON as shards, converted once into a folder keyed by its content."""
    from sifdata.shards import read_manifest

    target = import_cache_dir(published, image_root, keep_published_frame)
    if read_manifest(target) is None:  # the manifest is written last: a folder without one is unfinished
        log.info("converting %s into shards at %s", published, target)
        report = convert_published(published, target, image_root, keep_published_frame=keep_published_frame)
        _require_records(report, published)
    return _load_shards(target, split)


def _require_records(report: ImportReport, source: Path) -> None:
    if report.records == 0:
        reasons = "; ".join(sorted({r.reason for r in report.rejects})[:3]) or "the file holds no records"
        raise DatasetNotAvailable(
            f"{source}: no record could be imported ({len(report.rejects)} rejected: {reasons}). "
            "Point image_root (--image-root) at the folder holding the images."
        )


def load_dataset(
    name_or_path: str | Path,
    split: str = "train",
    *,
    revision: str | None = None,
    image_root: str | Path | None = None,
    keep_published_frame: bool = False,
    verify: bool = True,
) -> datasets.Dataset:
    """A SIF dataset as a ``datasets.Dataset`` whose rows validate as :class:`SIFRecord`.

    ``name_or_path``: a folder of shards (a build), a published SIF-50K JSON file, an alias
    (``sif-50k``, ``sif-50k-sampled-200``) or any Hub dataset id in the shard layout. A
    published JSON is converted once (cached by its content): boxes to per-axis unless
    ``keep_published_frame``, images looked up under ``image_root`` (see
    :mod:`sifdata.sources.sif50k`). ``verify``: check the shards against their manifest's
    checksums first (:func:`verify_shards`; each file once while it is unchanged).
    """
    path = Path(name_or_path)
    if path.is_dir():
        if _is_shard_folder(path):
            return _load_shards(path, split, verify)
        raise DatasetNotAvailable(f"{path} is a folder without data/*.parquet shards (build one with `sifdata build`)")
    if path.is_file() and path.suffix == ".json":
        return _load_published(path, split, image_root, keep_published_frame)
    name = str(name_or_path)
    alias = ALIASES.get(name.lower())
    if alias is None:
        return _load_hub_id(name, split, revision)
    local = sif_home() / "builds" / name.lower()
    if _is_shard_folder(local):
        return _load_shards(local, split, verify)
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        snapshot = Path(snapshot_download(alias.repo_id, repo_type="dataset", revision=revision, local_files_only=True))
    except (LocalEntryNotFoundError, FileNotFoundError):
        if hub_offline():
            raise DatasetNotAvailable(
                f"'{name}' is not available offline: no local build at {local} and no cached snapshot of "
                f"{alias.repo_id} in the Hugging Face cache. Build one with `sifdata build --out {local}`, "
                f"import the published JSON with `sifdata import SIF-50K.json --out {local}`, or unset "
                "HF_HUB_OFFLINE to download it."
            ) from None
        snapshot = Path(snapshot_download(alias.repo_id, repo_type="dataset", revision=revision))
    return _from_snapshot(snapshot, alias, split)


def _load_hub_id(repo_id: str, split: str, revision: str | None) -> datasets.Dataset:
    import datasets

    try:
        return datasets.load_dataset(repo_id, split=split, revision=revision)
    except (ConnectionError, FileNotFoundError) as error:
        if hub_offline():
            raise DatasetNotAvailable(
                f"'{repo_id}' is not a local folder and is not in the Hugging Face cache, and HF_HUB_OFFLINE is set"
            ) from error
        raise


# ----------------------------------------------------------------------------- push

PUSH_PATTERNS = ["README.md", "manifest.json", "data/*.parquet"]


@dataclass(frozen=True)
class PushPlan:
    repo_id: str
    files: list[tuple[str, int]]  # (path in the repo, bytes)


def plan_push(folder: str | Path, repo_id: str) -> PushPlan:
    from sifdata.shards import shard_files

    folder = Path(folder)
    files = [(p.name, p.stat().st_size) for p in (folder / "README.md", folder / "manifest.json") if p.is_file()]
    files += [(f"data/{p.name}", p.stat().st_size) for p in shard_files(folder)]
    return PushPlan(repo_id, files)


def resolve_token(token: str | None = None) -> str | None:
    """An explicit token, else ``HF_TOKEN``, else the one saved by ``hf auth login``."""
    if token:
        return token
    if os.environ.get("HF_TOKEN"):
        return os.environ["HF_TOKEN"]
    from huggingface_hub import get_token

    return get_token()


def push(
    folder: str | Path,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool = False,
    revision: str | None = None,
    commit_message: str = "Upload SIF dataset",
    api: Any = None,
) -> str:
    """Upload a validated build (card, manifest, shards; never ``work/``) to a Hub dataset repo.

    Returns the commit URL. ``api`` is an ``HfApi``-like object (tests pass a recording fake).
    """
    from huggingface_hub import HfApi

    from sifdata.validate import validate_folder

    report = validate_folder(folder)
    if not report.ok:
        raise ValueError(f"{folder} does not validate ({len(report.errors)} errors); run `sifdata validate {folder}`")
    resolved = resolve_token(token)
    if not resolved and api is None:
        raise PermissionError("no Hugging Face token: set HF_TOKEN or run `hf auth login`")
    api = api or HfApi(token=resolved)
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    commit = api.upload_folder(
        folder_path=str(folder),
        repo_id=repo_id,
        repo_type="dataset",
        revision=revision,
        allow_patterns=PUSH_PATTERNS,
        commit_message=commit_message,
    )
    return str(getattr(commit, "commit_url", commit))
