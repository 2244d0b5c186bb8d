"""A static site that pages through items (benchmark samples, dataset records) with the focus
boxes of each drawn on its image: HTML, one plain-JavaScript file, JSON data and thumbnails, no
build step and no CDN. It opens from disk (``file://``) and from any static host.

Layout of a site folder::

    index.html  viewer.js  viewer.css      the page (copied from sifdata/viewer/assets)
    data/manifest.js                       title, facets, one summary row per item
    data/page-00000.js ...                 the items in full, PAGE_SIZE per file, loaded on demand
    images/KEY.jpg  thumbs/KEY.jpg  depth/KEY.jpg   pictures, named by content key
    .sifview-files.jsonl                   every file the site wrote (what it owns)

A site writes only into a folder it created, an empty one, or one that holds its own
``.sifview-files.jsonl``: each file is listed there before it is written, so a killed write
leaves nothing the next one refuses. It removes only files listed there, and never overwrites a
file it did not write. ``force`` writes a site beside foreign files, leaving them untouched.
:func:`serve_site` serves the listed files and nothing else.

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
import threading
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
    ``fields`` are shown in order (label, text); ``steps`` are the focus steps in order;
    ``crops`` the images an agent was sent back (its zooms, in order), shown with the panel."""

    label: str
    status: str
    fields: tuple[tuple[str, str], ...] = ()
    steps: tuple[tuple[FocusBox, ...], ...] = ()
    score: float | None = None
    crops: tuple[Picture, ...] = ()


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


OWNED_FILES = ".sifview-files.jsonl"


class ForeignFiles(ValueError):
    """The site folder holds files the viewer did not write, where it would write or remove."""


class SiteFolder:
    """The files a site owns in its folder: those listed in :data:`OWNED_FILES` (one JSON string
    a line, each appended before its file is written, so a killed write still owns what it left).

    ``force``: a folder with foreign files is written into anyway, beside them; they are never
    overwritten nor removed.
    """

    def __init__(self, folder: Path, force: bool = False) -> None:
        self.folder = folder
        if folder.exists() and not folder.is_dir():
            raise ValueError(f"{folder} is a file: --out names the folder the site is written to")
        listing = folder / OWNED_FILES
        self.before: set[str] = set()
        if listing.is_file():
            for number, line in enumerate(listing.read_text(encoding="utf-8").splitlines(), 1):
                try:
                    name = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut short by a kill: its file is not reused, never removed
                if isinstance(name, str) and _is_inside(name):
                    self.before.add(name)
                else:
                    raise ValueError(f"{listing}:{number}: not a file name of the site: {line[:80]!r}")
        elif folder.is_dir() and (legacy := _legacy_site_files(folder)) is not None:
            self.before = legacy  # a site written before sites listed their files: its own files only
        elif folder.is_dir() and not force:
            foreign = next(iter(sorted(folder.iterdir())), None)
            if foreign is not None:
                raise ForeignFiles(
                    f"{folder} already holds files this viewer did not write (such as {foreign.name}): give a new "
                    "or empty --out, or --force to write the site beside them (none of them is changed or deleted)"
                )
        self.now: set[str] = set()
        self._lock = threading.Lock()
        folder.mkdir(parents=True, exist_ok=True)
        self._listing = open(listing, "a", encoding="utf-8")  # noqa: SIM115 - closed in finish()

    def owns(self, name: str) -> bool:
        return name in self.before or name in self.now

    def path(self, name: str) -> Path:
        """The path to write ``name`` to, listed as the site's first; a foreign file there is refused."""
        with self._lock:
            if name not in self.now:
                target = self.folder / name
                if name not in self.before and (target.exists() or target.is_symlink()):
                    raise ForeignFiles(f"{target} exists and was not written by this viewer: it is left as it is")
                self._listing.write(json.dumps(name) + "\n")
                self._listing.flush()
                self.now.add(name)
        return self.folder / name

    def close(self) -> None:
        self._listing.close()

    def finish(self) -> int:
        """Remove the files the site wrote before and needs no more; list what it holds now.
        Returns how many pictures were removed."""
        self.close()
        removed = 0
        for name in sorted(self.before - self.now):
            target = self.folder / name
            if target.is_file() and not target.is_symlink():
                target.unlink()
                removed += name.startswith(("images/", "depth/")) and name.endswith(".jpg")  # a picture each
        text = "".join(json.dumps(name) + "\n" for name in sorted(self.now))
        atomic_write(self.folder / OWNED_FILES, text.encode("utf-8"))
        return removed


