"""A static site that pages through items (benchmark samples, dataset records) with the focus
boxes of each drawn on its image: HTML, one plain-JavaScript file, JSON data and thumbnails, no
build step and no CDN. It opens from disk (``file://``) and from any static host.

Layout of a site folder::

    index.html  viewer.js  viewer.css      the page (copied from sifdata/viewer/assets)
    data/manifest.js                       title, facets, one summary row per item
    data/page-00000.js ...                 the items in full, PAGE_SIZE per file, loaded on demand
    images/KEY.jpg  thumbs/KEY.jpg  depth/KEY.jpg   pictures, named by content key

Data files are JavaScript that hands JSON to the page (``SIFVIEW.receive("manifest", {...});``):
browsers refuse ``fetch`` on ``file://`` but run scripts, so the same files work from disk and
from a server. :func:`read_data_file` reads one back as JSON. Pictures are named by a key of
their content and kept between writes: re-writing a site of thousands of items converts only
the pictures it has not seen.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from PIL import Image

from sifdata.files import atomic_write
from sifdata.progress import progress_bar

PAGE_SIZE = 50
IMAGE_SIDE = 1024  # the sample view's picture
THUMB_SIDE = 240
DEPTH_SIDE = 512
SEARCH_CHARS = 600  # of each item's text kept in the manifest for the search box
ASSETS = ("index.html", "viewer.js", "viewer.css")
_WRAPPED = re.compile(r'^SIFVIEW\.receive\((?P<kind>"[a-z]+"), (?:(?P<page>\d+), )?(?P<json>.*)\);\s*$', re.DOTALL)

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Picture:
    """An image to show, loaded only when the site does not have it yet. ``key`` names its
    content (a digest): the same key is the same picture."""

    key: str
    open: Callable[[], Image.Image]


@dataclass(frozen=True)
class FocusBox:
    """A box of a focus step, per-axis normalized in the image's frame, with its stated depth."""

    box: Box
    depth: float | None = None


@dataclass(frozen=True)
class Panel:
    """One reading of an item: a run's response, or a record's chain. ``status`` is what the
    filters and the badge show (``right``, ``wrong``, ``parse failure``, ``reject``, ...);
    ``fields`` are shown in order (label, text); ``steps`` are the focus steps in order."""

    label: str
    status: str
    fields: tuple[tuple[str, str], ...] = ()
    steps: tuple[tuple[FocusBox, ...], ...] = ()
    score: float | None = None


@dataclass
class ViewItem:
    """One item of a site. ``facets`` are what the filters select on (each key a drop-down);
    ``truth`` the ground-truth boxes (per-axis normalized), drawn dashed; ``note`` says why
    something is missing (an image that could not be read, ...)."""

    id: str
    question: str
    category: str
    panels: tuple[Panel, ...]
    image: Picture | None = None
    depth: Picture | None = None
    truth: tuple[Box, ...] = ()
    facets: dict[str, str] = field(default_factory=dict)
    note: str | None = None
    more_images: tuple[Picture, ...] = ()  # further images of the item (SAT's second frame), shown after it
    depth_caption: str = "depth (brighter = closer)"  # where the depth image comes from
    search: str | None = None  # the text the search box matches (default: question and fields)


@dataclass(frozen=True)
class SiteReport:
    folder: Path
    items: int
    pages: int
    pictures_written: int
    pictures_reused: int
    picture_errors: int
    pictures_removed: int = 0
    notes: tuple[str, ...] = ()  # what the person writing the site should know (images unavailable, ...)

    @property
    def index(self) -> Path:
        return self.folder / "index.html"


def read_data_file(path: str | Path) -> Any:
    """The JSON a site data file (``data/manifest.js``, ``data/page-N.js``) hands to the page."""
    match = _WRAPPED.match(Path(path).read_text(encoding="utf-8"))
    if match is None:
        raise ValueError(f"{path} is not a site data file")
    return json.loads(match.group("json"))


