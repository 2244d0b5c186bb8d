"""Official scores from the sample logs lmms-eval writes (``--log_samples``).

What lmms-eval 0.7.3 writes (read in its code and seen in its logs):

- files ``<output>/<model>/<date>_samples_<task>.jsonl`` beside ``<date>_results.json``
  (``loggers/evaluation_tracker.py`` L206-258);
- per line ``doc_id``, ``target``, ``filtered_resps``, ``token_counts``, ``doc_hash``, ``input``
  (the prompt text) and the task's metric dicts (``cv_bench_acc``: ``id``, ``source``, ``task``,
  ``pred``...; ``vstar_overall_acc``: ``question_id``, ``category``, ``ground_truth``...), and
  **no** ``doc``: the tracker pops it (L286). ``resps`` is dropped when it equals
  ``filtered_resps`` (L280-283); ``doc_hash`` is the hash of ``null`` on every line
  (``evaluator.py`` L349-356 hashes ``Instance.doc``, never set), so it identifies nothing.
- the reply itself: in ``filtered_resps`` for a task without a filter (``cv_bench``,
  ``vstar_bench``), or in ``resps`` when cutting ``<think>`` blocks changed it. A task with a
  filter (``sat``: its "flexible-extract" keeps the reply's first word, ``tasks/sat/utils.py``
  L87-121) logs only the filter's output unless lmms-eval ran with ``--reasoning_tags none``:
  then ``resps`` holds the raw reply as a list (``evaluator.py`` L303-346). Scoring a filtered
  word by the official protocol would be a lie, so such a log is refused (:class:`LogRefused`).
- ``<date>_results.json`` records each task's config (``dataset_path``, ``dataset_name``,
  ``filter_list``...), the CLI's ``reasoning_tags`` and lmms-eval's own figures.

The rows each line was asked about are joined by ``doc_id`` (the row's index in the split the
task read) from the folder given (``--data``), else the task's ``dataset_path`` when it is a local
folder, else the Hub copy; each join is checked against what the line itself says (its target,
its ids) and a mismatch is an error naming the line. The older layout, with ``doc`` and
``resps`` on each line, needs no join.

A reply lmms-eval could not get (``[LMMS_EVAL_REQUEST_FAILED after N retries] ...``, which it
scores as an answer: ``models/chat/openai.py`` L99-147) is a request error here, never an answer.

Counting: a ``doc_id`` logged twice with the same reply is counted once (with a note); twice with
different replies, the log is refused naming both lines. A log is measured against the rows the
task has (the rows joined, else lmms-eval's ``n-samples`` in ``results.json``): fewer lines make
the run incomplete, with a note; an empty log, or one with no way to tell, says so. One log that
cannot be read (not UTF-8, not JSON) is reported with its file and line while the others are scored.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sifdata.files import DataFileError, exclusive_lock, read_jsonl
from sifeval.adapters import Benchmark, get_benchmark
from sifeval.lmms_tasks import SCORED_KEY
from sifeval.types import Sample, ScoredSample
from sifmodel.backends import GenerationError
from sifmodel.prompts import PromptMode

LOG_NAME = re.compile(r"^(?P<date>\d{8}_\d{6})_samples_(?P<task>.+)\.jsonl$")
REQUEST_FAILED = "[LMMS_EVAL_REQUEST_FAILED"


class LogRefused(ValueError):
    """A log that cannot be scored by the official protocol (it holds no raw replies, or its
    rows cannot be joined)."""


@dataclass(frozen=True)
class LoggedTask:
    """An lmms-eval task whose logs are re-scored: the benchmark and protocol that score it,
    the dataset its YAML reads, and what its log lines say about their rows (to check a join)."""

    name: str
    bench: str
    protocol: str | None
    dataset: str
    dataset_config: str | None = None
    data_files: Mapping[str, str] | None = None
    filtered: bool = False
    stated: Callable[[dict[str, Any]], dict[str, Any]] = field(default=lambda entry: {})
    truth: Callable[[dict[str, Any]], dict[str, Any]] = field(default=lambda doc: {})
    own: bool = False  # one of sifthinker's tasks: each line holds its scored sample
    mode: PromptMode = "plain"  # where the answer is: the whole reply, or a SIF chain's <answer>
    # reads the split's rows (without images) from a folder or the Hub, where the generic
    # reading of ``dataset`` would not give the rows the task numbered
    read_rows: Callable[[str | Path | None], list[dict[str, Any]]] | None = None


def _metric(entry: dict[str, Any], key: str) -> dict[str, Any]:
    value = entry.get(key)
    return value if isinstance(value, dict) else {}


def _cvbench_rows(where: str | Path | None) -> list[dict[str, Any]]:
    """Both halves, in the order the ``default`` config reads them (``sifeval.cvbench``: that
    config cannot read the two files as one table where their column types differ)."""
    from sifeval.cvbench import CVBench

    return CVBench().rows_without_images(where)


UPSTREAM_TASKS = (
    LoggedTask(  # tasks/cv_bench/cv_bench.yaml, utils.py L41-52
        "cv_bench",
        "cvbench",
        None,
        "nyu-visionx/CV-Bench",
        "default",
        stated=lambda entry: {"target": entry.get("target"), "idx": _metric(entry, "cv_bench_acc").get("id")},
        truth=lambda doc: {"target": doc.get("answer"), "idx": doc.get("idx")},
        read_rows=_cvbench_rows,
    ),
    LoggedTask(  # tasks/vstar_bench/_default_template_yaml, utils.py L75-108
        "vstar_bench",
        "vstar",
        "generation",
        "lmms-lab-encoder/vstar-bench",
        stated=lambda entry: {
            "target": entry.get("target"),
            "question_id": _metric(entry, "vstar_overall_acc").get("question_id"),
        },
        truth=lambda doc: {"target": doc.get("label"), "question_id": doc.get("question_id")},
    ),
    LoggedTask(  # tasks/sat/sat.yaml, utils.py L15-34
        "sat",
        "sat",
        "letters",
        "nv-njb/SAT",
        filtered=True,
        stated=lambda entry: {"target": entry.get("target")},
        truth=lambda doc: (
            {"target": chr(ord("A") + int(doc["correct_answer_idx"]))}
            if doc.get("correct_answer_idx") is not None
            else {}
        ),
    ),
)
_TASK_MODES: tuple[tuple[str, PromptMode], ...] = (("", "plain"), ("_sif_rgb", "sif-rgb"))
OWN_TASKS = tuple(
    LoggedTask(f"{name}{suffix}", bench, protocol, dataset, config, files, own=True, mode=mode)
    for name, bench, protocol, dataset, config, files in (
        ("sif_cvbench", "cvbench", None, "nyu-visionx/CV-Bench", "default", None),
        ("sif_vstar", "vstar", "generation", "lmms-lab-encoder/vstar-bench", None, None),
        ("sif_sat", "sat", "official", "array/SAT", None, {"test": "SAT_test.parquet"}),
    )
    for suffix, mode in _TASK_MODES
)
TASKS = {task.name: task for task in (*UPSTREAM_TASKS, *OWN_TASKS)}


def task_for_bench(bench: str) -> LoggedTask:
    """lmms-eval's own task of a benchmark (for a log whose file name does not say)."""
    for task in UPSTREAM_TASKS:
        if task.bench == bench:
            return task
    supported = ", ".join(sorted({task.bench for task in UPSTREAM_TASKS}))
    raise ValueError(f"lmms-eval logs of {bench} are not re-scored; benchmarks: {supported}")


