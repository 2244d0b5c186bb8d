"""The viewer's items for evaluation runs: each sample with its images, every focus step of the
response drawn in order (step number, depth), the ground truth where the benchmark has one, the
depth image, the question, target, response, extracted answer, score and why it failed. Two
runs of one benchmark are shown side by side, opening on the samples where they disagree; each
run's boxes are read with that run's own options (a VisCoT run in the padded-square frame).

A run's journal keeps samples without their images; the images come from the benchmark's data
again (``--data``, else the folder the run used, else the Hub), joined by sample id. Where they
cannot be loaded, the site still pages through the text and says why, and so does the report.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from sifdata.depth import depth_to_image, model_depth_image
from sifdata.secrets import redact
from sifdata.viewer.site import FocusBox, Panel, Picture, SiteReport, ViewItem, write_site
from sifeval.adapters import Benchmark, benchmark_class, load_samples
from sifeval.rundir import RUN, read_run
from sifeval.transcripts import Transcript, crop_path
from sifeval.types import ImageRef, Sample, ScoredSample

FACETS = ("agreement", "status", "status A", "status B", "category", "conflict")
SEARCHED_RESPONSE = 300  # characters of each response the search box sees


@dataclass
class LoadedRun:
    folder: Path
    identity: dict[str, Any]  # run.json
    results: dict[str, Any]  # results.json ({} for a run that never finished)
    scored: dict[str, ScoredSample]
    bench: Benchmark  # as this run read its responses (its protocol and options)

    @property
    def model(self) -> str:
        return redact(str(self.results.get("model", {}).get("spec") or "?"))  # runs written before redaction too

    @property
    def data_dir(self) -> str | None:
        return self.identity.get("data_dir") or self.results.get("dataset", {}).get("local_path")


def headline(results: dict[str, Any]) -> str:
    """``, score 62.3 [58.1, 66.4]``: a run's headline with its 95% interval, for the header."""
    score = (results.get("metrics") or {}).get("score")
    if score is None:
        return ""
    found = (results.get("intervals") or {}).get("score") or {}
    interval = found.get("ci95")
    return f", score {score:.1f}" + (f" [{interval[0]:.1f}, {interval[1]:.1f}]" if interval else "")


def load_run(folder: str | Path) -> LoadedRun:
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} does not exist")
    if not (folder / RUN).is_file():
        raise FileNotFoundError(f"{folder} is not a run folder (no {RUN}): pass the --out of `sifeval run`")
    identity = json.loads((folder / RUN).read_text(encoding="utf-8"))
    results, scored = read_run(folder)
    bench = benchmark_class(str(identity["benchmark"])).from_options(
        identity.get("protocol"), identity.get("options") or {}
    )
    return LoadedRun(folder, identity, results, {item.sample.id: item for item in scored}, bench)


def _labels(runs: Sequence[LoadedRun]) -> list[str]:
    """Each run's panel label: its folder, model, mode and protocol, and any option that differs
    from the other run's (so that two sides can never look alike)."""
    labels = []
    for index, run in enumerate(runs):
        label = f"{run.folder.name}: {run.model} ({run.identity.get('mode', '?')}, {run.identity.get('protocol', '?')})"
        if len(runs) > 1:
            other = runs[1 - index].identity.get("options") or {}
            own = run.identity.get("options") or {}
            differing = [
                f"{key}={own.get(key)}" for key in sorted(set(own) | set(other)) if own.get(key) != other.get(key)
            ]
            if differing:
                label += " [" + ", ".join(differing) + "]"
            label = f"{'AB'[index]}: {label}"
        labels.append(label)
    return labels


def status_of(item: ScoredSample) -> str:
    """What the filters and badges call a scored sample; a failure is never "wrong"."""
    if item.request_error is not None:
        return "request error"
    if item.judge_error is not None:
        return "judge failure"
    if not item.parse_ok:
        return "parse failure"
    if item.score is None:
        return "unscored"
    if item.score >= 1.0:
        return "right"
    return "wrong" if item.score <= 0.0 else "partial"


