"""Bounded prefetch: produce the next items in background threads while the caller uses this one.

The Scorer decodes and preprocesses images here while the network runs on the previous batch
(on 2 CPU cores decoding is ~10 % of the work; on a GPU it is the bottleneck). Both helpers keep
order and hold at most a fixed number of items ahead, so memory stays bounded whatever the job
size, and an exception in a worker is raised in the caller at the item where it happened.
Threads, not processes: Pillow's decode and resize and torch's tensor ops release the GIL.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

_DONE = object()
# How often a blocked producer checks whether the consumer went away (seconds).
_POLL_S = 0.1


def ordered_map(fn: Callable[[T], R], items: Iterable[T], workers: int, window: int) -> Iterator[R]:
    """`fn(item)` for each item, in order, computed by `workers` threads at most `window` ahead."""
    if workers < 1 or window < 1:
        raise ValueError(f"workers and window must be >= 1, got {workers} and {window}")
    pending: deque[Future[R]] = deque()
    source = iter(items)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dreambench-decode") as pool:
        try:
            for item in source:
                pending.append(pool.submit(fn, item))
                if len(pending) >= window:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


def background(items: Iterable[T], depth: int) -> Iterator[T]:
    """Iterate `items` in a daemon thread, at most `depth` items ahead of the consumer.

    Closing the returned generator early (or an exception in the consumer) stops the producer at
    its next item; an exception raised while producing is re-raised here.
    """
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    slots: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry: object) -> bool:
        while not stop.is_set():
            try:
                slots.put(entry, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((item, None)):
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            put((None, exc))
            return
        finally:
            # A generator source (e.g. ordered_map) shuts its worker threads down now, not at GC.
            close = getattr(items, "close", None)
            if close is not None:
                close()
        put(_DONE)

    thread = threading.Thread(target=produce, name="dreambench-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            entry = slots.get()
            if entry is _DONE:
                return
            item, exc = entry  # type: ignore[misc]
            if exc is not None:
                raise exc
            yield item
    finally:
        stop.set()
        thread.join()