@dataclass
class LogRescore:
    """What became of one log: its official result, or why it was skipped or refused."""

    log: Path
    task: str | None
    out: Path | None = None
    score: float | None = None
    lmms_eval_figure: str | None = None
    skipped: str | None = None
    error: str | None = None


# ----------------------------------------------------------------------------- finding logs


def find_logs(source: str | Path) -> list[Path]:
    """The sample logs in ``source``: the file itself, or every ``*_samples_*.jsonl`` under a
    folder (a folder of logs, or lmms-eval's ``--output_path`` with its model folders)."""
    source = Path(source)
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise FileNotFoundError(f"{source} does not exist")
    logs = sorted(path for path in source.rglob("*.jsonl") if LOG_NAME.match(path.name))
    if not logs:
        raise FileNotFoundError(
            f"{source} holds no lmms-eval sample logs (<date>_samples_<task>.jsonl, written with --log_samples)"
        )
    return logs


def task_of(log: Path, bench: str | None = None) -> LoggedTask | None:
    """The task a log is of: from its file name (``<date>_samples_<task>.jsonl``), else the
    benchmark's lmms-eval task when ``bench`` is given; None for a task not re-scored here."""
    match = LOG_NAME.match(log.name)
    if match:
        task = TASKS.get(match.group("task"))
        if task is not None and bench is not None and task.bench != bench:
            raise ValueError(f"{log.name} is a log of lmms-eval's {task.name} ({task.bench}), not of {bench}")
        return task
    if bench is None:
        raise ValueError(
            f"{log.name} is not named as lmms-eval names sample logs (<date>_samples_<task>.jsonl): give --bench"
        )
    return task_for_bench(bench)