def _conflict(item: ScoredSample) -> str | None:
    """The option a reply's words name when its letter names another (scored by the letter)."""
    option = item.details.get("conflicting_option")
    return str(option) if option is not None else None


def _reason(item: ScoredSample) -> str | None:
    if item.request_error is not None:
        return f"request error: {item.request_error}"
    if item.judge_error is not None:
        return f"the judge failed: {item.judge_error}"
    if not item.parse_ok:
        return "no answer could be read from the response (a parse failure, scored as wrong)"
    return None


def _response_text(item: ScoredSample) -> str:
    if item.response is None:
        return "(no response)"
    if not item.response.strip():
        return f"(only whitespace: {len(item.response)} characters)"
    return item.response


def _fields(item: ScoredSample) -> tuple[tuple[str, str], ...]:
    fields = [("target", item.sample.target)]
    fields.append(("extracted answer", item.extracted if item.extracted is not None else "(none)"))
    reason = _reason(item)
    if reason:
        fields.append(("why", reason))
    conflict = _conflict(item)
    if conflict is not None:
        fields.append(
            ("conflict", f"the letter names {item.extracted}, the words option {conflict}: scored by the letter")
        )
    fields.append(("response", _response_text(item)))
    if item.transcript is not None:
        fields.append(("zoom transcript", _transcript_text(item.transcript)))
    if item.details:
        fields.append(("details", json.dumps(item.details, ensure_ascii=False, default=str)))
    return tuple(fields)


def _transcript_text(transcript: Transcript) -> str:
    """Each turn of an agent's transcript: its reply, then each tool call's box and crop (the
    crop's file in the run folder's ``crops/``) or the error the model was sent."""
    lines = []
    for number, turn in enumerate(transcript.turns, 1):
        lines.append(f"turn {number}: {turn.reply}")
        for step in turn.steps:
            if step.box is not None:
                lines.append(f"  zoom on image {step.image}: box {list(step.box)} -> crops/{step.crop}.png")
            else:
                lines.append(f"  tool call refused: {step.error}")
    if transcript.stopped == "max-turns":
        lines.append("(out of turns while still calling tools: no answer)")
    return "\n".join(lines)


def _crops(run: LoadedRun, transcript: Transcript) -> tuple[Picture, ...]:
    """Each crop the agent was sent, in order, from the run folder's ``crops/``."""
    keys = [s.crop for turn in transcript.turns for s in turn.steps if s.crop is not None]

    def opener(key: str) -> Callable[[], Image.Image]:
        return lambda: Image.open(crop_path(run.folder, key))

    return tuple(Picture("crop-" + key, opener(key)) for key in keys)


def _zoom_steps(transcript: Transcript) -> tuple[tuple[FocusBox, ...], ...]:
    """Each executed zoom on the sample's own image, in order, as a focus step (per-axis
    normalized, as a SIF chain's areas are drawn)."""
    steps = []
    for step in (s for turn in transcript.turns for s in turn.steps):
        if step.box is None or step.image != 0 or step.size is None:
            continue
        width, height = step.size
        x1, y1, x2, y2 = step.box
        steps.append((FocusBox((x1 / width, y1 / height, x2 / width, y2 / height), None),))
    return tuple(steps)


def _size(ref: ImageRef) -> tuple[int, int]:
    with ref.header() as image:  # the header only
        return image.size


class DepthModel:
    """Depth estimated for samples that bring none (``--depth-model``), one image at a time.
    Loaded when made: a model that cannot be loaded stops the command before anything is
    written. Its pictures are keyed by the model's identity (a local folder's fingerprint, a Hub
    commit), so a different model in the same folder makes new ones."""

    def __init__(self, name: str, device: str | None) -> None:
        from sifdata.depth import DepthEstimator
        from sifmodel.backends.base import model_identity

        self.name = name
        self.estimator = DepthEstimator(name, device=device)
        self.estimator.pipeline  # noqa: B018 - load now: DepthModelUnavailable before any work
        identity = json.dumps(model_identity(name), sort_keys=True)
        self.tag = hashlib.sha256(identity.encode()).hexdigest()[:8]
        self._lock = threading.Lock()

    def picture(self, ref: ImageRef, key: str) -> Picture:
        def estimate() -> Image.Image:
            with self._lock:  # one model, used by one thread at a time
                return depth_to_image(self.estimator.estimate_one(ref.load().convert("RGB")))

        return Picture(f"e{self.tag}-{key}", estimate)


