"""metrics/prefetch.py: order kept, look-ahead bounded, errors raised where they happened."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from dreambench.metrics.prefetch import background, ordered_map


def test_ordered_map_keeps_order_with_several_workers() -> None:
    assert list(ordered_map(lambda x: x * x, range(50), workers=4, window=7)) == [x * x for x in range(50)]


def test_ordered_map_raises_at_the_failing_item() -> None:
    def fn(x: int) -> int:
        if x == 3:
            raise ValueError("bad item 3")
        return x

    got: list[int] = []
    with pytest.raises(ValueError, match="bad item 3"):
        for value in ordered_map(fn, range(10), workers=2, window=4):
            got.append(value)
    assert got == [0, 1, 2]


def test_background_holds_at_most_depth_items_ahead() -> None:
    produced: list[int] = []
    consumed = threading.Event()

    def source() -> Iterator[int]:
        for i in range(10):
            produced.append(i)
            yield i

    it = background(source(), depth=2)
    assert next(it) == 0
    # Wait until the producer is blocked on the full queue: items 1, 2 queued, item 3 in hand.
    for _ in range(200):
        if len(produced) >= 4:
            break
        consumed.wait(0.01)
    assert len(produced) <= 4
    assert list(it) == list(range(1, 10))


def test_background_reraises_producer_errors_and_stops_when_closed() -> None:
    def failing() -> Iterator[int]:
        yield 1
        raise RuntimeError("decode failed")

    it = background(failing(), depth=1)
    assert next(it) == 1
    with pytest.raises(RuntimeError, match="decode failed"):
        next(it)

    closed = threading.Event()

    def endless() -> Iterator[int]:
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.set()

    it = background(endless(), depth=2)
    assert next(it) == 0
    it.close()  # joins the producer thread, which closes its source
    assert closed.is_set()