def run_record(log: Path) -> dict[str, Any]:
    """The ``<date>_results.json`` written with ``log`` (empty when absent)."""
    match = LOG_NAME.match(log.name)
    if not match:
        return {}
    path = log.with_name(f"{match.group('date')}_results.json")
    if not path.is_file():
        return {}
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


# ----------------------------------------------------------------------------- replies


def _cli_tags_disabled(record: dict[str, Any], task: str) -> bool | None:
    """Whether ``--reasoning_tags`` was off for ``task`` in the run ``record`` (None: unknown)."""
    config = record.get("configs", {}).get(task, {})
    tags = config.get("reasoning_tags") if isinstance(config, dict) else None
    if tags is None:
        cli = record.get("config", {}).get("resolved_cli_args")
        if not isinstance(cli, dict) or "reasoning_tags" not in cli:
            return None
        tags = cli["reasoning_tags"]
    return tags in (None, "none", False)


def _first(value: Any) -> Any:
    while isinstance(value, list):
        value = value[0] if value else ""
    return value


def logged_reply(entry: dict[str, Any], task: LoggedTask, raw_everywhere: bool) -> str:
    """The reply a line logged, as the model wrote it; :class:`LogRefused` when the line holds
    only a filter's output.

    ``resps`` as a list is the raw reply (lmms-eval with ``--reasoning_tags none``, or an older
    log); as a string it is the filtered reply before ``<think>`` blocks were cut, the raw reply
    only for a task without a filter. Without ``resps``, ``filtered_resps`` is the raw reply for a
    task without a filter, and for a filtered task only when the whole log kept raw replies
    (``raw_everywhere``: then a line drops ``resps`` only where the filter changed nothing)."""
    if "resps" in entry:
        resps = entry["resps"]
        if isinstance(resps, list) or not task.filtered:
            return str(_first(resps))
    elif not task.filtered or raw_everywhere:
        return str(_first(entry.get("filtered_resps", "")))
    raise LogRefused(
        f"lmms-eval's {task.name} task logs its filter's output (the reply's first word, such as "
        f"{str(_first(entry.get('filtered_resps')))!r}), not the reply: scoring that by the official "
        "protocol would be a lie. Run lmms-eval again with --reasoning_tags none (the raw reply is then "
        f"logged in resps), or run sifthinker's sif_{task.bench} task "
        "(--include_path $(sifeval lmms-eval-tasks)), which logs and scores the raw reply"
    )


# ----------------------------------------------------------------------------- rows


def _is_image(feature: Any) -> bool:
    import datasets

    if isinstance(feature, datasets.Image):
        return True
    inner = getattr(feature, "feature", None)
    if inner is not None:
        return _is_image(inner)
    return isinstance(feature, list) and bool(feature) and _is_image(feature[0])


def load_docs(task: LoggedTask, where: str | Path | None) -> list[dict[str, Any]]:
    """The rows of the split ``task`` reads, in order, without their images: from the folder
    ``where`` (a copy of the dataset in its Hub layout), else the Hub."""
    import datasets

    from sifdata.hub import load_local

    kwargs: dict[str, Any] = {"split": "test"}
    if task.data_files:
        kwargs["data_files"] = dict(task.data_files)
    try:
        if task.read_rows is not None:
            return task.read_rows(where)
        if where is not None:
            table = load_local(where, task.dataset_config, **kwargs)
        else:
            table = datasets.load_dataset(task.dataset, task.dataset_config, **kwargs)
    except Exception as error:  # the datasets library raises many kinds; each is named below
        place = where or f"the Hub copy {task.dataset}"
        raise LogRefused(
            f"the rows of lmms-eval's {task.name} task could not be read from {place} ({type(error).__name__}: "
            f"{str(error)[:200]}); give --data {task.name}=DIR, the folder the task read"
        ) from None
    images = [name for name, feature in table.features.items() if _is_image(feature)]
    return table.remove_columns(images).to_list()


def _join(entry: dict[str, Any], docs: Sequence[dict[str, Any]], task: LoggedTask, where: str) -> dict[str, Any]:
    doc_id = entry.get("doc_id")
    if not isinstance(doc_id, int) or not 0 <= doc_id < len(docs):
        raise LogRefused(
            f"doc_id {doc_id!r} is not a row of {where} ({len(docs)} rows): not the copy lmms-eval's {task.name} read"
        )
    doc = docs[doc_id]
    stated, truth = task.stated(entry), task.truth(doc)
    for key, value in stated.items():
        if value is not None and key in truth and str(truth[key]) != str(value):
            raise LogRefused(
                f"doc_id {doc_id}: the log says {key} {value!r}, row {doc_id} of {where} says {truth[key]!r}: "
                f"{where} is not the copy lmms-eval's {task.name} read"
            )
    return doc