def _legacy_site_files(folder: Path) -> set[str] | None:
    """The files of a site written before sites listed them (its page files and the pictures its
    data names), or None when the folder holds no such site."""
    if not all((folder / name).is_file() for name in (*ASSETS, "data/manifest.js")):
        return None
    try:
        manifest = read_data_file(folder / "data" / "manifest.js")
        pages = sorted((folder / "data").glob("page-*.js"))
        items = [item for page in pages for item in read_data_file(page)]
    except (OSError, ValueError):
        return None
    names = {*ASSETS, "data/manifest.js", *(f"data/{page.name}" for page in pages)}
    pictures = [row.get("thumb") for row in manifest.get("items", [])]
    for item in items:
        pictures += [item.get("image"), item.get("depth"), *(more.get("image") for more in item.get("more_images", []))]
    for picture in pictures:
        if (
            isinstance(picture, str)
            and _is_inside(picture)
            and re.fullmatch(r"(images|thumbs|depth)/\w+\.jpg", picture)
        ):
            names.add(picture)
            if not picture.startswith("thumbs/"):
                names.add(picture.removesuffix(".jpg") + ".size")
    return {name for name in names if (folder / name).is_file()}


def _is_inside(name: str) -> bool:
    parts = Path(name).parts
    return bool(parts) and not Path(name).is_absolute() and ".." not in parts and "\\" not in name


def owned_files(folder: str | Path) -> set[str]:
    """The files a site folder's listing names (empty when it has none)."""
    listing = Path(folder) / OWNED_FILES
    names: set[str] = set()
    if listing.is_file():
        for line in listing.read_text(encoding="utf-8").splitlines():
            try:
                name = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(name, str) and _is_inside(name):
                names.add(name)
    return names


def _write_picture(site: SiteFolder, picture: Picture, depth: bool) -> tuple[bool, tuple[int, int] | None, str | None]:
    """Write a picture's files unless the site has them; (written, original size, error)."""
    kind = "depth" if depth else "images"
    names = [f"depth/{picture.key}.jpg"] if depth else [f"images/{picture.key}.jpg", f"thumbs/{picture.key}.jpg"]
    size_name = f"{kind}/{picture.key}.size"
    folder = site.folder
    if all(site.owns(name) and (folder / name).is_file() for name in [*names, size_name]):
        try:
            width, height = (int(v) for v in (folder / size_name).read_text().split())
            for name in [*names, size_name]:
                site.path(name)  # still the site's
            return False, (width, height), None
        except ValueError:
            pass  # a size file cut short: made again
    try:
        image = picture.open()
        image.load()
    except Exception as error:  # an unreadable image is that item's note, never the site's end
        return False, None, f"{type(error).__name__}: {error}"
    if depth:
        _jpeg(_fitted(image, DEPTH_SIDE), site.path(names[0]), 85)
    else:
        _jpeg(_fitted(image, IMAGE_SIDE), site.path(names[0]), 88)
        _jpeg(_fitted(image, THUMB_SIDE), site.path(names[1]), 80)
    atomic_write(site.path(size_name), f"{image.width} {image.height}".encode())
    return True, (image.width, image.height), None


