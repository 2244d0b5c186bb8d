"""Judging an answer against a reference: rules where the answer type allows, a model otherwise.

- :func:`rule_score`: multiple choice, yes/no and numbers, exactly; ``None`` when no rule
  applies (free-form answers).
- :class:`LLMJudge`: an OpenAI-compatible judge model returning ``{"score": s}``, s in [0, 1];
  concurrent with a bounded pool, a response cache (in memory, and on disk with
  ``cache_dir``), timeouts and retries. A failed judgement is a :class:`JudgeResult` with an
  error, never a score of 0; what happens next is the caller's explicit failure policy.
  :meth:`LLMJudge.ask_many` asks any :class:`JudgePrompt` (a benchmark's official grading
  prompt, the evaluation's choice judge) and returns what its parser reads.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Literal, Protocol, TypeVar, runtime_checkable

from PIL import Image

from sifdata.answers import answers_agree, rule_agreement
from sifdata.files import DiskCache
from sifdata.images import image_data_url
from sifdata.llm import ChatClient, ChatError, RetryPolicy
from sifdata.plugins import Registry
from sifmodel.config import JUDGE_GROUP, JudgeSettings


def rule_score(prediction: str, reference: str) -> float | None:
    """1.0 / 0.0 when a rule decides (options, yes/no, numbers); None for free-form answers.

    The rules are :func:`sifdata.answers.rule_agreement`, the same ones the builder's check,
    the match judge and evaluation use.
    """
    verdict = rule_agreement(prediction, reference)
    return None if verdict is None else float(verdict)


JUDGE_PROMPT = """You grade answers to questions about an image.
Question: {question}
Reference answer: {reference}
Model answer: {prediction}
How close is the model answer to the reference answer in meaning? Reply with JSON only:
{{"score": s}} where s is a number from 0 (wrong) to 1 (same meaning)."""


@dataclass(frozen=True)
class JudgeItem:
    question: str
    reference: str
    prediction: str
    image: Image.Image | None = None


Value = TypeVar("Value")


@dataclass(frozen=True)
class JudgePrompt(Generic[Value]):
    """How a judge model is asked and how its reply is read: a benchmark with an official
    judge prompt (the Visual-CoT benchmark's) brings its own; anything the parser cannot read
    raises ``ValueError``, which is a judge failure, never a score. ``messages`` takes the
    prompt's own item (a :class:`JudgeItem` for grading prompts). What ``parse`` returns must be
    JSON (it is cached on disk); ``name`` is part of every cache key: change it whenever the
    messages or the parser change."""

    name: str
    messages: Callable[[Any], list[dict[str, Any]]]
    parse: Callable[[str], Value]


@dataclass(frozen=True)
class Asked(Generic[Value]):
    """What a judge model's reply to one item was read as (``value``), or why it could not be
    (``error``); ``cached``: answered from the cache, no call made."""

    value: Value | None
    error: str | None = None
    cached: bool = False


@dataclass(frozen=True)
class JudgeResult:
    score: float | None
    source: Literal["rule", "llm", "cache", "none"]
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.score is not None


@runtime_checkable
class Judge(Protocol):
    """Scores answers against references: what the GRPO-SIF accuracy reward and the Visual-CoT
    benchmark ask of a judge. A failure is a :class:`JudgeResult` with an error, never a 0.

    ``model`` names what judged (recorded with results and in caches); ``prompt`` is a
    benchmark's official grading prompt, for judges that ask a model (others may ignore it).
    A judge that answers slowly may set ``concurrency``: how many items it takes at once."""

    model: str | None

    def score_many(self, items: Sequence[JudgeItem], prompt: JudgePrompt[float] | None = None) -> list[JudgeResult]: ...


class JudgeFactory(Protocol):
    """What a ``sifmodel.judges`` entry point names: a class built from :class:`JudgeSettings`
    (the ``judge:`` section of a config, ``--judge NAME`` in ``sifeval``)."""

    @classmethod
    def from_settings(cls, settings: JudgeSettings) -> Judge: ...


JUDGES: Registry[type[JudgeFactory]] = Registry(
    group=JUDGE_GROUP,
    noun="judge",
    accepts=lambda loaded: isinstance(loaded, type) and callable(getattr(loaded, "from_settings", None)),
    expected="a judge class with a from_settings(settings) class method",
)


def _image_digest(image: Image.Image) -> str:
    return hashlib.sha256(image.tobytes()).hexdigest()[:16]


def parse_judge_reply(text: str) -> float:
    """The score of a judge reply: ``{"score": s}`` (also fenced in a code block),
    ``score: s``, or a bare number ``s``, with s in [0, 1]. Anything else is ``ValueError``: a
    judge failure, never a score."""
    match = re.search(r"\{[^{}]*\}", text)
    if match:
        try:
            value = json.loads(match.group(0)).get("score")
        except (json.JSONDecodeError, AttributeError):
            value = None
        if isinstance(value, int | float) and not isinstance(value, bool):
            if 0.0 <= value <= 1.0:
                return float(value)
            raise ValueError(f"judge score {value} is outside [0, 1]")
    match = re.search(r"score\s*[:=]\s*(-?\d+(?:\.\d+)?)", text, re.IGNORECASE)
    if match and 0.0 <= float(match.group(1)) <= 1.0:
        return float(match.group(1))
    bare = text.strip().strip("`").strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", bare) and 0.0 <= float(bare) <= 1.0:
        return float(bare)
    raise ValueError(f"judge reply has no score: {text[:120]!r}")


class LLMJudge:
    """A judge model behind an OpenAI-compatible endpoint.

    Configured by arguments or ``SIF_JUDGE_BASE_URL``, ``SIF_JUDGE_MODEL`` and
    ``SIF_JUDGE_API_KEY``. ``concurrency`` calls run at once (the judge is the slow part of a
    GRPO step); results are cached by (model, question, reference, prediction).
    """

    def __init__(
        self,
        model: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        concurrency: int = 32,
        timeout: float = 60.0,
        retry: RetryPolicy | None = None,
        with_image: bool = False,
        max_tokens: int = 512,
        temperature: float = 0.0,
        cache_dir: str | Path | None = None,
    ) -> None:
        self.model = model or os.environ.get("SIF_JUDGE_MODEL")
        base_url = base_url or os.environ.get("SIF_JUDGE_BASE_URL")
        if not self.model or not base_url:
            raise ValueError(
                "the judge needs a model and an endpoint: set SIF_JUDGE_BASE_URL and SIF_JUDGE_MODEL "
                "(and SIF_JUDGE_API_KEY), or pass them in the config"
            )
        self.client = ChatClient(
            self.model, base_url, api_key, key_env="SIF_JUDGE_API_KEY", timeout=timeout, retry=retry or RetryPolicy(3)
        )
        self.concurrency = concurrency
        self.with_image = with_image
        # A reasoning judge thinks before it scores: too few tokens cut every reply short.
        self.max_tokens = max_tokens
        self.temperature = temperature
        self._cache: dict[str, Any] = {}
        self._disk = DiskCache(cache_dir, suffix=".json") if cache_dir is not None else None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: JudgeSettings) -> LLMJudge:
        return cls(
            settings.model,
            settings.base_url,
            concurrency=settings.concurrency,
            timeout=settings.timeout,
            with_image=settings.with_image,
            max_tokens=settings.max_tokens,
            temperature=settings.temperature,
        )

    def _key(self, item: JudgeItem, prompt: JudgePrompt[float] | None = None) -> str:
        """A cache entry's name, kept stable so that a judge cache outlives releases: the SHA-256
        of the JSON list [model, prompt name ("sif" for ours), question, reference, prediction,
        image], the image being the first 16 hex digits of the SHA-256 of its pixels when the
        judge sends images, else null. Entries are ``<cache_dir>/<key[:2]>/<key>.json``."""
        name = prompt.name if prompt is not None else "sif"
        image = _image_digest(item.image) if self.with_image and item.image is not None else None
        payload = json.dumps([self.model, name, item.question, item.reference, item.prediction, image])
        return hashlib.sha256(payload.encode()).hexdigest()

    def _messages(self, item: JudgeItem) -> list[dict[str, Any]]:
        text = JUDGE_PROMPT.format(question=item.question, reference=item.reference, prediction=item.prediction)
        if self.with_image and item.image is not None:
            url = image_data_url(item.image, max_side=512)
            return [
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": text}],
                }
            ]
        return [{"role": "user", "content": text}]

    def _cached(self, key: str) -> tuple[bool, Any]:
        with self._lock:
            if key in self._cache:
                return True, self._cache[key]
        if self._disk is not None:
            value = self._disk.get_json(key)  # a damaged entry is removed and asked again
            if value is not None:
                with self._lock:
                    self._cache[key] = value
                return True, value
        return False, None

    def _remember(self, key: str, value: Any) -> None:
        with self._lock:
            self._cache[key] = value
        if self._disk is not None:
            self._disk.put(key, json.dumps(value))

    def _ask(self, key: str, messages: Callable[[], list[dict[str, Any]]], parse: Callable[[str], Any]) -> Asked[Any]:
        hit, value = self._cached(key)
        if hit:
            return Asked(value, cached=True)
        try:
            reply = self.client.complete(messages(), temperature=self.temperature, max_tokens=self.max_tokens)
            value = parse(reply.text)
        except ChatError as error:
            return Asked(None, error.reason)
        except ValueError as error:
            return Asked(None, str(error))
        self._remember(key, value)
        return Asked(value)

    def _judge(self, item: JudgeItem, prompt: JudgePrompt[float] | None = None) -> JudgeResult:
        parse = prompt.parse if prompt is not None else parse_judge_reply
        asked = self._ask(
            self._key(item, prompt),
            lambda: prompt.messages(item) if prompt is not None else self._messages(item),
            parse,
        )
        if asked.value is None:
            return JudgeResult(None, "llm", asked.error)
        return JudgeResult(float(asked.value), "cache" if asked.cached else "llm")

    def score_many(self, items: Sequence[JudgeItem], prompt: JudgePrompt[float] | None = None) -> list[JudgeResult]:
        """Judge ``items`` concurrently, with ``prompt`` (a benchmark's official one) or ours."""
        if not items:
            return []
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(items)), thread_name_prefix="sif-judge") as pool:
            return list(pool.map(lambda item: self._judge(item, prompt), items))

    def ask_many(self, items: Sequence[Any], prompt: JudgePrompt[Value]) -> list[Asked[Value]]:
        """Ask ``prompt`` about each item concurrently; each answer is what ``prompt.parse`` read
        from the reply (cached by this judge's model, the prompt's name and the
        messages sent), or the reason there is none."""
        if not items:
            return []

        # A cache entry is named by the SHA-256 of the JSON list [model, prompt name, messages],
        # keys sorted, so that it names exactly what was sent.
        def one(item: Any) -> Asked[Value]:
            messages = prompt.messages(item)
            payload = json.dumps([self.model, prompt.name, messages], sort_keys=True, default=str)
            return self._ask(hashlib.sha256(payload.encode()).hexdigest(), lambda: messages, prompt.parse)

        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(items)), thread_name_prefix="sif-judge") as pool:
            return list(pool.map(one, items))