# ----------------------------------------------------------------------------- scoring


def _scored(bench: Benchmark, sample: Sample, reply: str, mode: PromptMode) -> ScoredSample:
    if reply.startswith(REQUEST_FAILED):
        return bench.unanswered(sample, GenerationError("lmms-eval", reply[:300]))
    return bench.score(sample, reply, mode)


def score_log(
    log: Path, task: LoggedTask, data: str | Path | None = None, record: dict[str, Any] | None = None
) -> tuple[Benchmark, list[ScoredSample], list[str]]:
    """Every line of ``log`` scored by the official protocol (each ``doc_id`` once), and notes on
    how (``record``: the run's ``results.json``, read here when not given)."""
    bench, scored, notes, _ = _score_log(log, task, data, record)
    return bench, scored, notes


def _score_log(
    log: Path, task: LoggedTask, data: str | Path | None, record: dict[str, Any] | None
) -> tuple[Benchmark, list[ScoredSample], list[str], int | None]:
    """:func:`score_log`, and the number of rows joined (None when none were)."""
    from sifeval.rundir import scored_from_json

    bench = get_benchmark(task.bench, task.protocol)
    record = run_record(log) if record is None else record
    entries = [(number, entry) for number, entry in read_jsonl(log)]
    notes = [f"re-scored from lmms-eval's {task.name} log {log.name} by the official protocol"]
    if task.protocol is not None and task.protocol != bench.default_protocol:
        notes.append(f"lmms-eval's {task.name} asks as our `{task.protocol}` protocol does: scored by it")
    disabled = _cli_tags_disabled(record, task.name)
    raw_everywhere = disabled is True or (
        disabled is None and any(isinstance(entry.get("resps"), list) for _, entry in entries)
    )
    docs: list[dict[str, Any]] | None = None
    where = ""
    scored: list[ScoredSample] = []
    seen: dict[Any, tuple[int, str, Any]] = {}
    repeated = 0
    if not entries:
        raise LogRefused(f"{log} is empty: lmms-eval logged no sample (a run that wrote nothing, or a cut file)")
    for number, entry in entries:
        if not isinstance(entry, dict) or "doc_id" not in entry:
            raise DataFileError(f"{log}: line {number}: not an lmms-eval sample (no doc_id)")
        try:
            reply = logged_reply(entry, task, raw_everywhere)
            doc_id = entry["doc_id"]
            key = json.dumps(doc_id)
            if key in seen:
                first, first_reply, first_target = seen[key]
                if (first_reply, first_target) != (reply, entry.get("target")):
                    raise LogRefused(
                        f"doc_id {doc_id} is logged on line {first} and again here with another reply or "
                        "target: the log mixes two runs, which cannot be scored as one"
                    )
                repeated += 1
                continue
            seen[key] = (number, reply, entry.get("target"))
            if task.own:
                logged = entry.get(SCORED_KEY)
                if not isinstance(logged, dict):
                    raise LogRefused(f"no {SCORED_KEY}: not written by sifthinker's {task.name} task")
                samples = [scored_from_json(logged).sample]
            else:
                doc = entry.get("doc")
                if not isinstance(doc, dict):
                    if docs is None:
                        source = data if data is not None else _local_dataset(record, task)
                        docs = load_docs(task, source)
                        where = str(source) if source is not None else f"the Hub copy {task.dataset}"
                        notes.append(f"rows joined by doc_id from {where}")
                    doc = _join(entry, docs, task, where)
                samples = bench.samples_from_lmms_eval(doc, int(entry["doc_id"]))
        except (LogRefused, KeyError, TypeError, ValueError) as error:
            raise LogRefused(f"{log}: line {number}: {error}") from None
        scored.extend(_scored(bench, sample, reply, task.mode) for sample in samples)
    if repeated:
        notes.append(f"{repeated} lines repeat a doc_id already logged with the same reply: counted once")
    return bench, scored, notes, len(docs) if docs is not None else None