def _steps(run: LoadedRun, sample: Sample, item: ScoredSample, size: tuple[int, int]) -> tuple:
    if item.transcript is not None:  # a zoom agent: its tool boxes are the focus steps
        return _zoom_steps(item.transcript)
    if not item.response:
        return ()
    try:
        steps = run.bench.focus_steps(sample, item.response, *size)
    except Exception:  # a response that breaks the reader is shown as text, without boxes
        return ()
    return tuple(tuple(FocusBox(tuple(box), depth) for box, depth in step) for step in steps)  # type: ignore[arg-type]


@dataclass
class _Pictures:
    image: Picture | None = None
    more: tuple[Picture, ...] = ()
    depth: Picture | None = None
    depth_caption: str = "depth (brighter = closer)"
    size: tuple[int, int] | None = None
    truth: tuple = ()
    note: str | None = None


def _pictures(bench: Benchmark, loaded: Sample, depth_model: DepthModel | None) -> _Pictures:
    found = _Pictures()
    if not loaded.images:
        found.note = "this sample has no image"
        return found
    ref = loaded.images[0]
    try:
        found.size = _size(ref)
        key = ref.digest()
        found.image = Picture(key, ref.load)
        found.more = tuple(Picture(extra.digest(), extra.load) for extra in loaded.images[1:])
        if loaded.depth_image is not None:
            depth_ref = loaded.depth_image
            found.depth = Picture("d" + depth_ref.digest(), lambda: model_depth_image(depth_ref.load()))
            found.depth_caption = "depth: the benchmark's own map (brighter = closer)"
        elif depth_model is not None:
            found.depth = depth_model.picture(ref, key)
            found.depth_caption = f"depth: estimated by {depth_model.name} (brighter = closer)"
        found.truth = tuple(tuple(box) for box in bench.truth_boxes(loaded, *found.size))
    except (OSError, ValueError) as error:
        found = _Pictures(note=f"the image could not be read: {error}")
    return found


def _agree(present: Sequence[ScoredSample | None]) -> bool:
    """Two runs agree on a sample when they reached the same status with the same answer (two
    different wrong answers are a disagreement)."""
    if any(item is None for item in present):
        return False
    statuses = {status_of(item) for item in present if item is not None}
    answers = {item.extracted for item in present if item is not None}
    return len(statuses) == 1 and len(answers) == 1


def _item(
    runs: Sequence[LoadedRun],
    labels: Sequence[str],
    sample_id: str,
    loaded: Sample | None,
    depth_model: DepthModel | None,
    missing_note: str,
) -> ViewItem:
    present = [run.scored.get(sample_id) for run in runs]
    first = next(item for item in present if item is not None)
    sample = loaded or first.sample
    pictures = _pictures(runs[0].bench, loaded, depth_model) if loaded is not None else _Pictures(note=missing_note)
    panels = []
    for run, label, item in zip(runs, labels, present, strict=True):
        if item is None:
            panels.append(Panel(label, "not in this run"))
            continue
        steps = _steps(run, sample, item, pictures.size) if pictures.size else ()
        crops = _crops(run, item.transcript) if item.transcript is not None else ()
        panels.append(Panel(label, status_of(item), _fields(item), steps, item.score, crops))
    facets = {"category": first.sample.category}
    if len(runs) == 1:
        facets["status"] = panels[0].status
    else:
        facets["status A"], facets["status B"] = panels[0].status, panels[1].status
        facets["agreement"] = f"agree: {panels[0].status}" if _agree(present) else "disagree"
    conflicting = [side for side, item in zip("AB", present, strict=False) if item and _conflict(item)]
    if conflicting:
        where = f" in {' and '.join(conflicting)}" if len(runs) > 1 else ""
        facets["conflict"] = f"letter and text name different options{where}"
    question = first.sample.question if runs[0].identity.get("mode") == "plain" else first.sample.sif_question
    question = question or first.sample.question
    search = [sample_id, question, first.sample.target]
    for item in present:
        if item is not None:
            search += [item.extracted or "", _response_text(item)[:SEARCHED_RESPONSE]]
    return ViewItem(
        id=sample_id,
        question=question,
        category=first.sample.category,
        panels=tuple(panels),
        image=pictures.image,
        depth=pictures.depth,
        truth=pictures.truth,
        facets=facets,
        note=pictures.note,
        more_images=pictures.more,
        depth_caption=pictures.depth_caption,
        search=" ".join(search),
    )