def judge_answers(items: Sequence[JudgeItem], llm: Judge | None) -> list[JudgeResult]:
    """Rules first; the remaining free-form answers go to ``llm`` together (concurrently).

    Without a judge model, free-form answers come back as errors saying so, not as zeros.
    """
    results: list[JudgeResult | None] = []
    pending: list[int] = []
    for index, item in enumerate(items):
        score = rule_score(item.prediction, item.reference)
        results.append(JudgeResult(score, "rule") if score is not None else None)
        if score is None:
            pending.append(index)
    if pending:
        if llm is None:
            for index in pending:
                results[index] = JudgeResult(None, "none", "free-form answer and no judge model configured")
        else:
            for index, result in zip(pending, llm.score_many([items[i] for i in pending]), strict=True):
                results[index] = result
    return [r for r in results if r is not None]


class MatchJudge:
    """Free-form answers scored by agreement with the reference (normalized containment,
    numbers, yes/no), with no model. Weaker than a judge model; for offline runs, and
    labelled as such in the training config."""

    model = "answer-match"

    @classmethod
    def from_settings(cls, settings: JudgeSettings) -> MatchJudge:
        return cls()

    def score_many(self, items: Sequence[JudgeItem], prompt: JudgePrompt[float] | None = None) -> list[JudgeResult]:
        """Agreement by rule (``sifdata.answers``); ``prompt`` is for judge models and not used."""
        return [JudgeResult(1.0 if answers_agree(item.prediction, item.reference) else 0.0, "rule") for item in items]


def make_judge(settings: JudgeSettings) -> Judge:
    """The judge a config names (``settings.kind``): a class registered under ``sifmodel.judges``,
    the built-ins ``llm`` (a judge model) and ``match`` (offline answer agreement) included."""
    return JUDGES.load(settings.kind).from_settings(settings)