def expected_samples(record: dict[str, Any], task: LoggedTask, docs_joined: int | None) -> tuple[int | None, str]:
    """How many samples the task's log should hold (None: unknown), and a note on how that is known."""
    if docs_joined is not None:
        return docs_joined, ""
    counts = record.get("n-samples", {}).get(task.name) if isinstance(record.get("n-samples"), dict) else None
    if isinstance(counts, dict) and isinstance(counts.get("effective"), int):
        effective, original = counts["effective"], counts.get("original")
        note = (
            f"lmms-eval ran {effective} of the task's {original} docs (--limit)"
            if isinstance(original, int) and original > effective
            else ""
        )
        return effective, note
    return None, (
        "the log's coverage of the task cannot be checked: no results.json beside it (lmms-eval's n-samples) "
        "and no rows joined"
    )


def _local_dataset(record: dict[str, Any], task: LoggedTask) -> Path | None:
    """The task's ``dataset_path`` from the run's record, when it is a folder on this machine."""
    config = record.get("configs", {}).get(task.name, {})
    path = config.get("dataset_path") if isinstance(config, dict) else None
    return Path(path) if isinstance(path, str) and Path(path).is_dir() else None


def lmms_eval_figures(record: dict[str, Any], task: str) -> str | None:
    """lmms-eval's own headline figures for ``task`` in its results record, as it printed them."""
    results = record.get("results", {}).get(task)
    if not isinstance(results, dict):
        return None
    figures = [
        f"{key} = {value:.4g}"
        for key, value in results.items()
        if "," in key and "_stderr" not in key and isinstance(value, int | float)
    ]
    return "; ".join(figures) or None


def rescore_logs(
    source: str | Path,
    out: str | Path,
    bench: str | None = None,
    data: Mapping[str, str | Path] | None = None,
) -> list[LogRescore]:
    """Re-score every lmms-eval sample log in ``source`` (a file, a folder of them, or an
    lmms-eval output folder) by the official protocols: one run folder (``samples.jsonl``,
    ``results.json``) per log, ``out`` itself for a single file, ``out/<date>_<task>`` otherwise.

    ``data`` maps a task name (or ``""``, for every task) to the folder that task read. A log of
    a task not scored here is skipped, saying so; one that cannot be scored honestly is reported
    with its reason (``error``) while the others go on."""
    with exclusive_lock(out, "sifeval rescore --from-lmms-eval"):
        return _rescore_logs(find_logs(source), Path(out), Path(source).is_file(), bench, data)


def _rescore_logs(
    logs: list[Path], out: Path, single: bool, bench: str | None, data: Mapping[str, str | Path] | None
) -> list[LogRescore]:
    from sifeval.rundir import SAMPLES, scored_to_json, summarize, write_results

    outcomes: list[LogRescore] = []
    for log in logs:
        try:
            task = task_of(log, bench)
        except ValueError as error:
            outcomes.append(LogRescore(log, None, error=str(error)))
            continue
        if task is None:
            name = LOG_NAME.match(log.name)
            outcomes.append(
                LogRescore(
                    log,
                    name.group("task") if name else None,
                    skipped="not a task sifeval scores (" + ", ".join(sorted(TASKS)) + ")",
                )
            )
            continue
        target = out if single else out / _folder_name(log)
        outcome = LogRescore(log, task.name, target)
        outcomes.append(outcome)
        where = (data or {}).get(task.name, (data or {}).get(""))
        record = run_record(log)
        try:
            scored_bench, scored, notes, joined = _score_log(log, task, where, record)
        except (LogRefused, DataFileError, OSError) as error:
            outcome.error = str(error)
            continue
        total, coverage = expected_samples(record, task, joined)
        if coverage:
            notes.append(coverage)
        outcome.lmms_eval_figure = lmms_eval_figures(record, task.name)
        if outcome.lmms_eval_figure:
            notes.append(f"lmms-eval itself reported {outcome.lmms_eval_figure}")
        target.mkdir(parents=True, exist_ok=True)
        (target / SAMPLES).write_text("".join(json.dumps(scored_to_json(s)) + "\n" for s in scored), encoding="utf-8")
        model = record.get("model_name") or (log.parent.name if LOG_NAME.match(log.name) else "")
        result = summarize(
            scored_bench,
            scored,
            task.mode,
            None,
            {
                "spec": f"lmms-eval {record.get('lmms_eval_version', '')} log {log.name}".replace("  ", " "),
                "name": model,
            },
            None,
            {"notes": notes},
            total=total,
            partial="the log holds fewer lines than the task has docs",
            ask_again="lmms-eval could not get their replies; run it again for them.",
        )
        if total is None:
            result.complete = False  # nothing says the log holds every sample
        write_results(target, result)
        outcome.score = result.metrics.get("score")
    return outcomes


def _folder_name(log: Path) -> str:
    match = LOG_NAME.match(log.name)
    return f"{match.group('date')}_{match.group('task')}" if match else log.stem
