"""Requests in, responses out as they complete: the streaming half of every backend.

A caller hands a backend a :class:`RequestFeed` (or any iterable of requests) and reads
responses from ``backend.stream(feed)`` in the order they finish. The feed can grow while the
stream runs: a multi-step protocol puts a sample's next request when its previous response
arrives, and the caller closes the feed when nothing more will come. A backend pulls from the
feed in a thread of its own, so the caller's loop never waits on the backend to ask.

Two ways to serve a feed, one per kind of engine:

- :func:`stream_concurrently`: a sliding window of single requests (HTTP servers): as soon as
  one finishes the next is sent, never a batch that waits for its slowest member;
- :func:`stream_in_batches`: whatever is waiting, up to a batch, per engine call (transformers,
  vLLM), never holding a batch back for requests that are not there yet.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from sifmodel.backends.base import GenerationError, GenerationRequest, GenerationResponse


class RequestFeed:
    """A thread-safe queue of requests that says when it is finished.

    ``put`` adds requests; ``close`` says no more will be added; ``take(limit)`` (the backend's
    side) waits until at least one request is waiting or the feed is closed, then returns up to
    ``limit`` of them, ``[]`` only when the feed is closed and empty.
    """

    def __init__(self, requests: Iterable[GenerationRequest] = ()) -> None:
        self._items: deque[GenerationRequest] = deque(requests)
        self._closed = False
        self._ready = threading.Condition()

    @classmethod
    def of(cls, requests: Iterable[GenerationRequest]) -> RequestFeed:
        """A feed holding ``requests``, already closed."""
        feed = requests if isinstance(requests, RequestFeed) else cls(requests)
        if not isinstance(requests, RequestFeed):
            feed.close()
        return feed

    def put(self, request: GenerationRequest) -> None:
        with self._ready:
            if self._closed:
                raise RuntimeError("put on a closed RequestFeed")
            self._items.append(request)
            self._ready.notify()

    def close(self) -> None:
        with self._ready:
            self._closed = True
            self._ready.notify_all()

    def abandon(self) -> None:
        """Close the feed and drop what was not taken yet: the reader has stopped listening."""
        with self._ready:
            self._items.clear()
            self._closed = True
            self._ready.notify_all()

    def __iter__(self) -> Iterator[GenerationRequest]:
        """One request at a time until the feed is closed and empty."""
        while taken := self.take(1):
            yield taken[0]

    def take(self, limit: int) -> list[GenerationRequest]:
        with self._ready:
            while not self._items and not self._closed:
                self._ready.wait()
            taken: list[GenerationRequest] = []
            while self._items and len(taken) < limit:
                taken.append(self._items.popleft())
            return taken


_DONE = object()


def _pump(work: Callable[[queue.Queue], None], feed: RequestFeed) -> Iterator[GenerationResponse]:
    """Run ``work(results)`` in a thread and yield what it puts, until it is done; an exception
    in the thread is raised here.

    A reader that stops early (an aborted run, Ctrl-C) abandons ``feed`` and waits for the thread
    to finish what it started: a thread left inside torch or a tokenizer while the interpreter
    shuts down ends the process in a C++ abort (exit 134) after the proper message.
    """
    results: queue.Queue = queue.Queue()

    def target() -> None:
        try:
            work(results)
        except BaseException as error:  # handed to the reading side, raised there
            results.put(error)
        finally:
            results.put(_DONE)

    thread = threading.Thread(target=target, name="sif-stream", daemon=True)
    thread.start()
    try:
        while True:
            item = results.get()
            if item is _DONE:
                break
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        feed.abandon()
        thread.join()


def stream_concurrently(
    requests: Iterable[GenerationRequest],
    run_one: Callable[[GenerationRequest], GenerationResponse],
    concurrency: int,
    prepare: Callable[[list[GenerationRequest]], list[GenerationRequest]] | None = None,
    prepare_batch: int = 16,
) -> Iterator[GenerationResponse]:
    """At most ``concurrency`` requests in flight; the next one starts the moment one finishes.

    ``prepare`` runs in the feeding thread on the requests taken together (up to
    ``prepare_batch`` of those waiting when slots are free): work that is cheaper in a batch,
    such as estimating depth maps, is done there once for several requests.
    """
    feed = RequestFeed.of(requests)

    def work(results: queue.Queue) -> None:
        slots = threading.Semaphore(concurrency)

        def finished(future: Future[GenerationResponse]) -> None:
            results.put(future.result())
            slots.release()

        with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="sif-request") as pool:
            while True:
                slots.acquire()
                free = 1
                while free < prepare_batch and slots.acquire(blocking=False):
                    free += 1
                taken = feed.take(free)
                for _ in range(free - len(taken)):
                    slots.release()
                if not taken:
                    break
                for request in prepare(taken) if prepare is not None else taken:
                    pool.submit(_safely, run_one, request).add_done_callback(finished)

    return _pump(work, feed)


def stream_in_batches(
    requests: Iterable[GenerationRequest],
    run_batch: Callable[[Sequence[GenerationRequest]], list[GenerationResponse]],
    batch_size: int,
) -> Iterator[GenerationResponse]:
    """One engine call per batch of what is waiting (up to ``batch_size``); a batch's responses
    are yielded when its call returns."""
    feed = RequestFeed.of(requests)

    def work(results: queue.Queue) -> None:
        while taken := feed.take(batch_size):
            for response in run_batch(taken):
                results.put(response)

    return _pump(work, feed)


def _safely(
    run_one: Callable[[GenerationRequest], GenerationResponse], request: GenerationRequest
) -> GenerationResponse:
    """A request's failure is that request's typed error, never the stream's."""
    try:
        return run_one(request)
    except Exception as error:
        return GenerationResponse(request.id, None, GenerationError("request", f"{type(error).__name__}: {error}"))


def in_request_order(
    requests: Sequence[GenerationRequest], responses: Iterable[GenerationResponse]
) -> list[GenerationResponse]:
    """``generate``'s answer: the streamed responses put back in the order of ``requests``."""
    by_id = {response.id: response for response in responses}
    missing = [request.id for request in requests if request.id not in by_id]
    if missing:
        raise RuntimeError(f"the backend returned no response for {len(missing)} request(s), e.g. {missing[0]}")
    return [by_id[request.id] for request in requests]
