from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from streams.control.due import DueIndex


def test_yields_only_what_is_due_earliest_first() -> None:
    index: DueIndex[str] = DueIndex()
    index.schedule("b", 20)
    index.schedule("a", 10)
    index.schedule("c", 30)
    assert list(index.pop_due(25)) == ["a", "b"]
    assert "c" in index and "a" not in index and len(index) == 1


def test_rescheduling_replaces_and_none_unschedules() -> None:
    index: DueIndex[str] = DueIndex()
    index.schedule("a", 10)
    index.schedule("a", 50)
    index.schedule("b", 10)
    index.schedule("b", None)
    assert list(index.pop_due(40)) == []
    assert list(index.pop_due(50)) == ["a"]


def _scheduled(steps: list[tuple[int, int | None]]) -> tuple[DueIndex[int], dict[int, int]]:
    """An index after ``steps`` of (key, due), and the plain dict it must match."""
    index: DueIndex[int] = DueIndex()
    expected: dict[int, int] = {}
    for key, due in steps:
        index.schedule(key, due)
        if due is None:
            expected.pop(key, None)
        else:
            expected[key] = due
    return index, expected


@given(st.lists(st.tuples(st.integers(0, 50), st.one_of(st.none(), st.integers(0, 3000))),
                max_size=3000), st.integers(0, 3000))
def test_matches_a_plain_dict_and_stays_bounded(steps: list[tuple[int, int | None]],
                                                now: int) -> None:
    index, expected = _scheduled(steps)
    assert len(index._heap) <= 2 * len(expected) + 1024 + 1
    assert sorted(index.pop_due(now)) == sorted(k for k, due in expected.items() if due <= now)


def test_a_later_due_time_costs_no_heap_entry_and_is_kept() -> None:
    index: DueIndex[str] = DueIndex()
    index.schedule("a", 10)
    for due in range(11, 1000):  # an event per second moves the deadline on
        index.schedule("a", due)
    assert len(index._heap) == 1
    assert list(index.pop_due(500)) == []  # surfaced at 10, queued again at 999
    assert "a" in index
    assert list(index.pop_due(999)) == ["a"]
    assert "a" not in index


def test_keys_moved_later_are_still_yielded_earliest_first() -> None:
    index: DueIndex[str] = DueIndex()
    index.schedule("a", 10)
    index.schedule("b", 20)
    index.schedule("a", 30)
    index.schedule("c", 25)
    assert list(index.pop_due(40)) == ["b", "c", "a"]


@given(st.lists(st.tuples(st.integers(0, 50), st.one_of(st.none(), st.integers(0, 3000))),
                max_size=300), st.lists(st.integers(0, 3000), min_size=1, max_size=5))
def test_pops_in_due_order_across_several_clock_times(
        steps: list[tuple[int, int | None]], times: list[int]) -> None:
    index, expected = _scheduled(steps)
    for now in sorted(times):
        popped = list(index.pop_due(now))
        assert popped == sorted(popped, key=lambda k: expected[k])
        assert sorted(popped) == sorted(k for k, due in expected.items() if due <= now)
        for key in popped:
            del expected[key]
    assert len(index) == len(expected)