def view_runs(
    run_dirs: Sequence[str | Path],
    out: str | Path,
    *,
    data_dir: str | Path | None = None,
    depth_model: str | None = None,
    depth_device: str | None = None,
    progress: bool = True,
    force: bool = False,
) -> SiteReport:
    """Write the viewer site of one run, or of two runs of one benchmark side by side. The
    report's ``notes`` say what the site lacks (images that could not be loaded). ``force``
    writes the site beside files the viewer did not write (never touching them)."""
    if not 1 <= len(run_dirs) <= 2:
        raise ValueError("view one run, or two runs to compare")
    if len(run_dirs) == 2 and Path(run_dirs[0]).resolve() == Path(run_dirs[1]).resolve():
        raise ValueError("the same run twice: give two different runs to compare")
    runs = [load_run(folder) for folder in run_dirs]
    names = {str(run.identity.get("benchmark")) for run in runs}
    if len(names) != 1:
        raise ValueError(f"runs of different benchmarks ({', '.join(sorted(names))}) cannot be compared")
    first = runs[0]
    bench = first.bench
    estimator = DepthModel(depth_model, depth_device) if depth_model and not bench.provides_depth else None
    data = data_dir or first.data_dir
    notes: list[str] = []
    samples: dict[str, Sample] = {}
    where = f"from {data}" if data else "from the Hub"
    try:
        samples = {sample.id: sample for sample in load_samples(bench, data)}
    except Exception as error:  # the text is still worth paging through; the site says why
        reason = str(error) if "--data" in str(error) else f"{error}; pass --data DIR"
        notes.append(
            f"images unavailable: {bench.title} could not be loaded {where} ({type(error).__name__}: {reason})"
        )
    order = [sample_id for sample_id in samples if any(sample_id in run.scored for run in runs)]
    order += [sample_id for run in runs for sample_id in run.scored if sample_id not in samples]
    order = list(dict.fromkeys(order))
    unknown = sum(1 for sample_id in order if sample_id not in samples)
    if samples and unknown:
        notes.append(f"{unknown} sample ids of the run are not in the benchmark data loaded {where}: no image for them")
    missing_note = notes[0] if not samples and notes else f"this sample id is not in the benchmark data loaded {where}"
    labels = _labels(runs)

    def items() -> Iterator[ViewItem]:
        for sample_id in order:
            yield _item(runs, labels, sample_id, samples.get(sample_id), estimator, missing_note)

    if len(runs) == 1:
        title = f"{bench.title}: {labels[0]}"
        subtitle = f"{first.folder.resolve()}: {len(order)} samples{headline(first.results)}"
        preset: dict[str, str] = {}
    else:
        title = f"{bench.title}: {runs[0].folder.name} (A) vs {runs[1].folder.name} (B)"
        subtitle = (
            f"{labels[0]}{headline(runs[0].results)} | {labels[1]}{headline(runs[1].results)} | {len(order)} samples"
        )
        preset = {"agreement": "disagree"}
        if all(_agree([run.scored.get(sample_id) for run in runs]) for sample_id in order):
            notes.append("the two runs agree on every sample: the site opens on all of them")
    subtitle = ". ".join([subtitle, *notes])
    report = write_site(
        items(),
        out,
        title=title,
        subtitle=subtitle,
        facets=FACETS,
        preset=preset,
        total=len(order),
        progress=progress,
        force=force,
    )
    return dataclasses.replace(report, notes=tuple(notes))