def _item_json(
    item: ViewItem,
    size: tuple[int, int] | None,
    depth_size: tuple[int, int] | None,
    more: list[dict[str, Any]],
    notes: list[str],
    crops: list[list[dict[str, Any]]] | None = None,
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
                "crops": (crops or [])[number] if crops and number < len(crops) else [],
            }
            for number, panel in enumerate(item.panels)
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
    force: bool = False,
) -> SiteReport:
    """Write (or refresh) a site of ``items`` under ``out``.

    ``items`` may be a generator: they are taken a chunk at a time and only their JSON is kept,
    so pictures (often bytes held by the item) never pile up in memory. ``facets`` orders the
    filter drop-downs (facets not named come after, sorted); ``preset`` selects filters when
    the page opens (a comparison opens on its disagreements); ``total`` sizes the progress bar.
    Pictures the site wrote before are kept; data files are replaced, pictures and pages it no
    longer needs removed. Only files the site wrote are ever replaced or removed (see the module
    docstring; ``force`` writes beside foreign files): :class:`ForeignFiles` otherwise.
    """
    folder = Path(out)
    site = SiteFolder(folder, force=force)
    workers = workers or min(4, os.cpu_count() or 1)
    counts = {"written": 0, "reused": 0, "errors": 0}
    rows: list[dict[str, Any]] = []
    full: list[dict[str, Any]] = []
    seen: set[str] = set()
    keys: set[str] = set()

    def pictures(item: ViewItem) -> tuple[Any, Any, list[Any], list[list[Any]]]:
        image = _write_picture(site, item.image, depth=False) if item.image is not None else None
        depth = _write_picture(site, item.depth, depth=True) if item.depth is not None else None
        more = [_write_picture(site, picture, depth=False) for picture in item.more_images]
        crops = [[_write_picture(site, picture, depth=False) for picture in panel.crops] for panel in item.panels]
        return image, depth, more, crops

    def tally(result: tuple[bool, tuple[int, int] | None, str | None]) -> tuple[tuple[int, int] | None, str | None]:
        """Count one picture as written, reused or unreadable; its size and error."""
        did_write, picture_size, error = result
        counts["written"] += did_write
        counts["reused"] += not did_write and error is None
        counts["errors"] += error is not None
        return picture_size, error

    def take(chunk: list[ViewItem], pool: ThreadPoolExecutor) -> None:
        for item, (image, depth, more, crops) in zip(chunk, pool.map(pictures, chunk), strict=True):
            notes = [item.note] if item.note else []
            shown_crops: list[list[dict[str, Any]]] = []
            for panel, results in zip(item.panels, crops, strict=True):
                shown_crops.append([])
                for number, (picture, result) in enumerate(zip(panel.crops, results, strict=True), 1):
                    picture_size, error = tally(result)
                    if error:
                        notes.append(f"{panel.label}: crop {number} could not be read: {error}")
                    else:
                        shown_crops[-1].append({"image": f"images/{picture.key}.jpg", "size": list(picture_size or ())})
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
            full.append(_item_json(item, size, depth_size, shown_more, notes, shown_crops))
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
    pages = 0
    for start in range(0, len(full), PAGE_SIZE):
        page = _data_file("page", full[start : start + PAGE_SIZE], pages)
        atomic_write(site.path(f"data/page-{pages:05d}.js"), page)
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
    atomic_write(site.path("data/manifest.js"), _data_file("manifest", manifest))
    assets = resources.files("sifdata.viewer") / "assets"
    for name in ASSETS:
        atomic_write(site.path(name), (assets / name).read_bytes())
    removed = site.finish()
    return SiteReport(folder, len(rows), pages, counts["written"], counts["reused"], counts["errors"], removed)


CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".jpg": "image/jpeg",
}


def site_server(folder: str | Path, host: str = "127.0.0.1", port: int = 8765) -> Any:
    """An HTTP server for a site folder that serves the site and nothing else: only the files
    its listing names (``/`` is ``index.html``), never a directory listing, never through a
    symbolic link, and only to requests whose ``Host`` is the address it is bound to (a web page
    elsewhere cannot reach it by DNS rebinding). Call ``serve_forever()`` on it."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from urllib.parse import unquote, urlsplit

    root = Path(folder)
    if not (root / "index.html").is_file() or not (root / OWNED_FILES).is_file():
        raise FileNotFoundError(f"{root} holds no site written by this viewer (index.html, {OWNED_FILES})")
    root = root.resolve()
    allowed = {name for name in owned_files(root) if Path(name).suffix in CONTENT_TYPES}

    class Handler(BaseHTTPRequestHandler):
        server_version = "sifview"
        sys_version = ""

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_HEAD(self) -> None:
            self._answer(send_body=False)

        def do_GET(self) -> None:
            self._answer(send_body=True)

        def _refuse(self, status: int, reason: str) -> None:
            body = reason.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _answer(self, send_body: bool) -> None:
            bound = self.server.server_address[1]  # type: ignore[index]  # an (address, port) pair
            hosts = {f"{name}:{bound}" for name in (host, "localhost", "127.0.0.1", "[::1]")}
            if self.headers.get("Host") not in hosts:
                self._refuse(403, "this server answers requests for its own address only")
                return
            name = unquote(urlsplit(self.path).path).lstrip("/") or "index.html"
            target = root / name
            if name not in allowed or not _plain_file_inside(root, target):
                self._refuse(404, "not a file of this site")
                return
            data = target.read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPES[target.suffix])
            self.send_header("Content-Length", str(len(data)))
            self.send_header("X-Content-Type-Options", "nosniff")
            self.end_headers()
            if send_body:
                self.wfile.write(data)

    try:
        return ThreadingHTTPServer((host, port), Handler)
    except OSError as error:
        raise OSError(f"cannot serve on {host}:{port} ({error.strerror}): pass another --port") from None


def _plain_file_inside(root: Path, target: Path) -> bool:
    """A regular file under ``root`` reached through no symbolic link."""
    current = target
    while current != root:
        if current.is_symlink():
            return False
        if current.parent == current:
            return False
        current = current.parent
    return target.is_file() and target.resolve().is_relative_to(root)


def serve_site(folder: str | Path, host: str = "127.0.0.1", port: int = 8765) -> None:
    """Serve a site folder on loopback until interrupted (Ctrl-C): :func:`site_server`."""
    server = site_server(folder, host, port)
    with server:
        print(f"serving {folder} at http://{host}:{server.server_address[1]}/ (Ctrl-C stops)", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()
