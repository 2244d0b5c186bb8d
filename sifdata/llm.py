"""One client for OpenAI-compatible chat endpoints, shared by the data writer, the model
backend and the judge: bounded retries with backoff on 429/5xx/timeouts/connection errors
(``Retry-After`` honoured, read defensively), a total deadline on every attempt, typed errors,
token counts and latency, and a key that is handed to the HTTP client and never appears in a
message, a log line or a result.
"""

from __future__ import annotations

import math
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass
class RetryPolicy:
    attempts: int = 5
    base_delay: float = 1.0
    max_delay: float = 30.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before attempt ``attempt + 1``: the server's ``Retry-After`` when it gave
        a usable one (never below 0, never above ``max_delay``), else backoff with jitter."""
        if retry_after is not None and math.isfinite(retry_after):
            return min(max(retry_after, 0.0), self.max_delay)
        return min(self.base_delay * 2 ** (attempt - 1), self.max_delay) * random.uniform(0.5, 1.0)


class DeadlineExceeded(TimeoutError):
    """An attempt that did not end within its total deadline."""


def within_deadline(call: Callable[[], T], seconds: float) -> T:
    """``call()``'s result, or :class:`DeadlineExceeded` once ``seconds`` have passed, however the
    server answers: a reply that trickles in a byte at a time (each read well inside the socket's
    read timeout) is cut off at the deadline too. The call runs in a daemon thread; past the
    deadline it is abandoned (its connection ends with the server or with the process)."""
    outcome: dict[str, Any] = {}
    done = threading.Event()

    def attempt() -> None:
        try:
            outcome["value"] = call()
        except BaseException as error:  # handed to the caller's thread as it is
            outcome["error"] = error
        finally:
            done.set()

    threading.Thread(target=attempt, name="sif-chat-attempt", daemon=True).start()
    if not done.wait(seconds):
        raise DeadlineExceeded(f"no complete reply within {seconds:g} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]  # type: ignore[no-any-return]


@dataclass(frozen=True)
class ChatResult:
    text: str
    prompt_tokens: int | None
    completion_tokens: int | None
    latency_s: float
    attempts: int
    tool_calls: tuple[ChatToolCall, ...] = ()


@dataclass(frozen=True)
class ChatToolCall:
    """A tool call the server returned (``arguments`` the JSON text as sent, unparsed)."""

    id: str
    name: str
    arguments: str


def _tool_calls(response: Any) -> tuple[ChatToolCall, ...]:
    """The API tool calls of a chat completion's first choice (none when it has none)."""
    message = getattr(response.choices[0], "message", None)
    calls = []
    for call in getattr(message, "tool_calls", None) or []:
        function = getattr(call, "function", None)
        calls.append(
            ChatToolCall(
                str(getattr(call, "id", "") or ""),
                str(getattr(function, "name", "") or ""),
                str(getattr(function, "arguments", "") or ""),
            )
        )
    return tuple(calls)


class ChatError(RuntimeError):
    """A chat call that failed.

    ``fatal``: every other call would fail the same way (a bad key, an unknown model): stop.
    ``transient``: the endpoint was unreachable or overloaded through every retry (timeouts,
    connection errors, 429, 5xx): nothing is wrong with the request; ask again later.
    Neither: this request failed (a 400, a reply that is not a chat completion).
    ``status``: the HTTP status when there was one.
    """

    def __init__(self, reason: str, *, fatal: bool = False, transient: bool = False, status: int | None = None) -> None:
        self.reason = reason
        self.fatal = fatal
        self.transient = transient
        self.status = status
        super().__init__(reason)


def retry_after_seconds(header: str | None) -> float | None:
    """A ``Retry-After`` header in seconds: a delay ("5") or an HTTP date; None when absent or
    unusable (negative, NaN, infinite, garbage). :meth:`RetryPolicy.delay` caps it."""
    if header is None:
        return None
    try:
        value = float(header)
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            when = parsedate_to_datetime(header)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        value = when.timestamp() - time.time()
        return max(value, 0.0)
    return value if math.isfinite(value) and value >= 0 else None


