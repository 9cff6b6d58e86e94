"""``iter_in_threads``: results in order, as they come, a bounded number of items started
ahead of the caller, and a failure raised where its item is taken."""

from __future__ import annotations

import threading
import time

import pytest

from clv_pipeline.parquet import iter_in_threads, map_in_threads


def test_results_come_in_order_whatever_finishes_first() -> None:
    def work(i: int) -> int:
        time.sleep(0.002 * ((7 * i) % 5))  # later items often finish first
        return i * i

    items = list(range(40))
    assert list(iter_in_threads(work, items, workers=4, ahead=6)) == [i * i for i in items]
    assert map_in_threads(work, items, workers=4) == [i * i for i in items]
    assert list(iter_in_threads(work, items, workers=1)) == [i * i for i in items]


@pytest.mark.parametrize("ahead", [1, 3, 8])
def test_no_more_than_ahead_items_are_started_before_the_caller_takes_them(ahead: int) -> None:
    started: list[int] = []
    lock = threading.Lock()

    def work(i: int) -> int:
        with lock:
            started.append(i)
        return i

    taken = 0
    for result in iter_in_threads(work, list(range(30)), workers=4, ahead=ahead):
        assert result == taken
        taken += 1
        time.sleep(0.005)  # a slow caller: the threads would run far ahead if unbounded
        with lock:
            # the items started: those taken plus at most `ahead` waiting
            assert len(started) <= taken + ahead
    assert sorted(started) == list(range(30))


def test_a_failure_is_raised_when_its_item_is_taken() -> None:
    def work(i: int) -> int:
        if i == 5:
            raise ValueError("day 5 is bad")
        return i

    got = []
    with pytest.raises(ValueError, match="day 5 is bad"):
        for result in iter_in_threads(work, list(range(10)), workers=3, ahead=2):
            got.append(result)
    assert got == [0, 1, 2, 3, 4]


def test_a_failure_drops_the_items_not_started() -> None:
    done: list[int] = []

    def work(i: int) -> int:
        if i == 2:
            raise ValueError("stop")
        time.sleep(0.01)
        done.append(i)
        return i

    with pytest.raises(ValueError, match="stop"):
        map_in_threads(work, list(range(200)), workers=2)
    assert len(done) < 20  # not the other ~200 items after the failure