def _data_file(kind: str, payload: Any, page: int | None = None) -> bytes:
    # ensure_ascii: the file is read as a script in whatever charset the browser guesses
    text = json.dumps(payload, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    where = f"{page}, " if page is not None else ""
    return f'SIFVIEW.receive("{kind}", {where}{text});\n'.encode("ascii")


def _finite(value: float | None) -> float | None:
    return value if value is None or (value == value and abs(value) != float("inf")) else None


def _fitted(image: Image.Image, side: int) -> Image.Image:
    picture = image.convert("RGB")
    picture.thumbnail((side, side), Image.Resampling.LANCZOS)
    return picture


def _jpeg(image: Image.Image, path: Path, quality: int) -> None:
    import io

    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    atomic_write(path, buffer.getvalue())


def _write_picture(folder: Path, picture: Picture, depth: bool) -> tuple[bool, tuple[int, int] | None, str | None]:
    """Write a picture's files unless they exist; (written, original size, error)."""
    names = [f"depth/{picture.key}.jpg"] if depth else [f"images/{picture.key}.jpg", f"thumbs/{picture.key}.jpg"]
    size_file = folder / ("depth" if depth else "images") / f"{picture.key}.size"
    if all((folder / name).is_file() for name in names) and size_file.is_file():
        width, height = (int(v) for v in size_file.read_text().split())
        return False, (width, height), None
    try:
        image = picture.open()
        image.load()
    except Exception as error:  # an unreadable image is that item's note, never the site's end
        return False, None, f"{type(error).__name__}: {error}"
    if depth:
        _jpeg(_fitted(image, DEPTH_SIDE), folder / names[0], 85)
    else:
        _jpeg(_fitted(image, IMAGE_SIDE), folder / names[0], 88)
        _jpeg(_fitted(image, THUMB_SIDE), folder / names[1], 80)
    atomic_write(size_file, f"{image.width} {image.height}".encode())
    return True, (image.width, image.height), None


def _item_json(
    item: ViewItem,
    size: tuple[int, int] | None,
    depth_size: tuple[int, int] | None,
    more: list[dict[str, Any]],
    notes: list[str],
) -> dict[str, Any]:
    return {
        "id": item.id,
        "question": item.question,
        "category": item.category,
        "image": f"images/{item.image.key}.jpg" if item.image is not None and size else None,
        "depth": f"depth/{item.depth.key}.jpg" if item.depth is not None and depth_size else None,
        "depth_size": list(depth_size) if depth_size else None,
        "depth_caption": item.depth_caption,
        "more_images": more,
        "size": list(size) if size else None,
        "truth": [list(box) for box in item.truth],
        "notes": notes,
        "facets": item.facets,
        "panels": [
            {
                "label": panel.label,
                "status": panel.status,
                "score": _finite(panel.score),
                "fields": [list(pair) for pair in panel.fields],
                "steps": [[{"box": list(b.box), "depth": _finite(b.depth)} for b in step] for step in panel.steps],
            }
            for panel in item.panels
        ],
    }


UNSEARCHED = ("why", "details")  # boilerplate every failure shares: searching it finds everything


def _summary(item: ViewItem, number: int, thumb: str | None) -> dict[str, Any]:
    if item.search is not None:
        text = item.search
    else:
        fields = [text for panel in item.panels for label, text in panel.fields if label not in UNSEARCHED]
        text = " ".join([item.id, item.question, *fields])
    return {
        "id": item.id,
        "q": item.question[:200],
        "category": item.category,
        "status": [panel.status for panel in item.panels],
        "facets": item.facets,
        "thumb": thumb,
        "page": number // PAGE_SIZE,
        "text": text[:SEARCH_CHARS].lower(),
    }


def _prune(folder: Path, referenced: set[str]) -> int:
    """Remove the pictures no item of this site names (left by an earlier, different site)."""
    removed = 0
    for kind in ("images", "thumbs", "depth"):
        for path in (folder / kind).iterdir():
            key = path.name.split(".", 1)[0]
            if key not in referenced and not path.name.startswith("."):
                path.unlink()
                removed += 1
    return removed


def write_site(
    items: Iterable[ViewItem],
    out: str | Path,
    *,
    title: str,
    subtitle: str = "",
    facets: Sequence[str] = (),
    preset: dict[str, str] | None = None,
    total: int | None = None,
    progress: bool = True,
    workers: int | None = None,
) -> SiteReport:
    """Write (or refresh) a site of ``items`` under ``out``.

    ``items`` may be a generator: they are taken a chunk at a time and only their JSON is kept,
    so pictures (often bytes held by the item) never pile up in memory. ``facets`` orders the
    filter drop-downs (facets not named come after, sorted); ``preset`` selects filters when
    the page opens (a comparison opens on its disagreements); ``total`` sizes the progress bar.
    Pictures already in the folder are kept; data files are replaced, stale pages removed.
    """
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{folder} is a file: --out names the folder the site is written to")
    for name in ("data", "images", "thumbs", "depth"):
        (folder / name).mkdir(parents=True, exist_ok=True)
    workers = workers or min(4, os.cpu_count() or 1)
    counts = {"written": 0, "reused": 0, "errors": 0}
    rows: list[dict[str, Any]] = []
    full: list[dict[str, Any]] = []
    seen: set[str] = set()
    keys: set[str] = set()
    referenced: set[str] = set()

    def pictures(item: ViewItem) -> tuple[Any, Any, list[Any]]:
        image = _write_picture(folder, item.image, depth=False) if item.image is not None else None
        depth = _write_picture(folder, item.depth, depth=True) if item.depth is not None else None
        more = [_write_picture(folder, picture, depth=False) for picture in item.more_images]
        return image, depth, more

    def tally(result: tuple[bool, tuple[int, int] | None, str | None]) -> tuple[tuple[int, int] | None, str | None]:
        """Count one picture as written, reused or unreadable; its size and error."""
        did_write, picture_size, error = result
        counts["written"] += did_write
        counts["reused"] += not did_write and error is None
        counts["errors"] += error is not None
        return picture_size, error

    def take(chunk: list[ViewItem], pool: ThreadPoolExecutor) -> None:
        for item, (image, depth, more) in zip(chunk, pool.map(pictures, chunk), strict=True):
            referenced.update(p.key for p in (item.image, item.depth, *item.more_images) if p is not None)
            notes = [item.note] if item.note else []
            shown_more = []
            for number, (picture, result) in enumerate(zip(item.more_images, more, strict=True), 2):
                picture_size, error = tally(result)
                if error:
                    notes.append(f"image {number} could not be read: {error}")
                else:
                    shown_more.append({"image": f"images/{picture.key}.jpg", "size": list(picture_size or ())})
            size, error = tally(image) if image is not None else (None, None)
            if error:
                notes.append(f"the image could not be read: {error}")
            depth_size, error = tally(depth) if depth is not None else (None, None)
            if error:
                notes.append(f"the depth image could not be read: {error}")
            full.append(_item_json(item, size, depth_size, shown_more, notes))
            thumb = f"thumbs/{item.image.key}.jpg" if item.image is not None and size else None
            rows.append(_summary(item, len(rows), thumb))
            keys.update(item.facets)

    with (
        progress_bar(f"site {folder.name}", total or 0, enabled=progress and bool(total)) as advance,
        ThreadPoolExecutor(workers) as pool,
    ):
        chunk: list[ViewItem] = []
        for item in items:
            if item.id in seen:
                raise ValueError(f"item ids must be unique: {item.id!r} appears twice")
            seen.add(item.id)
            chunk.append(item)
            if len(chunk) >= 8 * workers:
                take(chunk, pool)
                advance(len(chunk))
                chunk = []
        take(chunk, pool)
        advance(len(chunk))
    for stale in (folder / "data").glob("page-*.js"):
        stale.unlink()
    removed = _prune(folder, referenced)
    pages = 0
    for start in range(0, len(full), PAGE_SIZE):
        page = _data_file("page", full[start : start + PAGE_SIZE], pages)
        atomic_write(folder / "data" / f"page-{pages:05d}.js", page)
        pages += 1
    named = [key for key in facets if key in keys]  # a facet no item has gets no drop-down
    named += sorted(keys - set(named))
    manifest = {
        "title": title,
        "subtitle": subtitle,
        "facets": named,
        "preset": dict(preset or {}),
        "page_size": PAGE_SIZE,
        "items": rows,
    }
    atomic_write(folder / "data" / "manifest.js", _data_file("manifest", manifest))
    assets = resources.files("sifdata.viewer") / "assets"
    for name in ASSETS:
        with resources.as_file(assets / name) as source:
            shutil.copyfile(source, folder / name)
    return SiteReport(folder, len(rows), pages, counts["written"], counts["reused"], counts["errors"], removed)


def serve_site(folder: str | Path, host: str = "127.0.0.1", port: int = 8765) -> None:
    """Serve a site folder over HTTP on loopback until interrupted (Ctrl-C)."""
    import functools
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    folder = Path(folder)
    if not (folder / "index.html").is_file():
        raise FileNotFoundError(f"{folder} holds no site (index.html): write it first")
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(folder))
    try:
        server = ThreadingHTTPServer((host, port), handler)
    except OSError as error:
        raise OSError(f"cannot serve on {host}:{port} ({error.strerror}): pass another --port") from None
    with server:
        print(f"serving {folder} at http://{host}:{server.server_address[1]}/ (Ctrl-C stops)", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()