def _completion_text(response: Any) -> str:
    """The text of a chat completion; :class:`ChatError` when the server answered 200 with
    something else (an HTML page, a proxy's error text, a JSON object of another shape)."""
    choices = getattr(response, "choices", None)
    if not isinstance(choices, list):
        shown = _short(str(response), 120)
        raise ChatError(f"the server answered 200 with a body that is not a chat completion: {shown!r}")
    if not choices:
        raise ChatError("the response has no choices")
    message = getattr(choices[0], "message", None)
    content = getattr(message, "content", None)
    if content is not None and not isinstance(content, str):
        raise ChatError(f"the reply's content is a {type(content).__name__}, not text")
    # An empty completion is an answer (the caller decides what it is worth).
    return content or ""


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


class ChatClient:
    """Chat completions against ``base_url`` for ``model``.

    ``api_key`` falls back to the environment variable named by ``key_env`` (then
    ``OPENAI_API_KEY``); local servers that need no key get a dummy one. ``timeout`` is each
    attempt's total deadline (connection, first byte and the whole reply), not only a limit on
    each socket read.
    """

    def __init__(
        self,
        model: str,
        base_url: str | None,
        api_key: str | None = None,
        *,
        key_env: str | None = None,
        timeout: float = 120.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        from openai import OpenAI

        self.model = model
        self.base_url = base_url
        key = api_key or (os.environ.get(key_env) if key_env else None) or os.environ.get("OPENAI_API_KEY") or "EMPTY"
        # max_retries=0: the retries are ours, so that each one is bounded and counted.
        # The deadline (``within_deadline``) decides; the socket timeout behind it only ends an
        # abandoned attempt's thread some time after.
        self._client = OpenAI(base_url=base_url, api_key=key, timeout=timeout + 10.0, max_retries=0)
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self._lock = threading.Lock()
        self.retries = 0

    def reported_model(self) -> dict[str, Any] | None:
        """The server's ``/v1/models`` entry for this model (stable fields only), or None when the
        server lists no such model or cannot be asked."""
        import openai

        try:
            listed = self._client.models.list()
        except (openai.APIError, openai.APIConnectionError, openai.APITimeoutError):
            return None
        for entry in getattr(listed, "data", None) or []:
            data = entry.model_dump() if hasattr(entry, "model_dump") else dict(entry)
            if data.get("id") == self.model:
                # "created" is the time of the listing on some servers (vLLM): not an identity.
                return {key: value for key, value in data.items() if key not in ("created", "object")}
        return None

    def complete(self, messages: list[dict[str, Any]], **params: Any) -> ChatResult:
        """One completion's text, or :class:`ChatError` once the retries are spent."""
        import openai

        last = ""
        started = time.perf_counter()
        for attempt in range(1, self.retry.attempts + 1):
            retry_after: float | None = None
            try:
                response = within_deadline(
                    lambda: self._client.chat.completions.create(
                        model=self.model,
                        messages=messages,  # type: ignore[arg-type]  # plain dicts of the same shape
                        **params,
                    ),
                    self.timeout,
                )
            except DeadlineExceeded:
                last = f"no complete reply from {self.base_url} within the {self.timeout:g} s deadline"
            except (openai.APITimeoutError, openai.APIConnectionError) as error:
                last = f"{type(error).__name__} talking to {self.base_url}"
            except openai.APIStatusError as error:
                status = error.status_code
                if status in (401, 403, 404):
                    raise ChatError(
                        f"{self.base_url} answered HTTP {status} for model {self.model!r}: check the model and key",
                        fatal=True,
                        status=status,
                    ) from None
                if status != 429 and status < 500:
                    raise ChatError(f"HTTP {status}: {_short(error.message)}", status=status) from None
                last = f"HTTP {status}"
                header = error.response.headers.get("retry-after") if error.response is not None else None
                retry_after = retry_after_seconds(header)
            else:
                text = _completion_text(response)  # ChatError for a 200 that is no chat completion
                usage = getattr(response, "usage", None)
                return ChatResult(
                    text=text,
                    prompt_tokens=getattr(usage, "prompt_tokens", None),
                    completion_tokens=getattr(usage, "completion_tokens", None),
                    latency_s=time.perf_counter() - started,
                    attempts=attempt,
                    tool_calls=_tool_calls(response),
                )
            if attempt < self.retry.attempts:
                with self._lock:
                    self.retries += 1
                time.sleep(self.retry.delay(attempt, retry_after))
        raise ChatError(f"gave up after {self.retry.attempts} attempts ({last})", transient=True)
